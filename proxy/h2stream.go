package proxy

import (
	"io"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// An HTTP/2 stream's exchange is an HTTP/1.1 exchange as the rest of the
// fast path knows it: its request is written as an HTTP/1.1 head into the
// exchange's input buffer and parsed there, with the same rules and
// limits, and its body arrives in that buffer as a connection's would
// (fill), chunked when the client gave no length. Only where the answer
// goes differs: HEADERS and DATA frames (relayH2, writeError).

// h2Stream is one stream of an h2Conn. The fields under "h.mu" are shared
// with the connection's goroutine; the rest belong to the exchange.
type h2Stream struct {
	h  *h2Conn
	id uint32

	// Under h.mu.
	sendWin  int64   // what the stream's window lets wharf send
	recvWin  int64   // what the client may still send on the stream
	in       h2Body  // body bytes received and not yet taken
	declared int64   // the request's Content-Length, -1 if none
	got      int64   // body bytes received
	bodyEnd  bool    // nothing more comes from the client
	reset    bool    // the stream was reset: nothing more is written
	closed   bool    // the client reset it: frames for it are errors
	trailers bool    // a trailer section arrived
	running  bool    // the exchange's goroutine has not ended
	up       *upConn // the peer connection in use (see watch)
	cut      bool    // up was cut off by a reset

	ex      fastConn // the exchange, as an HTTP/1.1 connection's
	chunked bool     // the body goes to the peer chunked
	lastSet bool     // the chunked body's last chunk is in ex.in
	ended   bool     // END_STREAM was sent (set under h.mu, see markEnded)
	names   []byte   // scratch for lower-cased field names
	status  [3]byte
}

var h2Streams = sync.Pool{New: func() any { return new(h2Stream) }}

func getH2Stream() *h2Stream {
	st := h2Streams.Get().(*h2Stream)
	st.running, st.declared = true, -1
	return st
}

func putH2Stream(st *h2Stream) {
	// The scratch slices keep their storage for the next stream.
	names, bufs := st.names[:0], st.in.bufs[:0]
	*st = h2Stream{names: names, in: h2Body{bufs: bufs}}
	h2Streams.Put(st)
}

// h2Body holds the DATA a stream received and its exchange has not yet
// taken, in pooled buffers of fastBufSize: a frame is never larger
// (h2MaxFrameSize), and the stream's window bounds how many there are.
type h2Body struct {
	bufs []*[]byte
	r    int // read offset in bufs[0]
	w    int // write offset in the last buffer
	n    int // bytes held
}

func (b *h2Body) push(p []byte) {
	for len(p) > 0 {
		if len(b.bufs) == 0 || b.w == fastBufSize {
			b.bufs = append(b.bufs, getBuf())
			b.w = 0
		}
		k := copy((*b.bufs[len(b.bufs)-1])[b.w:], p)
		b.w += k
		b.n += k
		p = p[k:]
	}
}

// take moves up to len(dst) bytes into dst.
func (b *h2Body) take(dst []byte) int {
	n := 0
	for n < len(dst) && b.n > 0 {
		end := fastBufSize
		if len(b.bufs) == 1 {
			end = b.w
		}
		k := copy(dst[n:], (*b.bufs[0])[b.r:end])
		n += k
		b.r += k
		b.n -= k
		if b.r == end {
			putBuf(b.bufs[0])
			b.bufs[0] = nil
			b.bufs = b.bufs[:copy(b.bufs, b.bufs[1:])]
			b.r = 0
			if len(b.bufs) == 0 {
				b.w = 0
			}
		}
	}
	return n
}

func (b *h2Body) release() {
	for i, p := range b.bufs {
		putBuf(p)
		b.bufs[i] = nil
	}
	b.bufs, b.r, b.w, b.n = b.bufs[:0], 0, 0, 0
}

// connectionFields are the fields HTTP/2 forbids in a request (RFC 9113
// section 8.2.2): it has no connection-specific ones.
func connectionField(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// request checks the request of HEADERS f and writes it, as an HTTP/1.1
// head, into the exchange's buffer, parsed. It returns a status to answer
// with instead of forwarding (0: forward), or a StreamError for a
// malformed request.
func (st *h2Stream) request(f *h2Block) (int, error) {
	h := st.h
	c := &st.ex
	c.s, c.c, c.tc, c.clientIP, c.h2s = h.s, h.nc, h.fc.tc, h.fc.clientIP, st
	malformed := http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	if f.truncated {
		return 431, nil
	}
	var method, scheme, path, authority string
	for _, hf := range f.pseudo() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":path":
			path = hf.Value
		case ":authority":
			authority = hf.Value
		default: // :protocol, for a CONNECT wharf does not offer
			return 0, malformed
		}
	}
	if method == "" {
		return 0, malformed
	}
	if method == "CONNECT" {
		if scheme != "" || path != "" || authority == "" {
			return 0, malformed
		}
		return 405, nil
	}
	if scheme == "" || path == "" || path[0] != '/' && !(path == "*" && method == "OPTIONS") {
		return 0, malformed
	}
	fields := f.regular()
	size := len(method) + len(path) + len(authority) + 64
	var cookies int
	for _, hf := range fields {
		switch {
		case connectionField(hf.Name):
			return 0, malformed
		case hf.Name == "te" && hf.Value != "trailers":
			return 0, malformed
		case hf.Name == "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || st.declared >= 0 && n != st.declared {
				return 0, malformed
			}
			st.declared = n
		case hf.Name == "cookie":
			cookies++
		}
		size += len(hf.Name) + len(hf.Value) + 4
	}
	if st.bodyEnd && st.declared > 0 {
		return 0, malformed // a length with no body to have it
	}
	if size > fastBigSize {
		return 431, nil
	}

	// The head, as an HTTP/1.1 client would have sent it.
	if size > fastBufSize {
		c.in = bigBufs.Get().(*[]byte)
	} else {
		c.in = getBuf()
	}
	b := (*c.in)[:0]
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\n"...)
	if authority != "" {
		b = append(b, "Host: "...)
		b = append(b, authority...)
		b = append(b, "\r\n"...)
	}
	for _, hf := range fields {
		switch {
		case hf.Name == "host" && authority != "", hf.Name == "cookie" && cookies > 1,
			hf.Name == "expect": // the body is read before a peer is chosen
			continue
		}
		b = append(b, hf.Name...)
		b = append(b, ": "...)
		b = append(b, hf.Value...)
		b = append(b, "\r\n"...)
	}
	if cookies > 1 {
		// HTTP/2 may split a Cookie field; HTTP/1.1 has one (RFC 9113
		// section 8.2.3).
		b = append(b, "Cookie: "...)
		sep := false
		for _, hf := range fields {
			if hf.Name == "cookie" {
				if sep {
					b = append(b, "; "...)
				}
				b = append(b, hf.Value...)
				sep = true
			}
		}
		b = append(b, "\r\n"...)
	}
	switch {
	case !st.bodyEnd && st.declared < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		st.chunked = true
	case st.bodyEnd && st.declared < 0 && (method == "POST" || method == "PUT" || method == "PATCH"):
		b = append(b, "Content-Length: 0\r\n"...)
	}
	b = append(b, "\r\n"...)
	c.r, c.w = 0, len(b)
	x := c.state()
	if err := x.parser.ParseRequest(&x.req, b); err != nil {
		if perr, ok := err.(*httpwire.Error); ok {
			return perr.Status(), nil
		}
		return 400, nil
	}
	return 0, nil
}

// run runs the stream's exchange, or answers status, and ends the stream.
func (st *h2Stream) run(status int) {
	c := &st.ex
	switch status {
	case 0:
		c.exchange()
	case 405:
		c.writeError(405, "CONNECT is not supported", "", true)
	case 431:
		c.writeError(431, msgBadRequest+": request header fields too large", "", true)
	default:
		c.writeError(status, msgBadRequest, "", true)
	}
	h := st.h
	if !st.ended {
		// The answer broke off (the peer failed in its middle, or the
		// client went away): the client learns it by the reset.
		h.mu.Lock()
		reset := st.reset
		h.mu.Unlock()
		if !reset {
			h.resetStream(st.id, http2.ErrCodeInternal)
		}
	}
	c.releaseIdle()
	if c.in != nil {
		putBuf(c.in)
		c.in = nil
	}
	h.mu.Lock()
	st.running = false
	if !st.bodyEnd && !st.reset {
		// Answered before the client finished its body: it may stop
		// sending (RFC 9113 section 8.1).
		st.reset, st.bodyEnd = true, true
		h.mu.Unlock()
		h.write(func() error { return h.fr.WriteRSTStream(st.id, http2.ErrCodeNo) })
		h.mu.Lock()
	}
	if h.streams[st.id] == st {
		h.forgetLocked(st)
	} else {
		st.in.release()
		putH2Stream(st)
	}
	h.mu.Unlock()
}

// waitLocked waits on h.cond until it is signalled, and reports false,
// without waiting, once deadline has passed; h.mu is held. Callers wait
// in a loop. Deadlines are checked when the connection's tick signals
// the waiters, every h2Tick while any waits: a wait may run over its
// deadline by up to that, as the client limits of HTTP/1.1 do (see
// setLazyDeadline), and waiting allocates nothing.
func (h *h2Conn) waitLocked(deadline time.Time) bool {
	if !time.Now().Before(deadline) {
		return false
	}
	if h.waiters++; h.waiters == 1 {
		if h.tick == nil {
			h.tick = time.AfterFunc(h.tickEvery, h.onTick)
		} else {
			h.tick.Reset(h.tickEvery)
		}
	}
	h.cond.Wait()
	h.waiters--
	return true
}

// onTick wakes the waiters to check their deadlines, and comes again
// while any waits.
func (h *h2Conn) onTick() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cond.Broadcast()
	if h.waiters > 0 && !h.lost {
		h.tick.Reset(h.tickEvery)
	}
}

// fill is fillBody for a stream: it moves received body bytes into
// c.in[c.w:], with chunk framing when the body goes chunked, waiting up
// to Timeouts.RequestBody for them.
func (st *h2Stream) fill(c *fastConn) error {
	if c.x != nil {
		c.x.forgetHead()
	}
	if c.in == nil {
		c.in = getBuf()
		c.r, c.w = 0, 0
	}
	h := st.h
	deadline := time.Now().Add(h.s.cfg.Timeouts.RequestBody)
	h.mu.Lock()
	for st.in.n == 0 && !st.bodyEnd && !st.reset && !h.lost {
		if !h.waitLocked(deadline) {
			h.mu.Unlock()
			h.resetStream(st.id, http2.ErrCodeCancel)
			return errClientClosed
		}
	}
	if st.reset || h.lost {
		h.mu.Unlock()
		return errClientClosed
	}
	room := (*c.in)[c.w:]
	n := 0
	if st.chunked {
		if k := min(st.in.n, len(room)-16); k > 0 {
			size := strconv.AppendInt(room[:0], int64(k), 16)
			p := len(size)
			p += copy(room[p:], crlf)
			n = st.in.take(room[p : p+k])
			p += n
			p += copy(room[p:], crlf)
			c.w += p
			room = room[p:]
		}
		if st.in.n == 0 && st.bodyEnd && !st.lastSet && len(room) >= 5 {
			c.w += copy(room, "0\r\n\r\n")
			st.lastSet = true
		}
	} else {
		n = st.in.take(room)
		c.w += n
	}
	end := st.bodyEnd && st.in.n == 0
	h.mu.Unlock()
	if n > 0 {
		h.giveBack(st.id, int64(n))
	} else if end && !st.chunked {
		return errClientClosed // the body ended short of what was asked
	}
	return nil
}

// send writes p to the client as DATA, as its windows allow, ending the
// stream after it when end is set.
func (st *h2Stream) send(p []byte, end bool) error {
	h := st.h
	for {
		h.mu.Lock()
		k := 0
		if len(p) > 0 {
			deadline := time.Time{}
			for !st.reset && !h.lost && (st.sendWin <= 0 || h.sendWin <= 0) {
				if deadline.IsZero() {
					deadline = time.Now().Add(h.s.cfg.Timeouts.ClientSend)
				}
				if !h.waitLocked(deadline) {
					// A window that stays closed is a client that
					// takes nothing: as a socket that takes nothing.
					h.mu.Unlock()
					h.resetStream(st.id, http2.ErrCodeFlowControl)
					return errClientClosed
				}
			}
			k = int(min(int64(len(p)), st.sendWin, h.sendWin, int64(h.maxFrame)))
		}
		if st.reset || h.lost {
			h.mu.Unlock()
			return errClientClosed
		}
		st.sendWin -= int64(k)
		h.sendWin -= int64(k)
		h.mu.Unlock()
		last := end && k == len(p)
		if err := h.write(func() error {
			err := h.fr.WriteData(st.id, last, p[:k])
			if err == nil && last {
				st.markEnded()
			}
			return err
		}); err != nil {
			return errClientClosed
		}
		if last {
			return nil
		}
		p = p[k:]
		if len(p) == 0 {
			return nil
		}
	}
}

// answer writes the head of the peer's answer res as HEADERS, with o's
// changes, and first, the body bytes at hand, after it in DATA; end ends
// the stream after first. length is the Content-Length to send, -1 for
// none.
func (st *h2Stream) answer(res *httpwire.Response, o *httpwire.ResponseOptions, length int64, first []byte, end bool) error {
	h := st.h
	err := h.write(func() error {
		st.encodeStatus(res.Status)
		httpwire.VisitResponseFields(res, o, st.encodeField)
		if length >= 0 {
			h.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: bstring(strconv.AppendInt(st.names[:0], length, 10))})
		}
		if err := h.writeBlock(st.id, end && len(first) == 0); err != nil {
			return err
		}
		if end && len(first) == 0 {
			st.markEnded()
		}
		if len(first) == 0 {
			return nil
		}
		// What the windows allow goes out with the head.
		h.mu.Lock()
		k := int(min(int64(len(first)), st.sendWin, h.sendWin, int64(h.maxFrame)))
		k = max(k, 0)
		st.sendWin -= int64(k)
		h.sendWin -= int64(k)
		h.mu.Unlock()
		if k == 0 {
			return nil
		}
		last := end && k == len(first)
		if err := h.fr.WriteData(st.id, last, first[:k]); err != nil {
			return err
		}
		if last {
			st.markEnded()
		}
		first = first[k:]
		return nil
	})
	if err != nil {
		return errClientClosed
	}
	if len(first) > 0 || end && !st.ended {
		return st.send(first, end)
	}
	return nil
}

func (st *h2Stream) encodeStatus(code int) {
	st.status = [3]byte{byte('0' + code/100%10), byte('0' + code/10%10), byte('0' + code%10)}
	st.h.henc.WriteField(hpack.HeaderField{Name: ":status", Value: bstring(st.status[:])})
}

// encodeField encodes one answer field, its name in lower case.
func (st *h2Stream) encodeField(name, value []byte, weak bool) {
	n := st.names[:0]
	for _, b := range name {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		n = append(n, b)
	}
	v := value
	if weak {
		n = append(n, "W/"...)
		n = append(n, value...)
		v = n[len(name):]
		n = n[:len(name)]
	}
	st.names = n[:0]
	if connectionField(bstring(n)) {
		return
	}
	st.h.henc.WriteField(hpack.HeaderField{Name: bstring(n), Value: bstring(v)})
}

// sendTrailers ends the stream after a chunked answer: with its trailer
// section's fields in a HEADERS frame with END_STREAM (RFC 9113 section
// 8.1), those that may be trailer fields (httpwire.VisitTrailerFields),
// or with an empty DATA frame when none is left.
func (st *h2Stream) sendTrailers(res *httpwire.Response, section []byte) error {
	h := st.h
	if len(section) <= len(crlf) {
		return st.send(nil, true) // the empty line alone
	}
	if st.gone() {
		return errClientClosed
	}
	err := h.write(func() error {
		httpwire.VisitTrailerFields(section, res, func(name, value []byte) {
			st.encodeField(name, value, false)
		})
		if h.hbuf.Len() == 0 {
			if err := h.fr.WriteData(st.id, true, nil); err != nil {
				return err
			}
		} else if err := h.writeBlock(st.id, true); err != nil {
			return err
		}
		st.markEnded()
		return nil
	})
	if err != nil {
		return errClientClosed
	}
	return nil
}

// writeError answers with wharf's JSON error body.
func (st *h2Stream) writeError(status int, msg, service string) {
	c := &st.ex
	if c.out == nil {
		c.out = getBuf()
	}
	// The HTTP/1.1 answer is made and parsed, so that its fields are
	// those HTTP/1.1 clients get.
	b := appendErrorResponse((*c.out)[:0], status, msg, service, false)
	var p httpwire.Parser
	var res httpwire.Response
	if p.ParseResponse(&res, b, false) != nil {
		return
	}
	st.answer(&res, &httpwire.ResponseOptions{}, res.ContentLength, b[res.HeadLen:], true)
}

// writeBody is write for a stream: body bytes of the answer, as DATA.
func (st *h2Stream) writeBody(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if err := st.send(b, false); err != nil {
		return 0, err
	}
	return len(b), nil
}

// relayH2 is relay for a stream: the answer in res (its first bytes in
// rbuf) goes to the client as HEADERS and DATA, its body decoded from the
// peer's framing, and a chunked body's trailer fields in HEADERS after
// it (sendTrailers). It reports the outcome as relay does; the stream, not
// a connection, is what ends.
func (f *forwarding) relayH2(up *upConn, pool *upstreamPool, res *httpwire.Response, rbuf *[]byte) (bool, outcome) {
	c := f.c
	st := c.h2s
	vary := !f.isHead && c.s.gzip.compressible(res)
	if vary && f.acceptsGzip {
		opts := httpwire.ResponseOptions{Gzip: true, Vary: true, Unchunk: true}
		reuse, out := f.relayGzip(up, res, rbuf, &opts)
		putBuf(rbuf)
		if out != answered {
			pool.discard(up)
			return false, out
		}
		if st.send(nil, true) != nil {
			pool.put(up, reuse, f.start)
			return false, clientGone
		}
		pool.put(up, reuse, f.start)
		return false, answered
	}
	defer putBuf(rbuf)
	opts := httpwire.ResponseOptions{Vary: vary}
	length := int64(-1)
	if !res.Chunked && res.ContentLength >= 0 && res.Status >= 200 && res.Status != 204 {
		length = res.ContentLength
	}
	body := (*rbuf)[res.HeadLen:up.rw]
	reuse := !res.Close
	switch res.Framing {
	case httpwire.NoBody:
		reuse = reuse && len(body) == 0
		if st.answer(res, &opts, length, nil, true) != nil {
			pool.put(up, reuse, f.start)
			return false, clientGone
		}
	case httpwire.ByLength:
		n := res.ContentLength
		first := min(int64(len(body)), n)
		reuse = reuse && int64(len(body)) <= n
		if st.answer(res, &opts, length, body[:first], first == n) != nil {
			pool.discard(up)
			return false, clientGone
		}
		if out := f.relayRest(up, rbuf, n-first); out != answered {
			pool.discard(up)
			return false, out
		}
	case httpwire.ByChunks:
		if st.answer(res, &opts, -1, nil, false) != nil {
			pool.discard(up)
			return false, clientGone
		}
		var ch httpwire.Chunked
		// The trailer section, passed on as a trailing HEADERS frame: a
		// view of the bytes read when they hold all of it, else gathered
		// in held as it arrives.
		var held *[]byte
		heldLen := 0
		defer func() { putBuf(held) }()
		pending := body
		for {
			for len(pending) > 0 {
				before := ch.TrailerLen()
				n, data, done, err := ch.Decode(pending)
				if err != nil {
					pool.discard(up)
					return false, brokenAnswer
				}
				// Bytes of the section come last in what Decode used.
				section := pending[n-(ch.TrailerLen()-before) : n]
				pending = pending[n:]
				if len(section) > 0 && (held != nil || !done) {
					if held == nil {
						held = getBuf() // the section's limit is smaller
					}
					heldLen += copy((*held)[heldLen:], section)
					section = (*held)[:heldLen]
				}
				if len(data) > 0 && st.send(data, false) != nil {
					pool.discard(up)
					return false, clientGone
				}
				if done {
					if st.sendTrailers(res, section) != nil {
						pool.discard(up)
						return false, clientGone
					}
					pool.put(up, reuse && len(pending) == 0, f.start)
					return false, answered
				}
			}
			up.armRead(c.s.cfg.Timeouts.UpstreamRead)
			k, err := up.sock.Read(*rbuf)
			if k == 0 && err != nil {
				pool.discard(up)
				return false, brokenAnswer
			}
			pending = (*rbuf)[:k]
		}
	default: // ByClose
		defer pool.discard(up)
		if st.answer(res, &opts, -1, body, false) != nil {
			return false, clientGone
		}
		for {
			up.armRead(c.s.cfg.Timeouts.UpstreamRead)
			k, err := up.sock.Read(*rbuf)
			if k > 0 && st.send((*rbuf)[:k], false) != nil {
				return false, clientGone
			}
			if err != nil {
				if err != io.EOF {
					return false, brokenAnswer
				}
				if st.send(nil, true) != nil {
					return false, clientGone
				}
				return false, answered
			}
		}
	}
	pool.put(up, reuse, f.start)
	return false, answered
}

// watch records that the exchange uses up, so that a reset of the stream
// cuts it off: the peer's wait for it ends, as nginx closes the peer
// connection of a request the client gave up. It reports false when the
// stream is reset already.
func (st *h2Stream) watch(up *upConn) bool {
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if st.reset || h.lost {
		return false
	}
	st.up, up.stream = up, st
	return true
}

// unwatch ends watch; it reports whether up was cut off meanwhile, and
// may not be reused.
func (st *h2Stream) unwatch(up *upConn) bool {
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	cut := st.cut && st.up == up
	if st.up == up {
		st.up, st.cut = nil, false
	}
	up.stream = nil
	return cut
}

// endLocked marks the stream reset and cuts off its peer connection;
// h.mu is held.
func (st *h2Stream) endLocked() {
	st.reset, st.bodyEnd = true, true
	if st.up != nil && !st.cut {
		st.cut = true
		st.up.c.SetDeadline(time.Now())
	}
	st.h.cond.Broadcast()
}

// gone reports whether the stream was reset or its connection lost.
func (st *h2Stream) gone() bool {
	h := st.h
	h.mu.Lock()
	defer h.mu.Unlock()
	return st.reset || h.lost
}

// markEnded records, under h.mu and before the frame is flushed, that
// END_STREAM was written: once the client has it, the stream is closed
// both ways, whether or not its exchange has finished (see onHeaders).
func (st *h2Stream) markEnded() {
	st.h.mu.Lock()
	st.ended = true
	st.h.mu.Unlock()
}
