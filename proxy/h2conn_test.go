package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// holdBackend answers /hold only once release is closed, and anything
// else at once; held receives when a /hold request arrives.
func holdBackend(t *testing.T) (be *backend, held chan struct{}, release chan struct{}) {
	held, release = make(chan struct{}, 16), make(chan struct{})
	be = newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held <- struct{}{}
			<-release
		}
		io.WriteString(w, "peer")
	})
	return be, held, release
}

// awaitStatus waits until stream id of a has had its answer's head.
func (a *h2Attacker) awaitStatus(id uint32) string {
	a.t.Helper()
	var status string
	waitFor(a.t, "the answer's head", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		status = a.statuses[id]
		return status != ""
	})
	return status
}

// TestH2IdleConnectionReclaimedAtMaxConns: an HTTP/2 connection with no
// stream open is idle like a keep-alive HTTP/1.1 one: at Config.MaxConns
// it is closed to make room for a new client.
func TestH2IdleConnectionReclaimedAtMaxConns(t *testing.T) {
	be, held, release := holdBackend(t)
	defer close(release)
	url, srv, _ := startFastTLS(t, Config{MaxConns: 2}, fastHooks{}, be.backend(1))
	a := dialH2(t, url, 0)
	a.read()
	if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headerBlock("/"),
		EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if got := a.awaitStatus(1); got != "200" {
		t.Fatalf("status %q", got)
	}
	// The other connection is busy: only the HTTP/2 one is idle.
	busy := dialRaw(t, url)
	busy.send(t, "/hold")
	await(t, held, "the busy connection's request at the peer")
	c := dialRaw(t, url)
	c.send(t, "/")
	if got := c.read(t); got != "200 peer" {
		t.Fatalf("third client at the cap: %q, want it served", got)
	}
	a.awaitClosed("the idle HTTP/2 connection at the cap")
	if n := srv.stats.Reclaimed.Load(); n != 1 {
		t.Fatalf("%d connections reclaimed, want 1", n)
	}
}

// TestH2GracefulShutdown: Shutdown sends an HTTP/2 connection a GOAWAY
// (NO_ERROR) naming its last stream, lets that stream finish, then
// closes the connection and returns.
func TestH2GracefulShutdown(t *testing.T) {
	be, held, release := holdBackend(t)
	url, srv, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	a := dialH2(t, url, 0)
	a.read()
	if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headerBlock("/hold"),
		EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	await(t, held, "the request at the peer")
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	waitFor(t, "GOAWAY", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.goAway != nil
	})
	a.mu.Lock()
	code := *a.goAway
	a.mu.Unlock()
	if code != http2.ErrCodeNo {
		t.Fatalf("GOAWAY %v, want NO_ERROR", code)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a stream in progress", err)
	default:
	}
	close(release)
	if got := a.awaitStatus(1); got != "200" {
		t.Fatalf("the stream in progress: status %q, want 200", got)
	}
	a.awaitClosed("after its last stream")
	if err := await(t, done, "Shutdown's return"); err != nil {
		t.Fatal(err)
	}
}

// TestH2AllocationsPerRequest reports what one request over HTTP/2
// allocates in the whole process, the client being a bare Framer, and
// bounds it, for a GET and for a POST with a body. Measured (memory
// profile, per GET, 6 in all): none of wharf's own code; on wharf's
// side, 1 of golang.org/x/net/http2's Framer, which makes a frame of
// each HEADERS, 1 of it for the client's WINDOW_UPDATE, 1 of its hpack
// decoder, which makes a string of a field sent as a literal, and 1 of
// crypto/tls, for each record read (see TestFastPathAllocatesNothing);
// on the client's, 1 frame and 1 TLS record read. The header block is
// decoded by wharf (readBlock): the Framer's own decoding made 9 more.
func TestH2AllocationsPerRequest(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates, and sync.Pool drops items at random under it")
	}
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, rawBackend(t))
	a := dialH2(t, url, 0)
	a.fr.ReadMetaHeaders = nil // the client decodes nothing
	a.fr.SetReuseFrames()
	get := a.headerBlock("/")
	// Sent again and again, the POST's block must not use the dynamic
	// table: its entries would move under the block's references.
	var pb bytes.Buffer
	enc := hpack.NewEncoder(&pb)
	enc.SetMaxDynamicTableSizeLimit(0)
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "localhost"}, {Name: ":path", Value: "/"}, {Name: "content-length", Value: "5"}} {
		enc.WriteField(f)
	}
	post := pb.Bytes()
	id := uint32(1)
	roundTrip := func(block, body []byte) {
		if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block,
			EndStream: body == nil, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		if body != nil {
			if err := a.fr.WriteData(id, true, body); err != nil {
				t.Fatal(err)
			}
		}
		for {
			f, err := a.fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if d, ok := f.(*http2.DataFrame); ok && d.Length > 0 {
				// The connection's window, which the client keeps open.
				if err := a.fr.WriteWindowUpdate(0, d.Length); err != nil {
					t.Fatal(err)
				}
			}
			if f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagDataEndStream) {
				break
			}
		}
		id += 2
	}
	// A POST's body adds 2, both of the libraries (memory profile): a
	// window update read and a TLS record read more.
	body := []byte("hello")
	for _, tc := range []struct {
		name        string
		block, body []byte
		max         float64
	}{{"GET", get, nil, 7}, {"POST", post, body, 9}} {
		for range 100 {
			roundTrip(tc.block, tc.body) // warm the pools
		}
		n := testing.AllocsPerRun(2000, func() { roundTrip(tc.block, tc.body) })
		t.Logf("%s: %v allocations per request over HTTP/2", tc.name, n)
		if n > tc.max {
			t.Errorf("%s: %v allocations per request over HTTP/2, want at most %v", tc.name, n, tc.max)
		}
	}
}

// TestH2EarlyHints: a peer's 103 Early Hints reaches an HTTP/2 client as
// a HEADERS frame of its own, fields included, before the final answer.
func TestH2EarlyHints(t *testing.T) {
	be := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(103)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	})
	forEachH2Engine(t, func(t *testing.T, e engine) {
		url, _ := e.start(t, Config{}, be.backend(1))
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprintf("%d %s", code, h.Get("Link")))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url+"/", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "final" || res.ProtoMajor != 2 {
			t.Fatalf("%s %d %q", res.Proto, res.StatusCode, body)
		}
		if want := "103 </style.css>; rel=preload; as=style"; fmt.Sprint(hints) != "["+want+"]" {
			t.Fatalf("interim answers %q, want [%q]", hints, want)
		}
	})
}

// TestH2WorkersFollowTheLoad: the goroutines that run streams are kept
// for the next ones, as many as the load had at once, and end once idle
// through two sweeps.
func TestH2WorkersFollowTheLoad(t *testing.T) {
	const conns, perConn = 3, 100 // more at once than a fixed cap of 256
	var gate atomic.Pointer[chan struct{}]
	held := make(chan struct{}, conns*perConn)
	be := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		g := *gate.Load()
		held <- struct{}{}
		<-g
		io.WriteString(w, "peer")
	})
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	ws := &h2Workers
	idle := func() (int, uint64) {
		ws.mu.Lock()
		defer ws.mu.Unlock()
		return len(ws.idle), ws.gen
	}
	// Workers idle from earlier tests end.
	sweepH2Workers()
	sweepH2Workers()
	clients := make([]*h2Attacker, conns)
	for i := range clients {
		clients[i] = dialH2(t, url, 0)
		clients[i].read()
	}
	next := uint32(1)
	burst := func() int {
		t.Helper()
		g := make(chan struct{})
		gate.Store(&g)
		first := next
		for _, a := range clients {
			for i := range uint32(perConn) {
				if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: first + 2*i,
					BlockFragment: a.headerBlock("/"), EndStream: true, EndHeaders: true}); err != nil {
					t.Fatal(err)
				}
			}
		}
		next += 2 * perConn
		for range conns * perConn {
			await(t, held, "a stream's request at the peer")
		}
		close(g)
		for _, a := range clients {
			for i := range uint32(perConn) {
				if got := a.awaitStatus(first + 2*i); got != "200" {
					t.Fatalf("status %q", got)
				}
			}
		}
		// A stream's worker goes idle just after its answer is sent.
		n := 0
		waitFor(t, "the workers idle", func() bool { n, _ = idle(); return n >= conns*perConn })
		return n
	}
	after := burst()
	if got := burst(); got != after {
		t.Fatalf("%d idle workers after a second burst as large, want the %d of the first: none new", got, after)
	}
	_, gen := idle()
	sweepH2Workers()
	if got, now := idle(); now == gen+1 && got != after {
		// Only this sweep ran: the workers have been idle for less than
		// a period.
		t.Fatalf("%d idle workers after one sweep, want %d", got, after)
	}
	sweepH2Workers()
	if got, _ := idle(); got != 0 {
		t.Fatalf("%d idle workers after two sweeps, want 0", got)
	}
}
