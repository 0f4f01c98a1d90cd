package proxy

import (
	"bufio"
	"fmt"
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

// A connection idle for Timeouts.idleHandoff is handed to a goroutine of
// its own (waitIdle), which holds no buffer, and goes on serving, whole
// heads and heads in pieces alike.
func TestFastIdleHandoff(t *testing.T) {
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.URL.Path) })
	// At a hand-over, how many requests the backend had got: the idle
	// spell after which it came.
	handoffs := newEvents[int64]()
	held := newEvents[string]() // what a connection held when it began to wait
	hooks := fastHooks{
		handoff: func() { handoffs.add(be.Hits.Load()) },
		wait:    func(b []byte, body bool) { held.add(string(b)) },
	}
	url, _, _ := startFast(t, Config{Timeouts: Timeouts{idleHandoff: time.Millisecond}}, hooks, be.backend(1))
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitBound))
	br := bufio.NewReader(c)
	// get sends a request in pieces, each once the proxy has read the
	// ones before and waits for more.
	get := func(path string, pieces ...string) {
		t.Helper()
		sent := ""
		for i, p := range pieces {
			if i > 0 {
				held.await(t, "wait holding "+sent, func(h string) bool { return h == sent })
			}
			if _, err := io.WriteString(c, p); err != nil {
				t.Fatal(err)
			}
			sent += p
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
	handedOver := func(requests int64) {
		t.Helper()
		handoffs.await(t, fmt.Sprint("hand-over after request ", requests), func(n int64) bool { return n == requests })
		// The goroutine that served the connection ends right after it
		// started waitIdle's.
		eventually(t, "one goroutine in waitIdle, none in serve outside it", func() bool {
			return waitingIn(waitIdle) == 1 && waitingIn("proxy.(*fastConn).serve", waitIdle) == 0
		})
	}
	get("/a", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	handedOver(1)
	get("/b", "GET /b HTTP/1.1\r\n", "Host: x\r\n\r\n")
	get("/c", "GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
	// Idle again, and again taken over; then a head in pieces.
	handedOver(3)
	get("/d", "GE", "T /d HTTP/1.1\r\nHo", "st: x\r\n\r\n")
}
