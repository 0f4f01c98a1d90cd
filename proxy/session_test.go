package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// The read session answers without reading between requests; what comes
// while a request is being answered must still be read at once: a
// pipelined request, a request sent in pieces, the client's close.
//
// The proxy waits an hour before it times out or hands over an idle
// connection: a request left unread would never be answered, and the
// client's read deadline fails the test.
func TestFastSessionKeepsWhatCameMeanwhile(t *testing.T) {
	// A request with ?hold is answered once the test has sent what comes
	// next: answering takes as long as the test needs.
	holding := make(chan chan struct{})
	done := make(chan struct{})
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("hold") {
			release := make(chan struct{})
			select {
			case holding <- release:
				select {
				case <-release:
				case <-done:
				}
			case <-done:
			}
		}
		io.WriteString(w, "ok "+r.URL.Path)
	})
	t.Cleanup(func() { close(done) }) // before the backend closes: it waits for its handlers
	bodyWaits := make(chan struct{}, 16)
	hooks := fastHooks{wait: func(held []byte, body bool) {
		if body {
			bodyWaits <- struct{}{}
		}
	}}
	url, _, _ := startFast(t, Config{Timeouts: Timeouts{ClientIdle: time.Hour, idleHandoff: time.Hour}}, hooks, be.backend(1))
	addr := strings.TrimPrefix(url, "http://")
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(waitBound))
		return c, bufio.NewReader(c)
	}
	expect := func(t *testing.T, br *bufio.Reader, path string) {
		t.Helper()
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
	const (
		whileHeld   = iota // while the backend holds the first request
		bodyAwaited        // once the proxy waits for the body
	)
	tests := []struct {
		name  string
		first string
		then  string // sent next, when says
		when  int
		paths []string // answers expected, in order
	}{
		{"pipelined in one write",
			"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n", "", 0,
			[]string{"/1", "/2", "/3"}},
		{"second sent while the first is answered",
			"GET /1?hold HTTP/1.1\r\nHost: x\r\n\r\n", "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n", whileHeld,
			[]string{"/1", "/2"}},
		{"second head split while the first is answered",
			"GET /1?hold HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HT", "TP/1.1\r\nHost: x\r\n\r\n", whileHeld,
			[]string{"/1", "/2"}},
		{"body after the head",
			"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "hello", bodyAwaited,
			[]string{"/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, br := dial(t)
			io.WriteString(c, tt.first)
			if tt.then != "" {
				if tt.when == whileHeld {
					release := await(t, holding, "held request")
					io.WriteString(c, tt.then)
					close(release)
				} else {
					await(t, bodyWaits, "wait for the body")
					io.WriteString(c, tt.then)
				}
			}
			for _, p := range tt.paths {
				expect(t, br, p)
			}
		})
	}
	t.Run("close while answered", func(t *testing.T) {
		c, br := dial(t)
		io.WriteString(c, "GET /1?hold HTTP/1.1\r\nHost: x\r\n\r\n")
		release := await(t, holding, "held request")
		c.(*net.TCPConn).CloseWrite()
		close(release)
		expect(t, br, "/1")
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after the answer: %d bytes, %v; want the connection closed", n, err)
		}
	})
}

// Close cuts off a connection in the middle of an exchange, though the
// exchange runs inside the connection's read session.
func TestFastCloseCutsExchangeInSession(t *testing.T) {
	for _, start := range fastStarts {
		t.Run(start.name, func(t *testing.T) { testFastCloseCutsExchangeInSession(t, start.start) })
	}
}

func testFastCloseCutsExchangeInSession(t *testing.T, startFast fastStart) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "late")
	})
	defer close(release)
	url, srv, _ := startFast(t, Config{}, fastHooks{}, be.backend(1))
	c, err := dialProxy(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	await(t, arrived, "request at the backend")
	srv.Close()
	c.SetReadDeadline(time.Now().Add(waitBound))
	n, err := c.Read(make([]byte, 100))
	if err == nil || n > 0 {
		t.Fatalf("read %d bytes, %v; want the connection cut off", n, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open %v after Close", waitBound)
	}
}

// Shutdown ends idle connections at once, those waiting in their read
// session and those handed to waitIdle alike, and then returns.
func TestFastShutdownEndsIdleConnections(t *testing.T) {
	for _, start := range fastStarts {
		t.Run(start.name, func(t *testing.T) { testFastShutdownEndsIdleConnections(t, start.start) })
	}
}

func testFastShutdownEndsIdleConnections(t *testing.T, startFast fastStart) {
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.URL.Path) })
	for _, tc := range []struct {
		name     string
		handOver bool // at once, and wait for it; else not for an hour
	}{
		{"in the read session", false},
		{"handed to waitIdle", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handoffs := make(chan struct{}, 1)
			hooks := fastHooks{handoff: func() { handoffs <- struct{}{} }}
			idleHandoff := time.Hour
			if tc.handOver {
				idleHandoff = time.Nanosecond
			}
			url, srv, _ := startFast(t, Config{Timeouts: Timeouts{idleHandoff: idleHandoff}}, hooks, be.backend(1))
			c, err := dialProxy(url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if tc.handOver {
				await(t, handoffs, "hand-over")
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			c.SetReadDeadline(time.Now().Add(waitBound))
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("%d bytes, %v; want EOF", n, err)
			}
		})
	}
}
