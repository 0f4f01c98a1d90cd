package proxy

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestClientSendTimeout: a client that asks for a large answer and never
// reads it is cut off after Timeouts.ClientSend without progress, and the
// peer's connection is let go with it (nginx's send_timeout), instead of
// both being held for as long as the client stays.
func TestClientSendTimeout(t *testing.T) {
	be, peerGaveUp := bigAnswerPeer(t)
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
// on both engines, instead of holding its connection for as long as it
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
