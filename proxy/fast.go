package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// FastServer is wharf's data path. For HTTP/1.x, one goroutine per client
// connection parses each request head in place (httpwire), writes it to a
// pooled keep-alive connection of the picked peer in one write, and passes
// the response back the same way. Nothing is allocated per request in the
// steady state, and an idle client connection holds no buffer: it waits for
// readability without one.
//
// It routes, retries with nginx's rules, keeps passive health, writes the
// forwarded fields and wharf's error answers, and compresses answers by
// Config.Gzip. It serves HTTP/1.x in TLS too (EnableTLS), and HTTP/2 over
// TLS and as h2c with prior knowledge (h2.go), through the same request
// flow.
type FastServer struct {
	router Router
	cfg    Config // with cfg.Timeouts resolved (withDefaults)
	stats  *Stats
	hooks  fastHooks
	tls    *fastTLS   // nil: plain TCP
	gzip   *gzipRules // nil: no compression

	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[*fastConn]struct{}
	shutdown atomic.Bool
	done     chan struct{} // closed when the last connection ends after shutdown

	// freed receives when a connection ends, for an accept loop waiting
	// for room under cfg.MaxConns.
	freed chan struct{}
	// capLog and acceptLog let through one line per floodEvery about the
	// connection cap and about failing accepts.
	capLog, acceptLog logEvery
}

// fastHooks are called at the moments that tests of the fast path wait
// for, so that they wait on these rather than on the clock. They are set
// before Serve, and are nil outside tests. Each runs on the connection's
// goroutine.
type fastHooks struct {
	// handoff: an idle connection's deadline expired, and waitIdle takes
	// it over.
	handoff func()
	// wait: a read from the client found nothing more, and the connection
	// is about to wait for readability holding held, the bytes received
	// and not yet used of a request head, or of a body when body is set.
	// held is valid only during the call.
	wait func(held []byte, body bool)
	// atCap: the accept loop is at Config.MaxConns with n connections and
	// waits for room. It runs on the accept loop's goroutine.
	atCap func(n int)
}

// Buffer sizes. A request or response head must fit in a buffer; the
// first buffer holds every usual head, a larger one is taken for the rare
// head that does not fit, up to the parser's limit.
const (
	headBufSize  = 2 << 10 // a streamed body's upstream head (see shrinkHead)
	fastBufSize  = 16 << 10
	fastBigSize  = httpwire.DefaultMaxHeadBytes + 4<<10
	maxIdlePeers = 1024 // idle connections kept to one peer
)

var (
	smallBufs = sync.Pool{New: func() any { b := make([]byte, fastBufSize); return &b }}
	bigBufs   = sync.Pool{New: func() any { b := make([]byte, fastBigSize); return &b }}
	headBufs  = sync.Pool{New: func() any { b := make([]byte, headBufSize); return &b }}
)

func getBuf() *[]byte  { return smallBufs.Get().(*[]byte) }
func putBuf(b *[]byte) { putSized(b) }
func putSized(b *[]byte) {
	if b == nil {
		return
	}
	// A buffer of no pool's size (a body over the largest replay class)
	// is left to the collector.
	if p := sizedPool(cap(*b)); p != nil {
		p.Put(b)
	}
}

// NewFastServer returns the fast data path for router.
func NewFastServer(router Router, cfg Config) *FastServer {
	cfg.Timeouts = cfg.Timeouts.withDefaults()
	return &FastServer{router: router, cfg: cfg, stats: &Stats{}, gzip: newGzipRules(cfg.Gzip),
		lns: map[net.Listener]struct{}{}, conns: map[*fastConn]struct{}{}, done: make(chan struct{}),
		freed: make(chan struct{}, 1)}
}

// Stats returns the server's counters.
func (s *FastServer) Stats() *Stats { return s.stats }

// Serve accepts connections on ln until Shutdown or Close.
func (s *FastServer) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown.Load() {
		s.mu.Unlock()
		return errServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutdown.Load() {
				return errServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors: back off as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				if s.acceptLog.due() {
					s.cfg.Log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
				}
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.makeRoom()
		fc := s.newConn(c)
		if fc == nil {
			c.Close()
			continue
		}
		go fc.start()
	}
}

var errServerClosed = errors.New("proxy: server closed")

// Shutdown stops accepting, closes idle connections, and waits until the
// connections in use have finished their current exchange, or ctx ends.
func (s *FastServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown.Store(true)
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		if c.idle.Load() {
			c.shut(syscall.SHUT_RD) // its next read ends it; an exchange just begun still answers
		}
	}
	s.shutdownH2()
	if len(s.conns) == 0 {
		s.closeDone()
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once.
func (s *FastServer) Close() error {
	s.mu.Lock()
	s.shutdown.Store(true)
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.shut(syscall.SHUT_RDWR)
	}
	s.mu.Unlock()
	return nil
}

// shut ends the connection from another goroutine by shutting its socket
// down (how: syscall.SHUT_RD or SHUT_RDWR): a wait for the next request
// ends at once, reads find the end, and with SHUT_RDWR writes fail, so an
// exchange in progress is cut off. The connection's own goroutine then
// closes it. Closing it here instead would wait, holding s.mu, for a read
// session in progress to end, because the session holds the descriptor.
func (c *fastConn) shut(how int) {
	c.sock.rc.Control(func(fd uintptr) { syscall.Shutdown(int(fd), how) })
}

func (s *FastServer) closeDone() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

func (s *FastServer) newConn(c net.Conn) *fastConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	fc := &fastConn{s: s, c: c}
	fc.readFn = fc.readOnce
	fc.sessionFn = fc.session
	fc.sock.init(rc, false) // kept over TLS too, for shut
	if s.tls != nil {
		fc.sockTLS = &tlsSocket{Conn: c, c: fc}
		fc.tc = tls.Server(fc.sockTLS, s.tls.config)
		fc.c = fc.tc
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		fc.clientIP = ap.Addr().Unmap()
	}
	// Idle from its accept: until its goroutine runs, it has sent nothing,
	// and an accept loop at the cap must close it before a keep-alive
	// client's connection.
	fc.idle.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		return nil
	}
	s.conns[fc] = struct{}{}
	return fc
}

func (s *FastServer) forget(c *fastConn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.shutdown.Load() && len(s.conns) == 0 {
		s.closeDone()
	}
	s.mu.Unlock()
	select {
	case s.freed <- struct{}{}:
	default:
	}
}

// reclaimRetry is how often an accept loop at the cap looks again for an
// idle connection to close, when none ended meanwhile: connections that
// were busy at the last look may have gone idle.
const reclaimRetry = 50 * time.Millisecond

// makeRoom returns once the connection just accepted fits under
// cfg.MaxConns. At the cap it does what nginx does when its
// worker_connections are not enough: it closes an idle keep-alive
// connection to make room, and when every connection is busy it waits,
// accepting nothing more, so that further clients wait in the listen
// backlog instead of being accepted into a descriptor shortage that would
// fail their requests and, worse, the dials to healthy peers. The one
// connection accepted and waiting is all it holds beyond the cap.
func (s *FastServer) makeRoom() {
	max := s.cfg.MaxConns
	if max <= 0 {
		return
	}
	for {
		s.mu.Lock()
		n, closing := len(s.conns), 0
		if n >= max {
			for c := range s.conns {
				if c.reclaimed.Load() {
					closing++
				}
			}
			// Close enough idle connections that those already closing
			// make room for this one: first those that never sent a
			// request (a flood of silent connections goes before the
			// site's clients), then keep-alive ones.
			for pass := 0; pass < 2 && n-closing >= max && !s.shutdown.Load(); pass++ {
				for c := range s.conns {
					if n-closing < max {
						break
					}
					if c.idle.Load() && (pass == 1 || !c.served.Load()) && c.reclaimed.CompareAndSwap(false, true) {
						c.shut(syscall.SHUT_RD) // its next read ends it, as Shutdown does
						closing++
						s.stats.Reclaimed.Add(1)
					}
				}
			}
		}
		s.mu.Unlock()
		if n < max || s.shutdown.Load() {
			return
		}
		s.noteCap(n, closing)
		if h := s.hooks.atCap; h != nil {
			h(n)
		}
		t := time.NewTimer(reclaimRetry)
		select {
		case <-s.freed:
		case <-t.C:
		}
		t.Stop()
	}
}

// noteCap logs, at most once per floodEvery, that the cap was reached.
func (s *FastServer) noteCap(n, closing int) {
	if !s.capLog.due() {
		return
	}
	s.cfg.Log.Warn().Int("max_conns", s.cfg.MaxConns).Int("connections", n).Int("closing_idle", closing).
		Msg("client connections at --max-conns: closing idle keep-alive connections; new clients wait in the listen backlog while every connection is busy")
}

// fastConn is one client connection, served by one goroutine. While it
// waits for a request it holds no buffer and no exchange state, only what
// identifies the connection: that is what keeps an idle connection small.
type fastConn struct {
	// reclaimed is set when the server closes the connection, idle, to
	// make room under Config.MaxConns; served once it has had a request,
	// for connections that never sent one are closed first.
	reclaimed, served atomic.Bool

	s        *FastServer
	c        net.Conn   // the client connection: tc over TLS
	tc       *tls.Conn  // nil on a plain connection
	sockTLS  *tlsSocket // under tc
	sock     sockIO     // writes to a plain client; reads are readOnce's
	clientIP netip.Addr
	idle     atomic.Bool // waiting for a request: Shutdown may end it

	readFn    func(fd uintptr) bool // fill's RawConn callback: readOnce
	sessionFn func(fd uintptr) bool // serve's RawConn callback: session
	rdl       time.Time             // the read deadline set on c (see setLazyDeadline)
	wdl       time.Time             // the write deadline set on c (see write)
	idleSince time.Time             // when the connection last began to wait for a request
	lastEnd   time.Time             // when the last exchange ended, if just now (read once by armWait)
	wait      waitKind              // what the deadline in force is for (see armWait)

	// The read session's outcome (see session).
	serr      error
	after     sessionEnd
	inSession bool // fill must not be called: the session holds the read lock
	fd        int  // the descriptor, while inSession
	idleLong  bool // handed to waitIdle: the next wait is the rest of ClientIdle
	full      bool // the last read filled the buffer: more may be waiting

	// HTTP/2: h2 is set on a client connection that speaks it (read by
	// Shutdown), h2s on the exchange of one of its streams, which is
	// carried by a fastConn of its own.
	h2  atomic.Pointer[h2Conn]
	h2s *h2Stream

	in   *[]byte // request bytes; nil while idle
	r, w int     // in[r:w] is received and not yet used
	out  *[]byte // head being written, response buffer; nil while idle
	x    *exchangeState
}

// exchangeState is what one request needs beyond its buffers; a
// connection takes one when a request begins and gives it back when it
// goes idle.
type exchangeState struct {
	parser httpwire.Parser
	req    httpwire.Request

	target []byte // scratch for a rewritten request-target
	norm   []byte // scratch for a normalized path (httpwire.NormalizePath)
	// route is the path the request was routed by: its path as received,
	// or normalized into norm (normalized is then true).
	route      []byte
	normalized bool
	hashBuf    [64]byte

	logMethod, logPath, logHost string // for the access log only
	tried                       [8]*lb.Peer
}

var exchangeStates = sync.Pool{New: func() any { return new(exchangeState) }}

// state returns the connection's exchange state, taking one if it holds
// none.
func (c *fastConn) state() *exchangeState {
	if c.x == nil {
		c.x = exchangeStates.Get().(*exchangeState)
	}
	return c.x
}

// putState gives the exchange state back.
func (c *fastConn) putState() {
	x := c.x
	if x == nil {
		return
	}
	c.x = nil
	x.parser.Reset()
	x.req.Headers = x.req.Headers[:0]
	x.logMethod, x.logPath, x.logHost = "", "", ""
	clear(x.tried[:])
	exchangeStates.Put(x)
}

// fill reads more bytes into c.in[c.w:], taking a buffer first if the
// connection has none. It waits for readability without holding a buffer
// when none is held, which is what keeps idle connections small.
func (c *fastConn) fill() error {
	if c.inSession {
		return errInSession
	}
	if c.tc != nil {
		return c.fillTLS()
	}
	// readOnce leaves its result in c.sock's n and err, which no write is
	// using meanwhile.
	c.sock.n, c.sock.err = 0, nil
	n, err := c.sock.readResult(c.sock.rc.Read(c.readFn))
	c.w += n
	return err
}

// deadlineSlack is how far a read deadline may lag behind the time it
// stands for. Moving a deadline costs a runtime timer update; moving it at
// most once a second instead of at every request makes an idle timeout
// take between d and d+deadlineSlack, as nginx's timers are coarse too.
// It is the precision of the limits in Timeouts, not one of them.
const deadlineSlack = time.Second

// fillBody reads more of a request body, allowing Timeouts.RequestBody
// for it.
func (c *fastConn) fillBody() error {
	if c.h2s != nil {
		return c.h2s.fill(c)
	}
	c.rdl = setLazyDeadline(c.c, c.rdl, time.Now(), c.s.cfg.Timeouts.RequestBody)
	if c.x != nil {
		c.x.forgetHead()
	}
	return c.fill()
}

// forgetHead drops the parsed request's slices of the buffer its head was
// read into, before a wait for more of the body. The head has been used by
// then (the upstream head is built, the route and the facts needed later
// are kept apart), and the buffer goes back to its pool whenever a read
// finds nothing: held by these slices, it would stay allocated for as long
// as a slow client takes over its body, 16 KiB for each such client once
// the pool has let it go, and its bytes would be another connection's.
func (x *exchangeState) forgetHead() {
	r := &x.req
	if r.Method == nil {
		return // already forgotten
	}
	r.Method, r.Target, r.Path, r.Host, r.Upgrade = nil, nil, nil, nil, nil
	clear(r.Headers[:cap(r.Headers)])
	r.Headers = r.Headers[:0]
	x.route = nil
}

// setLazyDeadline gives conn a read deadline d after now, give or take a
// slack (deadlineSlack, or d/4 for short waits), touching the runtime's
// timer only when the deadline already set (set) is too early, or later
// than the slack allows. It returns the deadline in force.
func setLazyDeadline(conn net.Conn, set, now time.Time, d time.Duration) time.Time {
	want, move := lazyDeadline(set, now, d)
	if move {
		conn.SetReadDeadline(want)
	}
	return want
}

// lazyDeadline is setLazyDeadline's arithmetic: the deadline to have, and
// whether set must move to it.
func lazyDeadline(set, now time.Time, d time.Duration) (time.Time, bool) {
	slack := min(deadlineSlack, d/4)
	want := now.Add(d)
	if !set.IsZero() && !set.Before(want) && set.Sub(want) <= slack {
		return set, false
	}
	return want.Add(slack), true
}

// readOnce is the RawConn read callback (made once per connection as
// c.readFn, so that waiting allocates nothing): it reads if data is there,
// and otherwise gives a buffer that holds nothing back before the wait.
func (c *fastConn) readOnce(fd uintptr) bool {
	if c.in == nil {
		c.in = getBuf()
		c.r, c.w = 0, 0
	}
	for {
		n, errno := recv(int(fd), (*c.in)[c.w:])
		switch errno {
		case 0:
			c.sock.n = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if h := c.s.hooks.wait; h != nil {
				h((*c.in)[c.r:c.w], !c.inSession)
			}
			if c.r == c.w {
				putBuf(c.in)
				c.in = nil
			}
			return false
		}
		c.sock.err = os.NewSyscallError("recvfrom", errno)
		return true
	}
}

// compact moves unread bytes to the start of the buffer, growing it to the
// big size when a head does not fit.
func (c *fastConn) compact(grow bool) {
	if grow && cap(*c.in) < fastBigSize {
		big := bigBufs.Get().(*[]byte)
		c.w = copy(*big, (*c.in)[c.r:c.w])
		c.r = 0
		putBuf(c.in)
		c.in = big
		return
	}
	if c.r > 0 {
		c.w = copy(*c.in, (*c.in)[c.r:c.w])
		c.r = 0
	}
}

// releaseIdle gives the buffers back between requests, so that an idle
// connection holds none.
func (c *fastConn) releaseIdle() {
	c.putState()
	if c.in != nil && c.r == c.w {
		putBuf(c.in)
		c.in = nil
		c.r, c.w = 0, 0
	}
	if c.out != nil {
		putBuf(c.out)
		c.out = nil
	}
}

func (c *fastConn) close() {
	if c.sockTLS != nil {
		// The close_notify goes out within the 5 s crypto/tls allows
		// it, not within another send timeout.
		c.sockTLS.h1 = false
	}
	c.c.Close()
	c.putState()
	if c.in != nil {
		putBuf(c.in)
		c.in = nil
	}
	if c.out != nil {
		putBuf(c.out)
		c.out = nil
	}
	c.s.forget(c)
}

// exchange routes and forwards the request in c.x.req and reports whether
// the client connection may carry another request.
func (c *fastConn) exchange() bool {
	start := time.Now()
	if !c.served.Load() {
		c.served.Store(true)
	}
	x := c.x
	req := &x.req
	if c.s.cfg.AccessLog {
		// Copied now: the head's bytes may be overwritten by the body.
		x.logMethod, x.logPath, x.logHost = string(req.Method), string(pathOnly(req.Path)), string(req.Host)
	}
	raw := pathOnly(req.Path)
	route, ok := httpwire.NormalizePath(x.norm[:0], raw)
	if !ok {
		c.discardBody()
		c.writeError(400, msgAboveRoot, "", true)
		c.accessLog(nil, 400, nil, start)
		return false
	}
	x.route, x.normalized = route, len(route) > 0 && len(raw) > 0 && &route[0] != &raw[0]
	if x.normalized {
		x.norm = route // keep what it grew to
	}
	pool := c.s.router.Route(bstring(req.Host), bstring(route))
	if pool == nil {
		c.s.stats.NoRoute.Add(1)
		keep := c.discardBody()
		c.writeError(404, msgNoRoute, "", !keep)
		c.accessLog(pool, 404, nil, start)
		return keep
	}
	if isConnect(req.Method) {
		c.writeError(405, "CONNECT is not supported", pool.Name(), true)
		return false
	}
	f := forwarding{c: c, pool: pool, start: start}
	status, keep := f.run()
	end := f.end
	if end.IsZero() {
		end = time.Now()
	}
	c.lastEnd = end
	st := pool.Stats()
	st.Responses.Add(status)
	st.Latency.Observe(end.Sub(start))
	if n := len(f.tried); n > 1 {
		st.Retries.Add(uint64(n - 1))
	}
	c.accessLog(pool, status, f.tried, start)
	return keep
}

// pathOnly cuts the query from a request path.
func pathOnly(p []byte) []byte {
	for i, b := range p {
		if b == '?' {
			return p[:i]
		}
	}
	return p
}

func isConnect(m []byte) bool { return string(m) == "CONNECT" }

// discardBody consumes a request body that will not be forwarded, so the
// connection can carry the next request; it reports whether it could.
func (c *fastConn) discardBody() bool {
	req := &c.x.req
	c.r += req.HeadLen
	switch req.Framing {
	case httpwire.ByLength:
		left := req.ContentLength
		for {
			k := int64(c.w - c.r)
			if k >= left {
				c.r += int(left)
				return !req.Close
			}
			left -= k
			c.r = c.w
			if left > 1<<20 {
				return false // not worth reading a large body to keep the connection
			}
			c.compact(false)
			if c.fillBody() != nil {
				return false
			}
		}
	case httpwire.ByChunks:
		return false
	}
	return !req.Close
}

// writeError answers with wharf's JSON error body.
func (c *fastConn) writeError(status int, msg, service string, closeConn bool) {
	if c.h2s != nil {
		c.h2s.writeError(status, msg, service)
		return
	}
	if c.out == nil {
		c.out = getBuf()
	}
	c.writeAll(appendErrorResponse((*c.out)[:0], status, msg, service, closeConn), 10*time.Second)
}

func (c *fastConn) accessLog(pool *lb.Pool, status int, tried []*lb.Peer, start time.Time) {
	if !c.s.cfg.AccessLog {
		return
	}
	x := c.x
	ev := c.s.cfg.Log.Info().Str("method", x.logMethod).Str("path", x.logPath).
		Int("status", status).Str("client", c.c.RemoteAddr().String()).Str("host", x.logHost).
		Int("attempts", len(tried)).Dur("duration", time.Since(start))
	if pool != nil {
		ev = ev.Str("service", pool.Name())
	}
	if n := len(tried); n > 0 {
		ev = ev.Str("upstream", tried[n-1].Addr).Str("container", tried[n-1].Name)
	}
	ev.Msg("request")
}
