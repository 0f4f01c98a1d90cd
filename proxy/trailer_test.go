package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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
		// Over HTTP/2 the trailer section is a HEADERS frame ending the
		// stream, with fields or none, after a body of a declared
		// length (sent on with it) or of none (sent on chunked).
		for _, trailer := range [][]hpack.HeaderField{
			{{Name: "x-forwarded-for", Value: "6.6.6.6"}, {Name: "x-check", Value: "yes"}},
			nil,
		} {
			for _, declared := range []bool{true, false} {
				forEachH2Engine(t, func(t *testing.T, e engine) {
					url, _ := e.start(t, tc.cfg, peer.backend(1))
					a := dialH2(t, url, 0)
					head := []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "https"},
						{Name: ":authority", Value: "x"}, {Name: ":path", Value: "/"}, {Name: "trailer", Value: "x-forwarded-for, x-check"}}
					if declared {
						head = append(head, hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
					}
					if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.block(head...), EndHeaders: true}); err != nil {
						t.Fatal(err)
					}
					if err := a.fr.WriteData(1, false, []byte(body)); err != nil {
						t.Fatal(err)
					}
					if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.block(trailer...),
						EndStream: true, EndHeaders: true}); err != nil {
						t.Fatal(err)
					}
					ans := a.await(1)
					s := await(t, got, "the peer's request")
					if ans.status != "200" || s.body != body {
						t.Fatalf("%s, %d trailer fields, length declared %v: %s, peer got %d bytes",
							tc.name, len(trailer), declared, ans.outcome(), len(s.body))
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
}

// An answer's trailer section reaches an HTTP/2 client as a HEADERS frame
// ending the stream, without the fields that must not be trailer fields:
// hop-by-hop ones, those the answer's Connection field lists, and those
// of framing and routing. When none is left, the stream ends without
// one. The section comes in two reads, the second after the client has
// had the body, so that it is gathered across them.
func TestH2AnswerTrailerFields(t *testing.T) {
	for _, tc := range []struct {
		name, second string
		want         []hpack.HeaderField
	}{
		{"fields passed on", "X-Other:  two \r\n\r\n", []hpack.HeaderField{{Name: "x-sum", Value: "1"}, {Name: "x-other", Value: "two"}}},
		{"none left", "Content-Length: 3\r\n\r\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := "X-Sum: 1\r\nKeep-Alive: timeout=5\r\nX-Secret: s\r\nHost: evil.test\r\n"
			if tc.want == nil {
				first = "TE: trailers\r\nX-Secret: s\r\n"
			}
			bodySent := make(chan struct{}, 1)
			peer := rawPeer(t, "trailers", func(c net.Conn) {
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nTrailer: X-Sum, X-Other\r\n"+
					"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"+first)
				select {
				case <-bodySent:
				case <-time.After(waitBound):
					return
				}
				io.WriteString(c, tc.second)
			})
			forEachH2Engine(t, func(t *testing.T, e engine) {
				url, _ := e.start(t, Config{}, peer)
				a := dialH2(t, url, 0)
				if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headerBlock("/"),
					EndStream: true, EndHeaders: true}); err != nil {
					t.Fatal(err)
				}
				// The body first: then the rest of the section.
				a.c.SetReadDeadline(time.Now().Add(waitBound))
				for {
					f, err := a.fr.ReadFrame()
					if err != nil {
						t.Fatal(err)
					}
					if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 && len(d.Data()) > 0 {
						if string(d.Data()) != "hello" || d.StreamEnded() {
							t.Fatalf("DATA %q, end %v", d.Data(), d.StreamEnded())
						}
						break
					}
				}
				bodySent <- struct{}{}
				ans := a.await(1)
				if ans.reset != nil {
					t.Fatalf("stream reset: %v", *ans.reset)
				}
				if fieldList(ans.trailers) != fieldList(tc.want) {
					t.Errorf("trailer fields %v, want %v", ans.trailers, tc.want)
				}
			})
		})
	}
}

// fieldList is fields as "name: value" lines, for comparisons.
func fieldList(fields []hpack.HeaderField) string {
	var b strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
	}
	return b.String()
}
