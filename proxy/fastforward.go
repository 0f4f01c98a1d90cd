package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// bstring views b as a string without copying, for lookups that do not
// keep the string.
func bstring(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// forwarding is one request's way through the attempts.
type forwarding struct {
	c     *fastConn
	pool  *lb.Pool
	start time.Time // when the request began; also the time read for its first attempt
	end   time.Time // when its last attempt ended
	tried []*lb.Peer

	head    []byte // the upstream request head (and the whole body when replayable)
	replay  bool   // the body is in memory: the request can be sent again
	bodyIn  int    // body bytes at c.in[c.r:] when streaming starts
	headLen int    // bytes of head before the body
	kept    int64  // body bytes in head when streaming starts (the budget ran out)
	// Of the bodyIn bytes of a chunked body: how many are of its trailer
	// section, and whether they end the body.
	inTrailer int
	inDone    bool
	reserved  int64 // bytes taken from Config.RetryBufferBudget for head's buffer
	chunks    httpwire.Chunked
	bodyDone  bool // the client's whole request body was read
	deadline  time.Time

	// Facts of the request head kept apart from it: reading the body may
	// reuse the buffer the head's slices point into.
	idempotent, isHead bool
	upgrade            bool // the client asked to switch protocols
	acceptsGzip        bool // compression is on and the client takes gzip
	// sentInterim: an interim answer (103 Early Hints...) went to the
	// client; from then on nothing may be retried.
	sentInterim bool
}

// outcome of one attempt.
type outcome int

const (
	answered      outcome = iota // the client got the peer's answer
	failedEarly                  // no byte went to the client; err says why
	shortage                     // wharf lacked a resource to reach the peer (localShortage)
	retryStatus                  // a retry-on-status answer was dropped
	clientGone                   // the client went away
	brokenAnswer                 // the peer failed in the middle of its answer
	badRequestErr                // the client's body was malformed
)

var (
	errPeerClosed   = errors.New("peer closed the connection before answering")
	errBadChunked   = errors.New("malformed chunked request body")
	errClientClosed = errors.New("client closed the connection")
)

// run makes the attempts; it returns the status the client got (0 if none)
// and whether the client connection can carry another request.
func (f *forwarding) run() (int, bool) {
	c, req := f.c, &f.c.x.req
	f.idempotent, f.isHead = idempotent(bstring(req.Method)), string(req.Method) == "HEAD"
	f.upgrade = req.Upgrade != nil
	defer f.releaseKept()
	f.acceptsGzip = c.s.gzip != nil && httpwire.AcceptsGzip(req.Headers)
	if err := f.prepare(); err != nil {
		if errors.Is(err, errBadChunked) {
			c.writeError(400, msgBadRequest+": "+err.Error(), f.pool.Name(), true)
			return 400, false
		}
		return 0, false
	}
	if d := c.s.cfg.NextUpstreamTimeout; d > 0 {
		f.deadline = f.start.Add(d)
	}
	var hash uint64
	if f.pool.Policy() == lb.IPHash {
		hash = lb.HashClientBytes(c.clientIP.AppendTo(c.x.hashBuf[:0]))
	}
	f.tried = c.x.tried[:0]
	for {
		now := f.pool.Now()
		peer := f.pool.Pick(now, hash, f.tried)
		if peer == nil {
			keep := f.finishBody()
			if len(f.tried) == 0 {
				f.pool.Stats().NoPeer.Add(1)
				c.writeError(503, msgNoPeer, f.pool.Name(), !keep)
				return 503, keep
			}
			c.writeError(502, msgAllFailed, f.pool.Name(), !keep)
			return 502, keep
		}
		f.tried = append(f.tried, peer)
		swallow := f.replay && f.idempotent && f.budgetLeft() && f.pool.HasUntried(f.tried)
		status, keep, out, err := f.attempt(peer, swallow)
		switch out {
		case answered:
			return status, keep
		case clientGone:
			return 0, false
		case brokenAnswer:
			return status, false
		case badRequestErr:
			c.writeError(400, msgBadRequest+": "+err.Error(), f.pool.Name(), true)
			return 400, false
		case shortage:
			c.s.stats.Shortage.Add(1)
			c.s.stats.shortageLog.note(c.s.cfg.Log, err)
			keep := f.finishBody()
			c.writeError(503, msgShortage, f.pool.Name(), !keep)
			return 503, keep
		case retryStatus:
			continue
		}
		c.s.cfg.Log.Debug().Str("service", f.pool.Name()).Str("container", peer.Name).
			Str("address", peer.Addr).Err(err).Msg("attempt failed")
		if !mayRetry(err, f.idempotent, f.replay) || !f.budgetLeft() {
			keep := f.finishBody()
			c.writeError(502, msgAllFailed, f.pool.Name(), !keep)
			return 502, keep
		}
	}
}

func (f *forwarding) budgetLeft() bool { return f.c.s.cfg.budgetLeft(len(f.tried), f.deadline) }

// prepare builds the upstream request head and, when the body is small
// enough, reads all of it so that it can be replayed; it consumes the head
// from c.in.
func (f *forwarding) prepare() error {
	c, req := f.c, &f.c.x.req
	if c.out == nil {
		c.out = getBuf()
	}
	if req.ExpectContinue {
		// wharf answers Expect itself (below); the peer gets the body at
		// once, so the field is not forwarded.
		for i := range req.Headers {
			if len(req.Headers[i].Name) == 6 && bytes.EqualFold(req.Headers[i].Name, []byte("Expect")) {
				req.Headers[i].Hop = true
			}
		}
	}
	opts := httpwire.RequestOptions{Target: f.target(), ClientIP: c.clientIP, Trusted: c.s.cfg.TrustedProxies, TLS: c.tc != nil}
	f.head = httpwire.AppendRequest((*c.out)[:0], req, &opts)
	c.r += req.HeadLen
	limit := c.s.cfg.retryBodyLimit()

	if req.ExpectContinue && req.Framing != httpwire.NoBody && c.w == c.r {
		// Answer the client's Expect ourselves, as nginx does: the body
		// must be read before a peer is chosen, to be replayable.
		if _, err := c.write(continue100); err != nil {
			return err
		}
	}
	f.headLen = len(f.head)
	switch req.Framing {
	case httpwire.NoBody:
		f.replay, f.bodyDone = true, true
	case httpwire.ByLength:
		n := req.ContentLength
		if n > limit {
			f.bodyIn = c.w - c.r
			return nil
		}
		for left := n; left > 0; {
			if c.w == c.r {
				c.r, c.w = 0, 0
				if err := c.fillBody(); err != nil {
					return err
				}
			}
			k := min(int64(c.w-c.r), left)
			if !f.keep((*c.in)[c.r:c.r+int(k)], nil) {
				// Streamed from here, after what head holds. What came
				// already joins it when it fits: the head goes out first,
				// and the connection holds one buffer, not two, while
				// the peer is dialled.
				k = min(k, int64(cap(f.head)-len(f.head)))
				if k < int64(c.w-c.r) && f.shrinkHead() {
					// It does not fit (the upstream head is longer
					// than the client's): the body stays in c.in, and
					// the head moves to a buffer of its size.
					f.kept = n - left
					return nil
				}
				f.head = append(f.head, (*c.in)[c.r:c.r+int(k)]...)
				c.r += int(k)
				f.kept = n - left + k
				if c.r == c.w {
					putBuf(c.in)
					c.in, c.r, c.w = nil, 0, 0
				}
				return nil
			}
			c.r += int(k)
			left -= k
		}
		f.replay, f.bodyDone = true, true
	case httpwire.ByChunks:
		f.chunks.Reset()
		for {
			before := f.chunks.TrailerLen()
			n, done, err := f.chunks.Scan((*c.in)[c.r:c.w])
			if err != nil {
				return errBadChunked
			}
			body, end := untrailed(&f.chunks, (*c.in)[c.r:c.r+n], before, done)
			if int64(len(f.head)-f.headLen+n) > limit || !f.keep(body, end) {
				// Streamed from here; the scanner has seen these.
				f.bodyIn, f.inTrailer, f.inDone = n, f.chunks.TrailerLen()-before, done
				return nil
			}
			c.r += n
			if done {
				f.replay, f.bodyDone = true, true
				return nil
			}
			if c.w == c.r {
				c.r, c.w = 0, 0
			}
			if err := c.fillBody(); err != nil {
				return err
			}
		}
	}
	return nil
}

// keep appends body bytes b, then end, to the request in f.head so that it can be
// replayed, with memory taken from the retry buffer budget: the body's
// bytes in steps of replayStep while they fit the request's first buffer,
// then the whole of a grown one. A body of known length grows its buffer
// once, to the class that holds all of it. It reports false, keeping
// nothing, when the budget cannot give the memory.
func (f *forwarding) keep(b, end []byte) bool {
	c := f.c
	n := len(f.head) + len(b) + len(end)
	grow := 0 // the size of a new buffer, when b does not fit
	if n > cap(f.head) {
		grow = n
		if req := &c.x.req; req.Framing == httpwire.ByLength {
			grow = max(grow, f.headLen+int(req.ContentLength))
		}
		if grow > replayClassSize(replayClasses-1) {
			grow = max(grow, 2*cap(f.head)) // past the classes, double
		}
		grow = replayBufSize(grow)
	}
	need := int64(n-f.headLen+replayStep-1) / replayStep * replayStep
	if grow > 0 {
		need = int64(grow)
	}
	// Reserved before a buffer is taken: a body the budget has no room
	// for costs no buffer.
	if need > f.reserved {
		if !c.s.stats.reserveRetry(need-f.reserved, c.s.cfg.retryBufferBudget()) {
			return false
		}
		f.reserved = need
	}
	if grow > 0 {
		nb := getReplayBuf(grow)
		f.head = append((*nb)[:0], f.head...)
		putBuf(c.out)
		c.out = nb
	}
	f.head = append(f.head, b...)
	f.head = append(f.head, end...)
	return true
}

// shrinkHead moves f.head, when it is no longer than headBufSize, to a
// buffer of that size, giving the output buffer back: a streamed body's
// head then costs 2 KiB, not 16, while its peer is dialled. It reports
// whether it did.
func (f *forwarding) shrinkHead() bool {
	c := f.c
	if len(f.head) > headBufSize || cap(f.head) <= headBufSize {
		return false
	}
	hb := headBufs.Get().(*[]byte)
	f.head = append((*hb)[:0], f.head...)
	putBuf(c.out)
	c.out = hb
	return true
}

// releaseKept gives the memory of a kept body back to the budget, and its
// grown buffer to its pool, once no attempt can need it.
func (f *forwarding) releaseKept() {
	if f.reserved == 0 {
		return
	}
	c := f.c
	c.s.stats.releaseRetry(f.reserved)
	f.reserved = 0
	putBuf(c.out)
	c.out = nil
	f.head = nil
}

var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// target is the request-target sent upstream: origin-form, with the
// service's prefix removed when lb.path.strip is set. Without strip the
// target goes as received, as nginx's proxy_pass without a URI sends it:
// it was routed by its normalized path, which a peer that resolves dot
// segments itself reaches too. With strip the prefix is removed from the
// normalized path, re-escaped, as nginx does for proxy_pass with a URI.
func (f *forwarding) target() []byte {
	x := f.c.x
	p := x.req.Path
	if len(p) == 0 {
		return []byte("/")
	}
	r := f.pool.Rules()
	if !r.StripPrefix || r.PathPrefix == "" || r.PathPrefix == "/" {
		return p
	}
	prefix := r.PathPrefix
	if prefix[len(prefix)-1] == '/' {
		prefix = prefix[:len(prefix)-1]
	}
	path, query := pathOnly(p), p[len(pathOnly(p)):]
	if x.normalized {
		path = x.route
	}
	rest := path[min(len(prefix), len(path)):]
	t := x.target[:0]
	if len(rest) == 0 || rest[0] != '/' {
		t = append(t, '/')
	}
	if x.normalized {
		t = httpwire.AppendEscapedPath(t, rest)
	} else {
		t = append(t, rest...)
	}
	t = append(t, query...)
	x.target = t
	return t
}

// finishBody reads the rest of a request body that was not sent, so the
// connection can carry the next request; it reports whether it did.
func (f *forwarding) finishBody() bool {
	c, req := f.c, &f.c.x.req
	if req.Close {
		return false
	}
	if f.bodyDone {
		return true
	}
	if req.Framing == httpwire.ByLength {
		left := req.ContentLength - f.kept - int64(f.bodyIn)
		if left > 1<<20 {
			return false
		}
		c.r += f.bodyIn
		f.bodyIn = 0
		for left > 0 {
			k := int64(c.w - c.r)
			if k >= left {
				c.r += int(left)
				break
			}
			left -= k
			c.r = c.w
			c.compact(false)
			if c.fillBody() != nil {
				return false
			}
		}
		f.bodyDone = true
		return true
	}
	return false
}

// attempt sends the request to peer and passes its answer to the client.
func (f *forwarding) attempt(peer *lb.Peer, swallow bool) (status int, keep bool, out outcome, err error) {
	c := f.c
	pool := fastPool(peer, &c.s.cfg)
	peer.Begin()
	// The clock is read as few times as will do: it is a measurable share
	// of a request's user time.
	start := f.start
	if len(f.tried) > 1 {
		start = time.Now()
	}
	failed := true
	answer := 0
	defer func() {
		f.end = time.Now()
		if failed && c.h2s != nil && c.h2s.gone() {
			// The stream was reset, which cut its peer connection
			// off: the peer is not to blame.
			failed, out = false, clientGone
		}
		if out == shortage {
			peer.Abandon()
			return
		}
		peer.Answered(answer, f.end.Sub(start))
		peer.End(failed, f.pool.Now())
	}()

	up, res, rbuf, err := f.roundTrip(pool, false)
	if up == nil && localShortage(err) {
		return 0, false, shortage, err
	}
	if up == nil {
		if errors.Is(err, errClientClosed) {
			failed = false
			return 0, false, clientGone, err
		}
		if errors.Is(err, errBadChunked) {
			failed = false
			return 400, false, badRequestErr, err
		}
		return 0, false, failedEarly, err
	}
	if err != nil && up.canRetryFresh && (errors.Is(err, errPeerClosed) || errors.Is(err, syscall.ECONNRESET)) {
		// The peer had most likely closed this idle connection just
		// before the request reached it, but it may also have read the
		// request and died. An idempotent request is sent again; a
		// non-idempotent one only when the peer's TCP acknowledged none
		// of it, and otherwise fails here, not to be retried anywhere.
		// A peer that has left the table (its container stopped or
		// died) gets no new connection: the request goes to the next
		// peer instead, when it may.
		unread := neverAcknowledged(up.c, len(f.head))
		if f.idempotent || unread {
			pool.discard(up)
			if pool.left() {
				if unread {
					err = unreadError{err}
				}
				return 0, false, failedEarly, err
			}
			if up, res, rbuf, err = f.roundTrip(pool, true); up == nil {
				if localShortage(err) {
					return 0, false, shortage, err
				}
				return 0, false, failedEarly, err
			}
		}
	}
	if err != nil {
		pool.discard(up)
		if errors.Is(err, errClientClosed) {
			failed = false
			return 0, false, clientGone, err
		}
		if f.sentInterim {
			return 0, false, brokenAnswer, err
		}
		return 0, false, failedEarly, err
	}
	answer = res.Status
	if c.s.cfg.retryStatus(res.Status) {
		if swallow {
			pool.discard(up)
			putBuf(rbuf)
			return 0, false, retryStatus, nil
		}
	} else {
		failed = false
	}
	status = res.Status
	keep, out = f.relay(up, pool, res, rbuf)
	if out == brokenAnswer {
		failed = true
	}
	return status, keep, out, nil
}

// roundTrip sends the request on a connection of pool, a reused one first,
// and reads the head of the answer. When the request cannot be written to
// a reused connection, which the peer closed while it was idle, it goes
// out on a new one. It returns no connection when none got the request,
// and otherwise the connection with the answer or the error reading it.
//
// A non-idempotent request is not written to an idle connection whose
// close by the peer has arrived (see upstreamPool.get): once written, it is
// sent again only when the peer cannot have read it (see attempt).
func (f *forwarding) roundTrip(pool *upstreamPool, fresh bool) (*upConn, *httpwire.Response, *[]byte, error) {
	for ; ; fresh = true {
		up, err := f.send(pool, fresh)
		if err != nil {
			return nil, nil, nil, err
		}
		res, rbuf, err := f.readHead(up)
		// readHead returns a sendError as it is; a type assertion,
		// unlike errors.As, costs no allocation per request.
		if se, ok := err.(sendError); ok {
			pool.discard(up)
			if up.reused && !fresh && f.replay {
				continue
			}
			return nil, nil, nil, se.error
		}
		return up, res, rbuf, err
	}
}

// send takes a connection of pool and gives it the request: a request in
// memory goes out with the first read of the answer (upConn.sendThenRead);
// a large body is streamed now.
func (f *forwarding) send(pool *upstreamPool, fresh bool) (*upConn, error) {
	up, err := pool.get(fresh, !f.idempotent, f.start, f.c.s.cfg.Timeouts.UpstreamIdle)
	if err != nil {
		return nil, err
	}
	if st := f.c.h2s; st != nil && !st.watch(up) {
		pool.put(up, true, f.start) // unused: the client reset the stream
		return nil, errClientClosed
	}
	if f.replay {
		up.pending = f.head
		up.canRetryFresh = up.reused && !fresh
		return up, nil
	}
	if _, err = up.sock.Write(f.head); err != nil {
		pool.discard(up)
		return nil, sendError{err}
	}
	// Stream the rest of a large body, holding no output buffer while the
	// client sends it: a slow client costs its connection, not memory.
	f.head = nil
	f.releaseKept()
	putBuf(f.c.out)
	f.c.out = nil
	switch f.c.x.req.Framing {
	case httpwire.ByLength:
		err = f.streamLength(up)
	case httpwire.ByChunks:
		err = f.streamChunks(up)
	}
	f.c.out = getBuf()
	if err != nil {
		pool.discard(up)
		if errors.Is(err, errClientClosed) || errors.Is(err, errBadChunked) {
			return nil, err
		}
		return nil, sendError{err}
	}
	return up, nil
}

func (f *forwarding) streamLength(up *upConn) error {
	c := f.c
	left := f.c.x.req.ContentLength - f.kept
	for left > 0 {
		if c.w == c.r {
			c.r, c.w = 0, 0
			if err := c.fillBody(); err != nil {
				return errClientClosed
			}
		}
		k := min(int64(c.w-c.r), left)
		if _, err := up.sock.Write((*c.in)[c.r : c.r+int(k)]); err != nil {
			return err
		}
		c.r += int(k)
		left -= k
	}
	f.bodyDone = true
	return nil
}

func (f *forwarding) streamChunks(up *upConn) error {
	c := f.c
	// The scanner has seen f.bodyIn bytes already, which may have ended
	// the body.
	n, done := f.bodyIn, f.inDone
	before := f.chunks.TrailerLen() - f.inTrailer
	for {
		body, end := untrailed(&f.chunks, (*c.in)[c.r:c.r+n], before, done)
		if _, err := up.sock.Write(body); err != nil {
			return err
		}
		if end != nil {
			if _, err := up.sock.Write(end); err != nil {
				return err
			}
		}
		c.r += n
		if done {
			f.bodyDone = true
			return nil
		}
		if c.w == c.r {
			c.r, c.w = 0, 0
			if err := c.fillBody(); err != nil {
				return errClientClosed
			}
		}
		var err error
		before = f.chunks.TrailerLen()
		if n, done, err = f.chunks.Scan((*c.in)[c.r:c.w]); err != nil {
			return errBadChunked
		}
	}
}

// untrailed returns what of p, body bytes the scanner ch has just
// followed (with its trailer section at before bytes), goes to the peer:
// body, without trailer fields, and, when the body is done and fields
// were dropped, end, the empty line that ends it. A request's trailer
// fields are dropped, as nginx does: a client could send in them, after
// the body, the forwarded fields that the head's rules replace.
func untrailed(ch *httpwire.Chunked, p []byte, before int, done bool) (body, end []byte) {
	dropped := ch.TrailerLen() - before
	if done && dropped == 2 && ch.TrailerLen() == 2 {
		return p, nil // no fields: the section is its empty line
	}
	if done {
		end = crlf
	}
	return p[:len(p)-dropped], end
}

var crlf = []byte("\r\n")

// readHead reads the peer's final response head (skipping 100 Continue,
// passing other interim answers on) into a fresh buffer.
func (f *forwarding) readHead(up *upConn) (*httpwire.Response, *[]byte, error) {
	c := f.c
	rbuf := getBuf()
	r, w := 0, 0
	up.parser.Reset()
	up.rdl = setLazyDeadline(up.c, up.rdl, f.start, c.s.cfg.responseHeaderTimeout())
	isHead := f.isHead
	for {
		if w > r {
			err := up.parser.ParseResponse(&up.resp, (*rbuf)[r:w], isHead)
			if err == nil {
				res := &up.resp
				if res.Informational() {
					if res.Status != 100 {
						var err error
						if c.h2s != nil {
							// A HEADERS frame of its own, before the
							// final answer's.
							err = c.h2s.answer(res, &httpwire.ResponseOptions{}, -1, nil, false)
						} else {
							// Written from its own buffer: c.out holds
							// the request, which a retry would need.
							ib := getBuf()
							_, err = c.write(httpwire.AppendResponse((*ib)[:0], res, nil))
							putBuf(ib)
						}
						f.sentInterim = true
						if err != nil {
							putBuf(rbuf)
							return nil, nil, errClientClosed
						}
					}
					r += res.HeadLen
					up.parser.Reset()
					continue
				}
				// Keep the body bytes that came with the head at the
				// start of the buffer.
				if r > 0 {
					w = copy(*rbuf, (*rbuf)[r:w])
					r = 0
					if err := up.parser.ParseResponse(&up.resp, (*rbuf)[:w], isHead); err != nil {
						putBuf(rbuf)
						return nil, nil, err
					}
				}
				up.rw = w
				return &up.resp, rbuf, nil
			}
			if err != httpwire.ErrNeedMore {
				putBuf(rbuf)
				return nil, nil, err
			}
			if w == len(*rbuf) {
				if r > 0 {
					w = copy(*rbuf, (*rbuf)[r:w])
					r = 0
				} else if cap(*rbuf) < fastBigSize {
					big := bigBufs.Get().(*[]byte)
					w = copy(*big, (*rbuf)[:w])
					putBuf(rbuf)
					rbuf = big
				} else {
					putBuf(rbuf)
					return nil, nil, httpwire.ErrHeadTooLarge
				}
			}
		}
		var n int
		var err error
		if up.pending != nil {
			n, err = up.sendThenRead((*rbuf)[w:])
		} else {
			n, err = up.sock.Read((*rbuf)[w:])
		}
		w += n
		if err != nil && n == 0 {
			putBuf(rbuf)
			if _, ok := err.(sendError); ok {
				return nil, nil, err
			}
			if err == io.EOF && w == 0 {
				return nil, nil, errPeerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, nil, timeoutError{err}
			}
			return nil, nil, err
		}
	}
}

// unreadError marks a request the peer cannot have read (see
// neverAcknowledged): like a failed dial, it may go to the next peer
// whatever its method.
type unreadError struct{ error }

func (e unreadError) Unwrap() error { return e.error }

func isUnread(err error) bool {
	var u unreadError
	return errors.As(err, &u)
}

// timeoutError marks a peer that did not answer within the response
// header timeout.
type timeoutError struct{ error }

func (e timeoutError) Unwrap() error { return e.error }

// relay passes the response whose head is parsed in up.resp (with up.rw
// bytes in rbuf) to the client. It reports whether the client connection
// may carry another request, and brokenAnswer or clientGone when the
// exchange broke off.
func (f *forwarding) relay(up *upConn, pool *upstreamPool, res *httpwire.Response, rbuf *[]byte) (bool, outcome) {
	c, req := f.c, &f.c.x.req
	if c.h2s != nil {
		return f.relayH2(up, pool, res, rbuf)
	}
	defer putBuf(rbuf)
	if res.Status == 101 && res.Upgrade != nil && f.upgrade {
		f.tunnel(up, pool, res, rbuf)
		return false, answered
	}
	// An answer that may be compressed depends on the client's
	// Accept-Encoding, compressed or not.
	vary := !f.isHead && c.s.gzip.compressible(res)
	if vary && f.acceptsGzip {
		return f.relayCompressed(up, pool, res, rbuf)
	}
	keepClient := !req.Close && res.Framing != httpwire.ByClose && !c.s.shutdown.Load() && f.finishBodyIfDone()
	// An HTTP/1.0 client closes unless told keep-alive; an HTTP/1.1 one
	// keeps the connection unless told close.
	opts := httpwire.ResponseOptions{Close: !keepClient && req.Minor == 1, KeepAlive: keepClient && req.Minor == 0, Vary: vary}
	unchunk := res.Framing == httpwire.ByChunks && req.Minor == 0
	if unchunk {
		opts.Unchunk, keepClient = true, false
	}
	out := httpwire.AppendResponse((*c.out)[:0], res, &opts)
	if req.Minor == 0 {
		out[7] = '0' // answer an HTTP/1.0 client in its version, as net/http does
	}
	body := (*rbuf)[res.HeadLen:up.rw]
	reuse := !res.Close

	switch {
	case res.Framing == httpwire.NoBody:
		reuse = reuse && len(body) == 0
		if _, err := c.write(out); err != nil {
			pool.put(up, reuse, f.start)
			return false, clientGone
		}
	case res.Framing == httpwire.ByLength:
		n := res.ContentLength
		first := min(int64(len(body)), n)
		reuse = reuse && int64(len(body)) <= n
		out = append(out, body[:first]...)
		if _, err := c.write(out); err != nil {
			pool.discard(up)
			return false, clientGone
		}
		if out := f.relayRest(up, rbuf, n-first); out != answered {
			pool.discard(up)
			return false, out
		}
	case unchunk:
		return false, f.relayUnchunked(up, pool, out, body, rbuf)
	case res.Framing == httpwire.ByChunks:
		var ch httpwire.Chunked
		n, done, err := ch.Scan(body)
		if err != nil {
			pool.discard(up)
			return false, brokenAnswer
		}
		reuse = reuse && n == len(body)
		out = append(out, body[:n]...)
		if _, err := c.write(out); err != nil {
			pool.discard(up)
			return false, clientGone
		}
		for !done {
			up.armRead(c.s.cfg.Timeouts.UpstreamRead)
			k, rerr := up.sock.Read(*rbuf)
			if k > 0 {
				var serr error
				n, done, serr = ch.Scan((*rbuf)[:k])
				if serr != nil {
					pool.discard(up)
					return false, brokenAnswer
				}
				reuse = reuse && n == k
				if _, werr := c.write((*rbuf)[:n]); werr != nil {
					pool.discard(up)
					return false, clientGone
				}
			}
			if rerr != nil && !done {
				pool.discard(up)
				return false, brokenAnswer
			}
		}
	case res.Framing == httpwire.ByClose:
		out = append(out, body...)
		if _, err := c.write(out); err != nil {
			pool.discard(up)
			return false, clientGone
		}
		_, err := io.CopyBuffer(writerOnly{clientWriter{c}}, bodyReader{up, c.s.cfg.Timeouts.UpstreamRead}, *rbuf)
		pool.discard(up)
		if err != nil {
			return false, brokenAnswer
		}
		return false, answered
	}
	pool.put(up, reuse, f.start)
	return keepClient, answered
}

// relayRest passes the last left bytes of an answer of known length from
// up to the client as they come; to an HTTP/2 stream, the last of them
// end it.
func (f *forwarding) relayRest(up *upConn, rbuf *[]byte, left int64) outcome {
	c := f.c
	for left > 0 {
		up.armRead(c.s.cfg.Timeouts.UpstreamRead)
		k, err := up.sock.Read((*rbuf)[:min(int64(len(*rbuf)), left)])
		if k > 0 {
			left -= int64(k)
			var werr error
			if c.h2s != nil {
				werr = c.h2s.send((*rbuf)[:k], left == 0)
			} else {
				_, werr = c.write((*rbuf)[:k])
			}
			if werr != nil {
				return clientGone
			}
		}
		if err != nil && left > 0 {
			return brokenAnswer
		}
	}
	return answered
}

// relayCompressed passes the answer to the client gzip-coded (relayGzip):
// chunked to an HTTP/1.1 client, which may then keep its connection
// whatever the peer's framing, and ended by closing to an HTTP/1.0 one.
func (f *forwarding) relayCompressed(up *upConn, pool *upstreamPool, res *httpwire.Response, rbuf *[]byte) (bool, outcome) {
	c, req := f.c, &f.c.x.req
	keepClient := !req.Close && req.Minor == 1 && !c.s.shutdown.Load() && f.finishBodyIfDone()
	opts := httpwire.ResponseOptions{Gzip: true, Vary: true, Close: !keepClient && req.Minor == 1, Unchunk: req.Minor == 0}
	reuse, out := f.relayGzip(up, res, rbuf, &opts)
	if out != answered {
		pool.discard(up)
		return false, out
	}
	pool.put(up, reuse, f.start)
	return keepClient, answered
}

// finishBodyIfDone reports whether the client's request body has been read
// to its end (so the connection is at the next request).
func (f *forwarding) finishBodyIfDone() bool { return f.bodyDone }

func (f *forwarding) relayUnchunked(up *upConn, pool *upstreamPool, head, body []byte, rbuf *[]byte) outcome {
	c := f.c
	defer pool.discard(up)
	if _, err := c.write(head); err != nil {
		return clientGone
	}
	var ch httpwire.Chunked
	pending := body
	for {
		for len(pending) > 0 {
			n, data, done, err := ch.Decode(pending)
			if err != nil {
				return brokenAnswer
			}
			if len(data) > 0 {
				if _, err := c.write(data); err != nil {
					return clientGone
				}
			}
			pending = pending[n:]
			if done {
				return answered
			}
		}
		up.armRead(c.s.cfg.Timeouts.UpstreamRead)
		k, err := up.sock.Read(*rbuf)
		if k == 0 && err != nil {
			return brokenAnswer
		}
		pending = (*rbuf)[:k]
	}
}

// tunnel passes the bytes of an upgraded connection (WebSocket) both ways
// until either side closes.
func (f *forwarding) tunnel(up *upConn, pool *upstreamPool, res *httpwire.Response, rbuf *[]byte) {
	c := f.c
	defer pool.discard(up)
	out := httpwire.AppendResponse((*c.out)[:0], res, nil)
	out = append(out, (*rbuf)[res.HeadLen:up.rw]...)
	if _, err := c.write(out); err != nil {
		return
	}
	if c.w > c.r {
		if _, err := up.sock.Write((*c.in)[c.r:c.w]); err != nil {
			return
		}
		c.r = c.w
	}
	c.c.SetReadDeadline(time.Time{})
	c.rdl = time.Time{}
	up.clearDeadline()
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(writerOnly{up.c}, readerOnly{c.c})
		closeWrite(up.c)
		errc <- err
	}()
	io.Copy(writerOnly{c.c}, readerOnly{up.c})
	closeWrite(c.c)
	<-errc
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		c.Close()
	}
}

// readerOnly and writerOnly hide ReadFrom/WriteTo so that io.Copy uses the
// given buffer rather than allocating (TCPConn's splice path needs a
// TCPConn on both sides, which these are not).
type readerOnly struct{ io.Reader }
type writerOnly struct{ io.Writer }
