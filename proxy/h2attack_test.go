package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/wharflb/wharf/internal/testutil"
)

// The attacks of this file are sent frame by frame over a real TLS
// connection to a started FastServer, so that they hold for whichever
// HTTP/2 front end serves it. Each checks that the attacker is cut off or
// held back, that the process's heap and goroutines stay bounded, and
// that another client is served while it happens.

// h2Attacker is one raw HTTP/2 client connection: what it writes it
// writes through fr, and once reading has started (read), what the
// server sends is recorded.
type h2Attacker struct {
	t    testing.TB
	c    net.Conn // TLS, or plain for h2c
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer

	mu       sync.Mutex
	settings map[http2.SettingID]uint32
	goAway   *http2.ErrCode
	resets   map[uint32]http2.ErrCode
	statuses map[uint32]string
	readErr  error         // why reading ended
	closed   chan struct{} // closed when reading ended
}

// dialH2 connects to the proxy at url, over TLS negotiating h2 (https://
// or h2s://) or with prior knowledge (h2c://), and sends the client
// preface with settings. rcvbuf, when not 0, is the socket's receive
// buffer, set before the handshake so that a client that does not read
// fills the server's send path soon.
func dialH2(t testing.TB, url string, rcvbuf int, settings ...http2.Setting) *h2Attacker {
	t.Helper()
	addr, plain := strings.CutPrefix(url, schemeH2C+"://")
	if !plain {
		addr = strings.TrimPrefix(strings.TrimPrefix(url, "https://"), schemeH2TLS+"://")
	}
	d := &net.Dialer{Timeout: waitBound}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if rcvbuf > 0 {
		raw.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	// Closed under TLS: a close_notify would wait on a connection the
	// proxy may have stopped reading.
	t.Cleanup(func() { raw.Close() })
	c := raw
	c.SetDeadline(time.Now().Add(waitBound))
	if !plain {
		tc := tls.Client(raw, &tls.Config{RootCAs: testRoots, ServerName: "localhost", NextProtos: []string{"h2"}})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("ALPN %q, want h2", p)
		}
		c = tc
	}
	a := &h2Attacker{t: t, c: c, fr: http2.NewFramer(c, c),
		settings: map[http2.SettingID]uint32{}, resets: map[uint32]http2.ErrCode{},
		statuses: map[uint32]string{}, closed: make(chan struct{})}
	a.enc = hpack.NewEncoder(&a.hbuf)
	a.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	a.fr.MaxHeaderListSize = 1 << 20
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := a.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	// The server's SETTINGS come first: read them here, so that the
	// tests can check what was advertised.
	f, err := a.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("first frame from the server: %v", f)
	}
	sf.ForeachSetting(func(s http2.Setting) error { a.settings[s.ID] = s.Val; return nil })
	a.fr.WriteSettingsAck()
	c.SetDeadline(time.Time{})
	return a
}

// read records what the server sends, until it ends the connection.
func (a *h2Attacker) read() {
	go func() {
		defer close(a.closed)
		for {
			f, err := a.fr.ReadFrame()
			if err != nil {
				a.mu.Lock()
				a.readErr = err
				a.mu.Unlock()
				return
			}
			a.mu.Lock()
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				code := f.ErrCode
				a.goAway = &code
			case *http2.RSTStreamFrame:
				a.resets[f.StreamID] = f.ErrCode
			case *http2.MetaHeadersFrame:
				a.statuses[f.StreamID] = f.PseudoValue("status")
			}
			a.mu.Unlock()
		}
	}()
}

// awaitClosed waits for the server to end the connection, failing the
// test if it keeps it open, and returns the GOAWAY code it sent, if any.
func (a *h2Attacker) awaitClosed(what string) *http2.ErrCode {
	a.t.Helper()
	a.c.SetReadDeadline(time.Now().Add(waitBound))
	<-a.closed
	a.mu.Lock()
	defer a.mu.Unlock()
	if isTimeout(a.readErr) {
		a.t.Fatalf("%s: the server kept the connection open for %v", what, waitBound)
	}
	return a.goAway
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// headerBlock encodes a request for path, with extra fields.
func (a *h2Attacker) headerBlock(path string, extra ...hpack.HeaderField) []byte {
	return a.block(append([]hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "localhost"}, {Name: ":path", Value: path},
	}, extra...)...)
}

// block encodes a header block of fields, in order.
func (a *h2Attacker) block(fields ...hpack.HeaderField) []byte {
	a.hbuf.Reset()
	for _, f := range fields {
		a.enc.WriteField(f)
	}
	return bytes.Clone(a.hbuf.Bytes())
}

// h2Answer is what the server sent on one stream: the status and fields
// of its answer, its body and its trailer fields, or the code of the
// reset that ended it.
type h2Answer struct {
	status   string
	fields   []hpack.HeaderField
	body     []byte
	trailers []hpack.HeaderField
	reset    *http2.ErrCode
}

// outcome is the answer's status, or the code of the reset.
func (ans h2Answer) outcome() string {
	if ans.reset != nil {
		return "reset " + ans.reset.String()
	}
	return ans.status
}

// await reads what the server sends until stream id ends, giving the
// window the stream's data took back; it fails t if the connection ends
// first. It is for a connection whose frames are not read by read.
func (a *h2Attacker) await(id uint32) h2Answer {
	a.t.Helper()
	a.c.SetReadDeadline(time.Now().Add(waitBound))
	defer a.c.SetReadDeadline(time.Time{})
	var ans h2Answer
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			a.t.Fatalf("stream %d: %v", id, err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			a.t.Fatalf("stream %d: GOAWAY %v", id, ga.ErrCode)
		}
		if f.Header().StreamID != id {
			continue
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			switch status := f.PseudoValue("status"); {
			case status == "":
				ans.trailers = f.RegularFields()
			case status[0] != '1': // not an interim answer
				ans.status, ans.fields = status, f.RegularFields()
			}
		case *http2.DataFrame:
			ans.body = append(ans.body, f.Data()...)
			if n := f.Length; n > 0 {
				a.fr.WriteWindowUpdate(0, n)
				if !f.StreamEnded() {
					a.fr.WriteWindowUpdate(id, n)
				}
			}
		case *http2.RSTStreamFrame:
			code := f.ErrCode
			ans.reset = &code
			return ans
		}
		if f.Header().Flags.Has(http2.FlagDataEndStream) {
			return ans
		}
	}
}

// goroutineSlack is how many more goroutines than before an attack the
// process may have while it runs: those of each stream the attacking
// connection may have open (its handler, the peer connection's and the
// peer's own: 448 were seen at once in the rapid reset), and those of
// the test's own clients and of the previous test's teardown. An attack
// that made the proxy start goroutines per frame or per stream opened
// goes far above it.
const goroutineSlack = 6*h2MaxStreams + 64

// peaks samples the heap in use and the number of goroutines of the
// process (proxy, peers and clients of the test) until stopped.
type peaks struct {
	heap, goroutines atomic.Uint64
	stop             chan struct{}
	done             chan struct{}
}

func watchPeaks(t testing.TB) *peaks {
	runtime.GC()
	p := &peaks{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			p.heap.Store(max(p.heap.Load(), ms.HeapInuse))
			p.goroutines.Store(max(p.goroutines.Load(), uint64(runtime.NumGoroutine())))
			select {
			case <-p.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(p.end)
	return p
}

func (p *peaks) end() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// check fails t if the heap went above heapMax or the goroutines above
// goroutineMax while p watched, and logs both peaks.
func (p *peaks) check(t testing.TB, heapMax, goroutineMax uint64) {
	t.Helper()
	p.end()
	h, g := p.heap.Load(), p.goroutines.Load()
	t.Logf("heap peak %d MiB, goroutine peak %d", h>>20, g)
	if h > heapMax {
		t.Errorf("heap peaked at %d MiB, want at most %d MiB", h>>20, heapMax>>20)
	}
	if g > goroutineMax {
		t.Errorf("goroutines peaked at %d, want at most %d", g, goroutineMax)
	}
}

// h2Client is a Go HTTP/2 client of the TLS proxies.
func h2Client(t testing.TB) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testRoots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitBound}
}

// servesOthers fails t unless a new HTTP/2 client gets an answer from
// the proxy at url.
func servesOthers(t testing.TB, url string) {
	t.Helper()
	res, err := h2Client(t).Get(url + "/other")
	if err != nil {
		t.Fatalf("another client during the attack: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Fatalf("another client during the attack: %s %d", res.Proto, res.StatusCode)
	}
}

// concurrency counts the requests a peer holds at once, and the most it
// held.
type concurrency struct{ now, most atomic.Int64 }

func (c *concurrency) enter() {
	n := c.now.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
}

func (c *concurrency) leave() { c.now.Add(-1) }

// TestH2RapidReset (CVE-2023-44487): a client that opens streams and
// resets them at once, in a loop, never has more requests at the peers
// than the streams a connection may have open, nor more goroutines
// running for it than a few per stream it may have, and the proxy stays
// healthy.
func TestH2RapidReset(t *testing.T) {
	var held concurrency
	be := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held.enter()
			defer held.leave()
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "peer")
	})
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	base := uint64(runtime.NumGoroutine())
	p := watchPeaks(t)
	a := dialH2(t, url, 0)
	a.read()
	block := a.headerBlock("/hold")
	const rounds = 20000
	id := uint32(1)
	var werr error
	for range rounds {
		if werr = a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); werr != nil {
			break
		}
		if werr = a.fr.WriteRSTStream(id, http2.ErrCodeCancel); werr != nil {
			break
		}
		id += 2
	}
	servesOthers(t, url)
	testutil.Eventually(t, waitBound, "the held requests let go", func() bool { return held.now.Load() == 0 })
	p.check(t, 64<<20, base+goroutineSlack)
	if m := held.most.Load(); m > h2MaxStreams {
		t.Errorf("the peer held %d requests of one connection at once, more than its %d streams", m, h2MaxStreams)
	}
	a.mu.Lock()
	t.Logf("%d of %d HEADERS+RST_STREAM pairs written (%v); %d requests reached the peer, at most %d at once; GOAWAY %v",
		(id-1)/2, rounds, werr, be.Hits.Load()-1, held.most.Load(), a.goAway)
	a.mu.Unlock()
}

// waitFor waits until cond holds, failing t after waitBound.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, waitBound, what, cond)
}

// TestH2ContinuationFlood (CVE-2024-27316): a header block that never
// ends, CONTINUATION after CONTINUATION, is cut off once it passes the
// header list limit, instead of being buffered or decoded without end.
func TestH2ContinuationFlood(t *testing.T) {
	be := newBackend(t, "peer", nil)
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	base := uint64(runtime.NumGoroutine())
	p := watchPeaks(t)
	a := dialH2(t, url, 0)
	a.read()
	a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headerBlock("/")})
	// Each CONTINUATION holds fields that the decoder would keep: 16 KiB
	// of new literal names and values.
	var frag []byte
	for i := 0; len(frag) < h2MaxFrameSize-1024; i++ {
		frag = appendLiteral(frag, "x-flood", strings.Repeat("v", 1000))
	}
	const most = 64 << 20 // bytes of header block the attacker tries
	sent := 0
	var werr error
	for sent < most {
		a.c.SetWriteDeadline(time.Now().Add(waitBound))
		if werr = a.fr.WriteContinuation(1, false, frag); werr != nil {
			break
		}
		sent += len(frag)
	}
	code := a.awaitClosed("CONTINUATION flood")
	if sent >= most {
		t.Errorf("the server took %d MiB of one header block", sent>>20)
	}
	servesOthers(t, url)
	p.check(t, 64<<20, base+goroutineSlack)
	a.mu.Lock()
	t.Logf("connection ended after %d KiB of CONTINUATION (%v), GOAWAY %v, streams answered %v", sent>>10, werr, code, a.statuses)
	if len(a.statuses) > 0 {
		t.Errorf("a stream of the flood was answered: %v", a.statuses)
	}
	a.mu.Unlock()
	if n := be.Hits.Load(); n != 1 {
		t.Errorf("%d requests reached the peer, want only the other client's", n)
	}
}

// appendLiteral appends a literal header field without indexing.
func appendLiteral(b []byte, name, value string) []byte {
	b = append(b, 0x00)
	b = appendString(b, name)
	return appendString(b, value)
}

// appendString appends s as an HPACK string literal, not Huffman coded.
func appendString(b []byte, s string) []byte {
	b = appendInt(b, 7, 0, uint64(len(s)))
	return append(b, s...)
}

// appendInt appends an HPACK integer with an n-bit prefix and the
// prefix's other bits set to first.
func appendInt(b []byte, n uint, first byte, v uint64) []byte {
	k := uint64(1)<<n - 1
	if v < k {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(k))
	for v -= k; v >= 128; v >>= 7 {
		b = append(b, byte(0x80|v&0x7f))
	}
	return append(b, byte(v))
}

// TestH2HPACKBomb: a 4 KiB field put in the dynamic table once and then
// referenced by its one-byte index thousands of times decodes to
// megabytes; the proxy refuses the request once the decoded list passes
// its limit, never forwards it, and goes on serving. A single field
// larger than the limit, across CONTINUATION frames, is refused the
// same way.
func TestH2HPACKBomb(t *testing.T) {
	be := newBackend(t, "peer", nil)
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	bombs := []struct {
		name  string
		block func(a *h2Attacker) []byte
	}{
		{"indexed field repeated", func(a *h2Attacker) []byte {
			// The dynamic table is 4 KiB: one field of a little less
			// fills it.
			b := a.headerBlock("/bomb")
			b = append(b, 0x40) // literal with incremental indexing, new name
			b = appendString(b, "x-bomb")
			b = appendString(b, strings.Repeat("b", 4000))
			// Index 62, the newest dynamic entry, 15000 times: 60 MB
			// decoded from 15 KB.
			return append(b, bytes.Repeat(appendInt(nil, 7, 0x80, 62), 15000)...)
		}},
		{"one field of 256 KiB", func(a *h2Attacker) []byte {
			return appendLiteral(a.headerBlock("/big"), "x-big", strings.Repeat("b", 256<<10))
		}},
	}
	for _, bomb := range bombs {
		t.Run(bomb.name, func(t *testing.T) {
			hits := be.Hits.Load()
			base := uint64(runtime.NumGoroutine())
			p := watchPeaks(t)
			a := dialH2(t, url, 0)
			if got := a.settings[http2.SettingMaxHeaderListSize]; got == 0 || got > 2*h2MaxHeaderBytes {
				t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE %d, want a limit near %d", got, h2MaxHeaderBytes)
			}
			a.read()
			writeBlock(t, a, 1, bomb.block(a))
			testutil.Eventually(t, waitBound, "an answer to the bomb, or the connection ended", func() bool {
				a.mu.Lock()
				defer a.mu.Unlock()
				select {
				case <-a.closed:
					return true
				default:
				}
				return a.statuses[1] != "" || a.resets[1] != 0
			})
			a.mu.Lock()
			status, reset, code := a.statuses[1], a.resets[1], a.goAway
			a.mu.Unlock()
			t.Logf("answer %q, reset %v, GOAWAY %v", status, reset, code)
			if status != "" && status != "431" {
				t.Errorf("answered %s, want 431, a reset or the connection ended", status)
			}
			if n := be.Hits.Load() - hits; n != 0 {
				t.Errorf("%d requests of the bomb reached the peer", n)
			}
			servesOthers(t, url)
			p.check(t, 64<<20, base+goroutineSlack)
		})
	}
}

// writeBlock sends a header block for stream id in HEADERS and as many
// CONTINUATION frames as the server's frame size needs.
func writeBlock(t testing.TB, a *h2Attacker, id uint32, block []byte) {
	t.Helper()
	first := min(len(block), h2MaxFrameSize)
	if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:first],
		EndStream: true, EndHeaders: first == len(block)}); err != nil {
		t.Fatal(err)
	}
	for rest := block[first:]; len(rest) > 0; {
		n := min(len(rest), h2MaxFrameSize)
		if err := a.fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
			return // the server may hang up before the end
		}
		rest = rest[n:]
	}
}

// TestH2ControlFloods: a client that sends SETTINGS or PING frames
// without end and never reads the acknowledgements does not have them
// queued without bound: the proxy hangs up on it, or stops reading from
// it, or reads on with what it owes the client bounded, and serves the
// others all the while.
func TestH2ControlFloods(t *testing.T) {
	be := newBackend(t, "peer", nil)
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	for _, flood := range []struct {
		name  string
		size  int
		write func(fr *http2.Framer) error
	}{
		{"SETTINGS", 9, func(fr *http2.Framer) error { return fr.WriteSettings() }},
		{"PING", 17, func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{1}) }},
	} {
		t.Run(flood.name, func(t *testing.T) {
			base := uint64(runtime.NumGoroutine())
			p := watchPeaks(t)
			a := dialH2(t, url, 4096)
			// Frames are written in large batches: one TLS record holds
			// many, as an attacker would pack them.
			var batch bytes.Buffer
			bfr := http2.NewFramer(&batch, nil)
			for batch.Len() < 15<<10 {
				flood.write(bfr)
			}
			per := batch.Len() / flood.size
			const most = 4 << 20 // frames the attacker tries
			sent := 0
			var werr error
			for sent < most {
				// A second without taking any: the proxy has stopped
				// reading this client.
				a.c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, werr = a.c.Write(batch.Bytes()); werr != nil {
					break
				}
				sent += per
			}
			servesOthers(t, url)
			p.check(t, 64<<20, base+goroutineSlack)
			how := "read them all"
			switch {
			case isTimeout(werr):
				how = "stopped reading"
			case werr != nil:
				how = "hung up"
			}
			t.Logf("the proxy %s after %d of %d %s frames (%v)", how, sent, most, flood.name, werr)
		})
	}
}

// TestH2StalledConnection: a client that asks for a large answer, opens
// its flow-control windows wide and then reads nothing of the connection
// is cut off after Timeouts.ClientSend without progress, and the peer's
// connection with it: the proxy's writes to the connection stall, not
// the stream's flow control, and the stream's own send limit alone does
// not end them.
func TestH2StalledConnection(t *testing.T) {
	be, peerGaveUp := bigAnswerPeer(t)
	url, _, _ := startFastTLS(t, Config{Timeouts: Timeouts{ClientSend: 100 * time.Millisecond}}, fastHooks{}, be.backend(1))
	a := dialH2(t, url, 4096, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	a.fr.WriteWindowUpdate(0, 1<<31-1-65535)
	start := time.Now()
	if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headerBlock("/big"),
		EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := await(t, peerGaveUp, "the peer's connection let go"); err == nil {
		t.Fatal("the peer wrote the whole answer to a client that reads nothing")
	}
	t.Logf("peer's connection let go %v after the request", time.Since(start).Round(time.Millisecond))
}

// TestH2ZeroWindowStall: a client that sets its stream windows to 0 and
// never opens them is cut off after Timeouts.ClientSend, and the peer's
// connection with it, instead of holding both for as long as it stays.
func TestH2ZeroWindowStall(t *testing.T) {
	be, peerGaveUp := bigAnswerPeer(t)
	url, _, _ := startFastTLS(t, Config{Timeouts: Timeouts{ClientSend: 100 * time.Millisecond}}, fastHooks{}, be.backend(1))
	a := dialH2(t, url, 0, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	a.read()
	start := time.Now()
	if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.headerBlock("/big"),
		EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := await(t, peerGaveUp, "the peer's connection let go"); err == nil {
		t.Fatal("the peer wrote the whole answer to a client whose window is 0")
	}
	t.Logf("peer's connection let go %v after the request", time.Since(start).Round(time.Millisecond))
	waitFor(t, "the stalled stream reset", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		_, reset := a.resets[1]
		return reset
	})
	servesOthers(t, url)
}

// TestH2StreamsPerConnection: the proxy advertises h2MaxStreams streams
// per connection and holds a client to them: streams beyond are refused
// and never reach a peer, and the streams it took are all answered.
func TestH2StreamsPerConnection(t *testing.T) {
	var held concurrency
	release := make(chan struct{})
	be := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		held.enter()
		defer held.leave()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "peer")
	})
	logs := &testutil.LogBuffer{}
	cfg := Config{Log: zerolog.New(logs).Level(zerolog.DebugLevel)}
	url, _, _ := startFastTLS(t, cfg, fastHooks{}, be.backend(1))
	a := dialH2(t, url, 0)
	if got := a.settings[http2.SettingMaxConcurrentStreams]; got != h2MaxStreams {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", got, h2MaxStreams)
	}
	a.read()
	const extra = 32
	block := a.headerBlock("/")
	for i := range uint32(h2MaxStreams + extra) {
		if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1 + 2*i, BlockFragment: block,
			EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the refused streams reset", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.resets) == extra
	})
	waitFor(t, "the streams taken at the peer", func() bool { return held.now.Load() == h2MaxStreams })
	close(release)
	waitFor(t, "every stream taken answered", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.statuses) == h2MaxStreams
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, code := range a.resets {
		if code != http2.ErrCodeRefusedStream && code != http2.ErrCodeProtocol {
			t.Errorf("stream %d reset with %v, want REFUSED_STREAM or PROTOCOL_ERROR", id, code)
		}
		if _, answered := a.statuses[id]; answered {
			t.Errorf("stream %d both refused and answered", id)
		}
	}
	if m := held.most.Load(); m != h2MaxStreams {
		t.Errorf("the peer held %d requests of one connection at once, want %d", m, h2MaxStreams)
	}
	// Each refusal is a protocol error of the client's, logged at debug
	// level by the library's name for it.
	lines := logs.Wait(t, extra, waitBound, "debug", "HTTP/2 protocol error")
	t.Logf("%d refusals logged, the first as %v", len(lines), lines[0].Fields["error"])
}
