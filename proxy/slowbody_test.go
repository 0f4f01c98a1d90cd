package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wharflb/wharf/lb"
)

// TestBodyWaitForgetsHead: a connection that waits for more of a request
// body, kept for replay or streamed, holds no slice of the buffer its head
// was read into; that buffer went back to its pool, and the slices would
// keep it allocated for as long as a slow client takes. The request still
// goes out whole once the body has come.
func TestBodyWaitForgetsHead(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int // announced body; each client sends 1 KiB of it first
	}{
		{"kept", 32 << 10},
		{"streamed", DefaultRetryBodyLimit + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := newBackend(t, "web1", func(w http.ResponseWriter, r *http.Request) {
				n, _ := io.Copy(io.Discard, r.Body)
				fmt.Fprintf(w, "%s %s %s %d", r.Method, r.URL.Path, r.Header.Get("X-Check"), n)
			})
			var srv atomic.Pointer[FastServer]
			found := make(chan string, 1)
			hooks := fastHooks{wait: func(held []byte, body bool) {
				if !body {
					return
				}
				// On the connection's own goroutine: its exchange state
				// is this goroutine's to read.
				s := srv.Load()
				s.mu.Lock()
				defer s.mu.Unlock()
				for c := range s.conns {
					if x := c.x; x != nil {
						select {
						case found <- headSlices(x):
						default:
						}
					}
				}
			}}
			url, s, _ := startFast(t, Config{}, hooks, be.backend(1))
			srv.Store(s)
			c, err := dialProxy(url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: localhost\r\nX-Check: yes\r\nContent-Length: %d\r\n\r\n%s", tc.size, strings.Repeat("a", 1<<10))
			if held := await(t, found, "wait for the body"); held != "" {
				t.Fatalf("waiting for the body, the exchange still holds %s of the head's buffer", held)
			}
			if _, err := c.Write([]byte(strings.Repeat("b", tc.size-1<<10))); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			if want := "POST /up yes " + strconv.Itoa(tc.size); res.StatusCode != 200 || string(got) != want {
				t.Fatalf("got %d %q, want 200 %q", res.StatusCode, got, want)
			}
		})
	}
}

// headSlices names the slices of a request head that x still holds, "" if
// none.
func headSlices(x *exchangeState) string {
	r := &x.req
	var held []string
	for _, f := range []struct {
		name string
		b    []byte
	}{{"method", r.Method}, {"target", r.Target}, {"path", r.Path}, {"host", r.Host}, {"upgrade", r.Upgrade}, {"route", x.route}} {
		if f.b != nil {
			held = append(held, f.name)
		}
	}
	for _, h := range r.Headers[:cap(r.Headers)] {
		if h.Name != nil || h.Value != nil {
			held = append(held, "header fields")
			break
		}
	}
	return strings.Join(held, ", ")
}

// silentPeer accepts connections and neither reads nor answers, with no
// goroutine per connection, so that the stacks of a test are the proxy's.
func silentPeer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln
}

// TestSlowBodyStacksStaySmall: a connection that streams its body to a peer
// and waits for more of it keeps a stack of 4 KiB. The dial of the peer
// connection, the deepest call of an exchange, runs on a goroutine of its
// own: on the connection's, it would grow the stack to 8 KiB for as long
// as the client takes over its body.
func TestSlowBodyStacksStaySmall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation makes every frame larger")
	}
	const conns = 100
	peer := silentPeer(t)
	waiting := make(chan struct{}, conns)
	hooks := fastHooks{wait: func(held []byte, body bool) {
		if body && len(held) == 0 {
			waiting <- struct{}{}
		}
	}}
	url, _, _ := startFast(t, Config{}, hooks, lb.Backend{ID: "silent", Name: "silent", Network: "tcp", Addr: peer.Addr().String(), Weight: 1})
	head := fmt.Sprintf("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n", DefaultRetryBodyLimit+1)
	first := []byte(head + strings.Repeat("a", 1<<10))

	stacks := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.StackInuse
	}
	before := stacks()
	for i := 0; i < conns; i++ {
		c, err := dialProxy(url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(first); err != nil {
			t.Fatal(err)
		}
		// One at a time: each is waiting for its body before the next.
		await(t, waiting, "wait for the body")
	}
	per := (int64(stacks()) - int64(before)) / conns
	t.Logf("stack per waiting connection: %d bytes", per)
	if per > 5<<10 {
		t.Fatalf("%d bytes of stack per connection waiting for its body, want 4 KiB", per)
	}
}

// TestStreamedBodyHeadShrinks: when a body the budget cannot keep streams
// and what came of it does not all fit after the upstream head in one
// buffer, the head moves to a buffer of its size. While the peer is
// dialled the connection then holds the client's bytes and 2 KiB, not two
// 16 KiB buffers; in a burst of slow bodies, that is most of the heap.
func TestStreamedBodyHeadShrinks(t *testing.T) {
	bal := lb.New()
	bal.Update("test", []lb.Backend{{ID: "p", Name: "p", Network: "tcp", Addr: "127.0.0.1:1", Weight: 1}})
	srv := NewFastServer(bal, Config{RetryBufferBudget: -1})
	c := &fastConn{s: srv, clientIP: netip.MustParseAddr("127.0.0.1")}
	c.in = getBuf()
	head := fmt.Sprintf("POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n", 64<<10)
	c.w = copy(*c.in, head+strings.Repeat("a", fastBufSize))
	if err := c.parseHead(); err != nil {
		t.Fatal(err)
	}
	f := forwarding{c: c, pool: bal.Route("localhost", "/up")}
	if err := f.prepare(); err != nil {
		t.Fatal(err)
	}
	if f.replay {
		t.Fatal("the body was kept with no budget")
	}
	if got := cap(*c.out); got != headBufSize {
		t.Fatalf("the upstream head is held in a buffer of %d bytes, want %d", got, headBufSize)
	}
	// What goes to the peer: the head, then the body bytes received.
	sent := string(f.head) + string((*c.in)[c.r:c.w])
	end := strings.Index(sent, "\r\n\r\n") + 4
	if !strings.HasPrefix(sent, "POST /up HTTP/1.1\r\n") || end != len(f.head) || sent[end:] != strings.Repeat("a", fastBufSize-len(head)) {
		t.Fatalf("the peer would get %q…%q (%d bytes)", sent[:min(len(sent), 40)], sent[max(0, len(sent)-20):], len(sent))
	}
}
