package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// wharf's HTTP/2 front end. The wire format is golang.org/x/net/http2's
// Framer (frame parsing and checks, HEADERS with their CONTINUATION
// frames, the header list limit) and hpack; the connection loop, stream
// states and flow control are wharf's own, so that each stream goes
// through the same request flow as an HTTP/1.1 request (fastConn.exchange
// and forwarding) onto the same peer connections.
//
// One goroutine per connection reads and handles frames; each stream's
// exchange runs on a goroutine of its own, as an HTTP/1.1 connection's
// does. Writes take the connection's write lock, and the last of the
// writers waiting for it flushes: the answers of streams that finish
// together go out in one write.

// h2Preface is what an HTTP/2 client sends first (RFC 9113 section 3.4).
const h2Preface = http2.ClientPreface

// The windows wharf gives a client for request bodies: per stream, and
// over the connection. They bound the body bytes a client can make wharf
// hold before the peer takes them.
const (
	h2InitialWindow = 65535 // the protocol's initial window
	// h2MaxRefused is how many streams over h2MaxStreams a connection
	// may open before it is told to go away (ENHANCE_YOUR_CALM): a
	// client that cancels streams may open new ones before their
	// exchanges have ended, but not without end.
	h2MaxRefused = 4 * h2MaxStreams
)

// h2Conn is one client connection speaking HTTP/2.
type h2Conn struct {
	s   *FastServer
	fc  *fastConn // the connection as the server counts it
	nc  net.Conn  // the client connection: *tls.Conn over TLS
	br  *bufio.Reader
	fr  *http2.Framer
	dec h2Decoding // the reading goroutine's own

	// Writing: frames are written under wmu into bw; waiting counts the
	// writers that want wmu, and the one that leaves it at zero flushes.
	wmu     sync.Mutex
	bw      *bufio.Writer // taken from h2WriteBufs for a write, nil between them
	henc    *hpack.Encoder
	hbuf    bytes.Buffer
	wdl     time.Time // the write deadline set on nc
	werr    error     // the first write error: the connection is lost
	waiting atomic.Int32

	// The connection's state, under mu; cond is signalled when a window
	// grows, data arrives or a stream is reset.
	mu        sync.Mutex
	cond      sync.Cond
	streams   map[uint32]*h2Stream
	maxID     uint32 // the highest stream the client opened
	sendWin   int64  // what the client's connection window lets wharf send
	initWin   int64  // the client's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame  int    // the client's SETTINGS_MAX_FRAME_SIZE
	recvWin   int64  // what the client may still send on the connection
	refused   int    // streams refused for being over h2MaxStreams
	goingAway bool   // a GOAWAY was sent: no new streams
	lost      bool   // the connection is closing: every wait ends

	// The reading goroutine's own.
	sawFirst bool // the client's first SETTINGS arrived
	unacked  int  // SETTINGS wharf sent and the client has not acknowledged

	// Waits on cond for body data or window (see waitLocked): how many
	// wait, and the timer that wakes them to check their deadlines.
	waiters   int
	tick      *time.Timer
	tickEvery time.Duration
}

// serveH2 serves the connection as HTTP/2. pre holds bytes already read
// from it (a plain connection's preface, read as a request head might
// have been); over TLS it is empty.
func (c *fastConn) serveH2(pre []byte) {
	c.idle.Store(false)
	c.c.SetDeadline(time.Time{})
	c.rdl = time.Time{}
	h := &h2Conn{s: c.s, fc: c, nc: c.c}
	c.h2.Store(h)
	if c.sockTLS != nil {
		c.sockTLS.h1 = false // h2Writer keeps the send timeout
	}
	var r io.Reader = h.nc
	if len(pre) > 0 {
		r = io.MultiReader(bytes.NewReader(pre), h.nc)
	}
	h.br = bufio.NewReaderSize(r, 4<<10)
	h.fr = http2.NewFramer(h2Buffered{h}, h.br)
	h.fr.SetMaxReadFrameSize(h2MaxFrameSize)
	// Each frame is done with before the next is read (DATA is copied
	// into its stream's buffer), so the Framer may reuse them.
	h.fr.SetReuseFrames()
	h.dec.init() // header blocks are decoded by readBlock
	// Answers' fields are sent as literals, never indexed, as nginx sends
	// them: the encoder then keeps no reference to them (they are views
	// of a buffer that is reused), and holds no table per connection.
	h.henc = hpack.NewEncoder(&h.hbuf)
	h.henc.SetMaxDynamicTableSizeLimit(0)
	h.cond.L = &h.mu
	h.streams = map[uint32]*h2Stream{}
	h.sendWin, h.initWin, h.maxFrame = h2InitialWindow, h2InitialWindow, 16<<10
	h.recvWin = h2ConnWindow
	t := h.s.cfg.Timeouts
	h.tickEvery = min(deadlineSlack, t.RequestBody/4, t.ClientSend/4)
	h.serve()
	// Reading has ended: the streams still running cannot be answered
	// (see shutdown), and writes in progress must not wait for a client
	// that is gone.
	c.shut(syscall.SHUT_RDWR)
	h.shutdown()
	c.h2.Store(nil)
	c.close()
}

// h2WriteBufs hold the write buffers of HTTP/2 connections: a connection
// takes one for the frames written until the next flush, and gives it
// back after, so that a connection between writes, an idle one above all,
// holds none.
var h2WriteBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

// h2Buffered is what the Framer writes to: the buffer the connection
// holds for the write in progress (see write).
type h2Buffered struct{ h *h2Conn }

func (b h2Buffered) Write(p []byte) (int, error) {
	h := b.h
	if h.bw == nil {
		h.bw = h2WriteBufs.Get().(*bufio.Writer)
		h.bw.Reset(h2Writer{h})
	}
	return h.bw.Write(p)
}

// h2Writer is the connection's socket as bw writes it: within
// Timeouts.ClientSend of the last progress, as HTTP/1.1's writes.
type h2Writer struct{ h *h2Conn }

func (w h2Writer) Write(b []byte) (int, error) {
	h := w.h
	return writeProgressing(h.nc, &h.wdl, h.s.cfg.Timeouts.ClientSend, h.nc, b, 0)
}

// serve reads and handles frames until the connection ends.
func (h *h2Conn) serve() {
	h.nc.SetReadDeadline(time.Now().Add(h.s.cfg.Timeouts.RequestHeader))
	var pre [len(h2Preface)]byte
	if _, err := io.ReadFull(h.br, pre[:]); err != nil || string(pre[:]) != h2Preface {
		return
	}
	h.unacked++
	h.write(func() error {
		if err := h.fr.WriteSettings(
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxStreams},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
			http2.Setting{ID: http2.SettingMaxFrameSize, Val: h2MaxFrameSize},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2MaxHeaderBytes},
			http2.Setting{ID: http2.SettingHeaderTableSize, Val: h2HeaderTableSize},
		); err != nil {
			return err
		}
		return h.fr.WriteWindowUpdate(0, h2ConnWindow-h2InitialWindow)
	})
	// A connection with no stream may wait Timeouts.ClientIdle for the
	// next, and counts as idle for Config.MaxConns; one with streams
	// waits as long as they take (see onHeaders and forgetLocked).
	h.mu.Lock()
	h.idleLocked()
	h.mu.Unlock()
	for {
		f, err := h.fr.ReadFrame()
		if err == nil {
			err = h.handle(f)
		}
		if err == nil {
			continue
		}
		var se http2.StreamError
		var ce http2.ConnectionError
		switch {
		case errors.As(err, &se):
			h.s.cfg.Log.Debug().Str("error", se.Code.String()).Uint32("stream", se.StreamID).
				Str("client", h.nc.RemoteAddr().String()).Msg("HTTP/2 protocol error")
			h.resetStream(se.StreamID, se.Code)
			continue
		case errors.As(err, &ce):
			h.s.cfg.Log.Debug().Str("error", http2.ErrCode(ce).String()).
				Str("client", h.nc.RemoteAddr().String()).Msg("HTTP/2 protocol error")
			h.goAway(http2.ErrCode(ce), true)
		case err == http2.ErrFrameTooLarge:
			h.goAway(http2.ErrCodeFrameSize, true)
		case err == errH2Calm:
			h.goAway(http2.ErrCodeEnhanceYourCalm, true)
		}
		return
	}
}

// errH2Calm: the client opened streams far beyond the limit.
var errH2Calm = errors.New("proxy: HTTP/2 client over the stream limit")

// handle handles one frame from the client. A StreamError resets one
// stream; any other error ends the connection.
func (h *h2Conn) handle(f http2.Frame) error {
	if !h.sawFirst {
		if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		h.sawFirst = true
	}
	switch f := f.(type) {
	case *http2.HeadersFrame:
		b, err := h.readBlock(f)
		if err != nil {
			return err
		}
		return h.onHeaders(b)
	case *http2.DataFrame:
		return h.onData(f)
	case *http2.SettingsFrame:
		return h.onSettings(f)
	case *http2.WindowUpdateFrame:
		return h.onWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		return h.write(func() error { return h.fr.WritePing(true, f.Data) })
	case *http2.RSTStreamFrame:
		h.mu.Lock()
		defer h.mu.Unlock()
		if f.StreamID > h.maxID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // idle
		}
		if st := h.streams[f.StreamID]; st != nil {
			st.closed = true
			st.endLocked()
			h.forgetLocked(st)
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
	case *http2.GoAwayFrame:
		// The client opens no more streams; those it has run to their end.
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // other frames are ignored, as the protocol asks
}

func (h *h2Conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		if h.unacked--; h.unacked < 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			h.mu.Lock()
			defer h.mu.Unlock()
			delta := int64(s.Val) - h.initWin
			h.initWin = int64(s.Val)
			for _, st := range h.streams {
				if st.sendWin += delta; st.sendWin > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			h.cond.Broadcast()
		case http2.SettingMaxFrameSize:
			h.mu.Lock()
			h.maxFrame = int(s.Val)
			h.mu.Unlock()
		case http2.SettingHeaderTableSize:
			// The encoder indexes nothing (see serveH2), so any table
			// size the client's decoder has is enough.
		}
		return nil
	})
	if err != nil {
		return err
	}
	return h.write(h.fr.WriteSettingsAck)
}

func (h *h2Conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.StreamID == 0 {
		if h.sendWin += int64(f.Increment); h.sendWin > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		h.cond.Broadcast()
		return nil
	}
	if f.StreamID > h.maxID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle
	}
	st := h.streams[f.StreamID]
	if st == nil || st.reset {
		return nil // closed: a window update may cross the end
	}
	if st.sendWin += int64(f.Increment); st.sendWin > 1<<31-1 {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	h.cond.Broadcast()
	return nil
}

func (h *h2Conn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	h.mu.Lock()
	if id == 0 || id > h.maxID {
		h.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle
	}
	n := int64(f.Length) // padding counts against the windows too
	if n > h.recvWin {
		h.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	h.recvWin -= n
	st := h.streams[id]
	if st == nil || st.bodyEnd || st.reset {
		// Not open: the data is dropped and its room given back.
		resetSent := st != nil && st.reset && !st.closed
		h.mu.Unlock()
		h.giveBack(0, n)
		if resetSent {
			return nil // a reset has been sent already
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if n > st.recvWin {
		h.mu.Unlock()
		h.giveBack(0, n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	st.recvWin -= n
	data := f.Data()
	st.got += int64(len(data))
	if st.declared >= 0 && (st.got > st.declared || f.StreamEnded() && st.got != st.declared) {
		// A body that differs from its Content-Length is malformed.
		h.mu.Unlock()
		h.giveBack(0, n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	st.in.push(data)
	pad := n - int64(len(data))
	if f.StreamEnded() {
		st.bodyEnd = true
	}
	h.cond.Broadcast()
	h.mu.Unlock()
	if pad > 0 {
		h.giveBack(id, pad)
	}
	return nil
}

// giveBack returns n bytes of window to the client: the connection's, and
// stream id's while it is open (0: none).
func (h *h2Conn) giveBack(id uint32, n int64) {
	if n <= 0 {
		return
	}
	h.mu.Lock()
	h.recvWin += n
	sid := uint32(0)
	if st := h.streams[id]; id != 0 && st != nil && !st.bodyEnd && !st.reset {
		st.recvWin += n
		sid = id
	}
	h.mu.Unlock()
	h.write(func() error {
		if err := h.fr.WriteWindowUpdate(0, uint32(n)); err != nil {
			return err
		}
		if sid != 0 {
			return h.fr.WriteWindowUpdate(sid, uint32(n))
		}
		return nil
	})
}

func (h *h2Conn) onHeaders(f *h2Block) error {
	id := f.StreamID
	if id%2 != 1 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	h.mu.Lock()
	if st := h.streams[id]; st != nil {
		// Trailers: they end the body, and are dropped, as HTTP/1.1's
		// are (see untrailed).
		defer h.mu.Unlock()
		switch {
		case st.closed:
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		case st.reset:
			return nil
		case st.bodyEnd && st.ended:
			// Closed both ways (RFC 9113 section 5.1), its exchange
			// still finishing.
			return http2.ConnectionError(http2.ErrCodeStreamClosed)
		case st.bodyEnd:
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		case st.trailers:
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		st.trailers = true
		if !f.StreamEnded() || len(f.pseudo()) > 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		if st.declared >= 0 && st.got != st.declared {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		st.bodyEnd = true
		h.cond.Broadcast()
		return nil
	}
	if id <= h.maxID {
		h.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	h.maxID = id
	if h.goingAway {
		h.mu.Unlock()
		return nil // after the last stream a GOAWAY let in
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		h.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if len(h.streams) >= h2MaxStreams {
		// Streams stay counted until their exchange ends, even when the
		// client reset them: resetting streams (CVE-2023-44487) cannot
		// start more exchanges at once than the limit.
		h.refused++
		refused := h.refused
		h.mu.Unlock()
		if refused > h2MaxRefused {
			return errH2Calm
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if !h.fc.served.Load() {
		h.fc.served.Store(true) // not a silent connection (see makeRoom)
	}
	if len(h.streams) == 0 {
		h.fc.idle.Store(false)
		h.nc.SetReadDeadline(time.Time{})
	}
	st := getH2Stream()
	st.h, st.id = h, id
	st.sendWin, st.recvWin = h.initWin, h2StreamWindow
	st.bodyEnd = f.StreamEnded()
	h.streams[id] = st
	h.mu.Unlock()

	status, err := st.request(f)
	if err != nil {
		h.mu.Lock()
		st.running = false // never started
		h.forgetLocked(st)
		h.mu.Unlock()
		return err
	}
	startStream(st, status)
	return nil
}

// forgetLocked takes st out of the connection's streams once its
// exchange has ended and nothing more can arrive for it; h.mu is held.
func (h *h2Conn) forgetLocked(st *h2Stream) {
	if h.streams[st.id] != st {
		return
	}
	if st.running || !st.bodyEnd && !st.reset {
		return
	}
	delete(h.streams, st.id)
	if len(h.streams) == 0 {
		h.idleLocked()
		h.cond.Broadcast() // for shutdown, waiting
		if h.goingAway && !h.lost {
			h.fc.shut(syscall.SHUT_RD) // a graceful shutdown's last stream
		}
	}
	if !st.running {
		st.in.release()
		putH2Stream(st)
	}
}

// idleLocked marks the connection idle, its last stream ended: the read
// waiting for the next frame may wait Timeouts.ClientIdle, and an accept
// loop at Config.MaxConns may close the connection. h.mu is held, so
// that this and a stream's start happen in order.
func (h *h2Conn) idleLocked() {
	h.fc.idle.Store(true)
	h.nc.SetReadDeadline(time.Now().Add(h.s.cfg.Timeouts.ClientIdle))
}

// resetStream tells the client that stream id is closed with code.
func (h *h2Conn) resetStream(id uint32, code http2.ErrCode) {
	h.mu.Lock()
	if st := h.streams[id]; st != nil {
		st.endLocked()
		h.forgetLocked(st)
	}
	h.mu.Unlock()
	h.write(func() error { return h.fr.WriteRSTStream(id, code) })
}

// goAway tells the client that streams after the last it opened will not
// be served; with an error, the connection then ends.
func (h *h2Conn) goAway(code http2.ErrCode, fatal bool) {
	h.mu.Lock()
	if h.goingAway && !fatal {
		h.mu.Unlock()
		return
	}
	h.goingAway = true
	last := h.maxID
	h.mu.Unlock()
	h.write(func() error { return h.fr.WriteGoAway(last, code, nil) })
}

// shutdown ends the connection's streams and waits for their exchanges.
func (h *h2Conn) shutdown() {
	h.mu.Lock()
	h.lost = true
	h.cond.Broadcast()
	if h.tick != nil {
		h.tick.Stop()
	}
	for len(h.streams) > 0 {
		for _, st := range h.streams {
			st.endLocked()
			h.forgetLocked(st)
		}
		if len(h.streams) > 0 {
			h.cond.Wait()
		}
	}
	h.mu.Unlock()
}

// gracefulShutdown sends a GOAWAY and ends the connection once its
// streams have (Shutdown of the server).
func (h *h2Conn) gracefulShutdown() {
	h.goAway(http2.ErrCodeNo, false)
	h.mu.Lock()
	idle := len(h.streams) == 0
	h.mu.Unlock()
	if idle {
		h.fc.shut(syscall.SHUT_RD)
	}
}

// write runs w, which writes frames with h.fr, under the write lock, and
// flushes unless another writer is waiting for the lock: that one, or the
// last of them, flushes what all wrote.
func (h *h2Conn) write(w func() error) error {
	h.waiting.Add(1)
	h.wmu.Lock()
	defer h.wmu.Unlock()
	last := h.waiting.Add(-1) == 0
	if h.werr != nil {
		return h.werr
	}
	err := w()
	if err == nil && last && h.bw != nil {
		err = h.bw.Flush()
		if err == nil {
			h.bw.Reset(nil)
			h2WriteBufs.Put(h.bw)
			h.bw = nil
		}
	}
	if err != nil {
		h.werr = err
		// Reads end too: the connection is lost.
		h.fc.shut(syscall.SHUT_RDWR)
	}
	return err
}

// writeBlock writes the header block in h.hbuf (which the caller filled
// under wmu) as HEADERS and CONTINUATION frames of at most the client's
// frame size, END_STREAM set when end is; wmu is held.
func (h *h2Conn) writeBlock(id uint32, end bool) error {
	block := h.hbuf.Bytes()
	h.mu.Lock()
	max := h.maxFrame
	h.mu.Unlock()
	first := block[:min(len(block), max)]
	block = block[len(first):]
	err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first,
		EndStream: end, EndHeaders: len(block) == 0})
	for err == nil && len(block) > 0 {
		frag := block[:min(len(block), max)]
		block = block[len(frag):]
		err = h.fr.WriteContinuation(id, len(block) == 0, frag)
	}
	h.hbuf.Reset()
	return err
}
