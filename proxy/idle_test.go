package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// waitingIn counts the goroutines with a call of fn on their stack, and
// not of unless (if given).
func waitingIn(fn string, unless ...string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		calls := func(fn string) bool {
			for _, line := range strings.Split(g, "\n") {
				if strings.Contains(line, fn+"(") && !strings.HasPrefix(line, "created by") {
					return true
				}
			}
			return false
		}
		if calls(fn) && (len(unless) == 0 || !calls(unless[0])) {
			n++
		}
	}
	return n
}

// A connection idle for idleHandoff is handed to a goroutine of its own
// (waitIdle) and goes on serving, whole heads and heads in pieces alike.
func TestFastIdleHandoff(t *testing.T) {
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.URL.Path) })
	url, _ := newFastProxy(t, Config{}, be.backend(1))
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func(path string, pieces ...string) {
		t.Helper()
		for i, p := range pieces {
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			if _, err := io.WriteString(c, p); err != nil {
				t.Fatal(err)
			}
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "ok "+path {
			t.Fatalf("%s: %d %q", path, res.StatusCode, body)
		}
	}
	const waitIdle = "proxy.(*fastConn).waitIdle"
	get("/a", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	if n := waitingIn(waitIdle); n != 0 {
		t.Fatalf("%d connections handed over right after a request", n)
	}
	deadline := time.Now().Add(time.Second * 3)
	for waitingIn(waitIdle) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("connection not handed over after %v idle", time.Second*3)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := waitingIn("proxy.(*fastConn).serve", waitIdle); n != 0 {
		t.Fatalf("%d serving goroutines left after the hand-over", n)
	}
	get("/b", "GET /b HTTP/1.1\r\n", "Host: x\r\n\r\n")
	get("/c", "GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
	// Idle again, and again taken over; then a head in pieces.
	time.Sleep(time.Second * 3)
	get("/d", "GE", "T /d HTTP/1.1\r\nHo", "st: x\r\n\r\n")
}
