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

	"github.com/wharflb/wharf/lb"
)

// The read session answers without reading between requests; what comes
// while a request is being answered must still be read at once: a
// pipelined request, a request sent in pieces, the client's close.
func TestFastSessionKeepsWhatCameMeanwhile(t *testing.T) {
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil {
			time.Sleep(d)
		}
		io.WriteString(w, "ok "+r.URL.Path)
	})
	url, _ := newFastProxy(t, Config{}, be.backend(1))
	addr := strings.TrimPrefix(url, "http://")
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
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
	// Well under idleHandoff: a request left unread would wait for it.
	const prompt = 500 * time.Millisecond
	tests := []struct {
		name   string
		pieces []string // written 100 ms apart
		paths  []string // answers expected, in order
	}{
		{"pipelined in one write",
			[]string{"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n"},
			[]string{"/1", "/2", "/3"}},
		{"second sent while the first is answered",
			[]string{"GET /1?delay=300ms HTTP/1.1\r\nHost: x\r\n\r\n", "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"},
			[]string{"/1", "/2"}},
		{"second head split while the first is answered",
			[]string{"GET /1?delay=300ms HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HT", "TP/1.1\r\nHost: x\r\n\r\n"},
			[]string{"/1", "/2"}},
		{"body after the head",
			[]string{"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "hello"},
			[]string{"/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, br := dial(t)
			start := time.Now()
			go func() {
				for i, p := range tt.pieces {
					if i > 0 {
						time.Sleep(100 * time.Millisecond)
					}
					io.WriteString(c, p)
				}
			}()
			for _, p := range tt.paths {
				expect(t, br, p)
			}
			if d := time.Since(start); d > prompt {
				t.Fatalf("answers took %v", d)
			}
		})
	}
	t.Run("close while answered", func(t *testing.T) {
		c, br := dial(t)
		io.WriteString(c, "GET /1?delay=300ms HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(100 * time.Millisecond)
		c.(*net.TCPConn).CloseWrite()
		start := time.Now()
		expect(t, br, "/1")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after the answer: %d bytes, %v; want the connection closed", n, err)
		}
		if d := time.Since(start); d > prompt {
			t.Fatalf("closed after %v", d)
		}
	})
}

// Close cuts off a connection in the middle of an exchange, though the
// exchange runs inside the connection's read session.
func TestFastCloseCutsExchangeInSession(t *testing.T) {
	release := make(chan struct{})
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "late")
	})
	defer close(release)
	bal := lb.New(lb.OnRemove(ClosePeer))
	bal.Update("test", []lb.Backend{be.backend(1)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewFastServer(bal, Config{}, nil)
	go srv.Serve(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(100 * time.Millisecond) // the request reaches the backend
	srv.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(make([]byte, 100))
	if err == nil || n > 0 {
		t.Fatalf("read %d bytes, %v; want the connection cut off", n, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("connection still open 2 s after Close")
	}
}

// Shutdown ends idle connections at once, those waiting in their read
// session and those handed to waitIdle alike, and then returns.
func TestFastShutdownEndsIdleConnections(t *testing.T) {
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.URL.Path) })
	bal := lb.New(lb.OnRemove(ClosePeer))
	bal.Update("test", []lb.Backend{be.backend(1)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewFastServer(bal, Config{}, nil)
	go srv.Serve(ln)
	defer srv.Close()
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
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
		conns = append(conns, c)
		if i == 0 {
			time.Sleep(time.Second * 3) // the first one goes to waitIdle
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v after %v", err, time.Since(start))
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("connection %d: %d bytes, %v; want EOF", i, n, err)
		}
	}
}
