package proxy

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestNeverAcknowledged checks the evidence a non-idempotent request is
// resent on: a peer that read the request before its connection closed
// acknowledged it; a peer that had closed the connection before the
// request arrived did not.
func TestNeverAcknowledged(t *testing.T) {
	request := []byte("POST / HTTP/1.1\r\nHost: p\r\nContent-Length: 7\r\n\r\npayload")
	for _, tc := range []struct {
		name string
		peer func(c net.Conn) // what the peer does with the accepted connection
		want bool
	}{
		{"read then closed", func(c net.Conn) {
			io.ReadFull(c, make([]byte, len(request)))
			c.Close()
		}, false},
		{"closed before the request arrived", func(c net.Conn) { c.Close() }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			peerDone := make(chan struct{})
			go func() {
				defer close(peerDone)
				c, err := ln.Accept()
				if err == nil {
					tc.peer(c)
				}
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.want {
				// The peer's FIN arrives before the request goes out: on
				// loopback, close(2) has delivered it when it returns.
				await(t, peerDone, "the peer's close")
			}
			if _, err := c.Write(request); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Fatalf("read %d, %v; want the connection closed", n, err)
			}
			if got := neverAcknowledged(c, len(request)); got != tc.want {
				t.Fatalf("neverAcknowledged = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("not TCP", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if neverAcknowledged(a, 10) {
			t.Fatal("true for a pipe")
		}
	})
}
