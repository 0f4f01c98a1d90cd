package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A request's trailer fields are dropped on both engines, as nginx does:
// sent after the body, they would reach the peer past the rules that
// replace a client's forwarded fields. The body arrives whole, whether it
// was kept for replay or streamed, and whatever the trailer section holds.
func TestRequestTrailersDropped(t *testing.T) {
	type seen struct {
		body    string
		trailer http.Header
	}
	got := make(chan seen, 1)
	peer := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{string(b), r.Trailer}
	})
	body := strings.Repeat("b", 100)
	chunked := fmt.Sprintf("%x\r\n%s\r\n", len(body), body)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"kept for replay", Config{}},
		{"over the body limit: streamed", Config{RetryBodyLimit: 10}},
		{"no retry budget: streamed", Config{RetryBufferBudget: -1}},
	} {
		for _, trailer := range []string{
			"X-Forwarded-For: 6.6.6.6\r\nX-Check: yes\r\n",
			"", // no fields: the empty line alone
		} {
			forEachH1Engine(t, func(t *testing.T, e engine) {
				url, _ := e.start(t, tc.cfg, peer.backend(1))
				c, err := dialProxy(url)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitBound))
				req := "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Forwarded-For, X-Check\r\n\r\n" +
					chunked + "0\r\n" + trailer + "\r\n"
				// In two writes, the second in the trailer section when
				// there is one.
				cut := len(req) - 10
				if _, err := io.WriteString(c, req[:cut]); err != nil {
					t.Fatal(err)
				}
				if _, err := io.WriteString(c, req[cut:]); err != nil {
					t.Fatal(err)
				}
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				s := await(t, got, "the peer's request")
				if res.StatusCode != 200 || s.body != body {
					t.Fatalf("%s, trailer %q: status %d, peer got %d bytes", tc.name, trailer, res.StatusCode, len(s.body))
				}
				for k, v := range s.trailer {
					if len(v) > 0 {
						t.Errorf("%s: the peer got trailer field %s: %q", tc.name, k, v)
					}
				}
			})
		}
	}
}
