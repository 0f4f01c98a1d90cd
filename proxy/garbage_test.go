package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNotHTTPAnsweredAtOnce sends the plain port starts that can never
// become an HTTP/1.x request and checks that each is answered 400 and
// closed at once, instead of waiting for the header timeout.
func TestNotHTTPAnsweredAtOnce(t *testing.T) {
	be := newBackend(t, "b", nil)
	url, _ := newFastProxy(t, Config{}, be.backend(1))
	addr := strings.TrimPrefix(url, "http://")
	for _, tc := range []struct{ name, data string }{
		{"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"},
		{"HTTP/0.9", "GET /\r\n"},
		{"not HTTP", "GET / SIP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte(tc.data)); err != nil {
				t.Fatal(err)
			}
			// Far less than the header timeout: the answer must not wait
			// for it.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != 400 || !res.Close {
				t.Fatalf("answer %s, close %v; want 400 and the connection closed", res.Status, res.Close)
			}
			if be.Hits.Load() != 0 {
				t.Fatal("the backend got a request")
			}
		})
	}
}
