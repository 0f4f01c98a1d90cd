package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
