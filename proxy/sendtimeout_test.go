package proxy

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/wharflb/wharf/lb"
)

// TestClientSendTimeout: a client that asks for a large answer and never
// reads it is cut off after Timeouts.ClientSend without progress, and the
// peer's connection is let go with it (nginx's send_timeout), instead of
// both being held for as long as the client stays.
func TestClientSendTimeout(t *testing.T) {
	be, peerGaveUp := bigAnswerPeer(t)
	// Over HTTP/2: TestH2StalledConnection and TestH2ZeroWindowStall.
	forEachH1Engine(t, func(t *testing.T, e engine) {
		url, _ := e.start(t, Config{Timeouts: Timeouts{ClientSend: 100 * time.Millisecond}}, be.backend(1))
		c, err := dialProxy(url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tcpOf(c).SetReadBuffer(4096)
		io.WriteString(c, "GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n") // and never read
		if err := await(t, peerGaveUp, "the peer's connection let go"); err == nil {
			t.Fatal("the peer wrote the whole answer to a client that reads nothing")
		}
	})
}

// bigAnswerPeer is a peer that answers /big with 256 MiB, more than every
// socket buffer between it and a client can hold, and tells on the
// channel whether it wrote all of it (nil) or why its connection ended
// first; other paths get a short answer.
func bigAnswerPeer(t *testing.T) (*backend, <-chan error) {
	peerGaveUp := make(chan error, 1)
	be := newBackend(t, "big", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			io.WriteString(w, "small")
			return
		}
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		w.Header().Set("Content-Length", "268435456")
		for range 4096 {
			if _, err := w.Write(chunk); err != nil {
				peerGaveUp <- err
				return
			}
		}
		peerGaveUp <- nil
	})
	return be, peerGaveUp
}

// TestClientBodyTimeout: a client that announces a body and sends none of
// it is cut off after Timeouts.RequestBody (nginx's client_body_timeout),
// on every engine, instead of holding its connection for as long as it
// stays.
func TestClientBodyTimeout(t *testing.T) {
	be := newBackend(t, "web1", nil)
	forEachH1Engine(t, func(t *testing.T, e engine) {
		url, _ := e.start(t, Config{Timeouts: Timeouts{RequestBody: 100 * time.Millisecond}}, be.backend(1))
		c, err := dialProxy(url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4096\r\n\r\n") // and no body
		c.SetReadDeadline(time.Now().Add(waitBound))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("the connection of a client that sends no body stayed open: %v", err)
		}
	})
	// Over HTTP/2 it is the stream that is cut off (RST_STREAM CANCEL),
	// and the connection goes on. Whether the body was kept for replay,
	// the peer not yet chosen, or streamed to the peer as it came, the
	// peer is not blamed for the client's stall.
	for _, tc := range []struct {
		name    string
		cfg     Config
		reaches bool // the peer gets the request before the body ends
	}{
		{"kept for replay", Config{}, false},
		{"streamed", Config{RetryBufferBudget: -1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachH2Engine(t, func(t *testing.T, e engine) {
				reached := make(chan struct{}, 1)
				peer := newBackend(t, "reader", func(w http.ResponseWriter, r *http.Request) {
					if r.Method == "POST" {
						reached <- struct{}{}
						io.Copy(io.Discard, r.Body)
					}
					io.WriteString(w, "ok")
				})
				cfg := tc.cfg
				cfg.Timeouts.RequestBody = 100 * time.Millisecond
				url, bal := e.start(t, cfg, peer.backend(1))
				a := dialH2(t, url, 0)
				head := a.block(hpack.HeaderField{Name: ":method", Value: "POST"}, hpack.HeaderField{Name: ":scheme", Value: "https"},
					hpack.HeaderField{Name: ":authority", Value: "localhost"}, hpack.HeaderField{Name: ":path", Value: "/upload"},
					hpack.HeaderField{Name: "content-length", Value: "4096"})
				if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head, EndHeaders: true}); err != nil {
					t.Fatal(err)
				}
				if err := a.fr.WriteData(1, false, make([]byte, 100)); err != nil { // and no more
					t.Fatal(err)
				}
				if ans := a.await(1); ans.reset == nil || *ans.reset != http2.ErrCodeCancel {
					t.Fatalf("the stalled stream: %s, want reset CANCEL", ans.outcome())
				}
				p := bal.Table().Pool(lb.DefaultService).Peers()[0]
				if tc.reaches {
					await(t, reached, "the peer's request")
				}
				waitFor(t, "the exchange's end at the peer", func() bool { return p.InFlight() == 0 })
				if got := p.Requests(); (got != 0) != tc.reaches {
					t.Errorf("the peer had %d requests, want them only if the body was streamed", got)
				}
				if p.Failures() != 0 || !p.Available(bal.Now()) {
					t.Errorf("peer blamed: %d failures, available %v", p.Failures(), p.Available(bal.Now()))
				}
				// The connection, and the peer, serve the next stream.
				if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: a.headerBlock("/next"),
					EndStream: true, EndHeaders: true}); err != nil {
					t.Fatal(err)
				}
				if ans := a.await(3); ans.status != "200" || string(ans.body) != "ok" {
					t.Fatalf("the next stream: %s %q", ans.outcome(), ans.body)
				}
			})
		})
	}
}

// TestUpstreamReadTimeout: a peer that stops sending in the middle of an
// answer body is given up after Timeouts.UpstreamRead, and the client's
// connection is closed, instead of both waiting for as long as the peer
// stays silent (nginx's proxy_read_timeout).
func TestUpstreamReadTimeout(t *testing.T) {
	stall := make(chan struct{})
	be := newBackend(t, "stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, "first ten.")
		w.(http.Flusher).Flush()
		<-stall
	})
	t.Cleanup(func() { close(stall) }) // before the backend's Close, which waits for its handler
	url, _, _ := startFast(t, Config{Timeouts: Timeouts{UpstreamRead: 100 * time.Millisecond}}, fastHooks{}, be.backend(1))
	c, err := dialProxy(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /stall HTTP/1.1\r\nHost: localhost\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(waitBound))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the client's connection stayed open: %v (got %q)", err, got)
	}
	if !bytes.HasSuffix(got, []byte("first ten.")) {
		t.Fatalf("got %q, want the head and the ten bytes sent, then the close", got)
	}
}
