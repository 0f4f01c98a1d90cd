package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// fastPool returns the pool of p's connections. It is the peer's lb
// attachment, so it lives exactly as long as the peer, and ClosePeer
// closes its idle connections when the peer leaves the table.
func fastPool(p *lb.Peer, cfg *Config) *upstreamPool {
	return p.AttachOnce(func() any {
		return &upstreamPool{network: p.Network, addr: p.Addr, dialer: cfg.peerDialer()}
	}).(*upstreamPool)
}

// peerDialer is how the proxy connects to peers: within DialTimeout,
// with TCP keep-alive, and with Timeouts.UpstreamUnacked as the socket's
// TCP_USER_TIMEOUT (see setUnackedLimit).
//
// A peer whose host vanishes after it acknowledged the request (its answer
// lost on the way) leaves nothing unacknowledged on wharf's side, so
// TCP_USER_TIMEOUT alone would not end the wait for its answer. Keep-alive
// probes are sent after a fifth of the limit without a packet from the
// peer, then as often: the peer's TCP acknowledges them while its host is
// there, however slow its server is to answer; when none is acknowledged,
// Linux gives the connection up once the limit has passed since the peer
// was last heard from.
func (c *Config) peerDialer() net.Dialer {
	limit := c.Timeouts.UpstreamUnacked
	probe := max(limit/5, time.Millisecond)
	return net.Dialer{Timeout: c.dialTimeout(),
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: probe, Interval: probe, Count: 10},
		Control: func(network, _ string, rc syscall.RawConn) error {
			if network != "tcp" && network != "tcp4" && network != "tcp6" {
				return nil
			}
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = setUnackedLimit(int(fd), limit) }); err != nil {
				return err
			}
			return serr
		}}
}

// ClosePeer closes the idle connections of a peer that left the table; it
// is the lb.OnRemove hook. Connections in use finish their exchange and are
// closed instead of being kept.
func ClosePeer(attachment any) {
	if p, ok := attachment.(*upstreamPool); ok {
		p.close()
	}
}

// upstreamPool keeps a peer's idle keep-alive connections, most recently
// used first: the warmest connection is reused and the coldest ones age out.
type upstreamPool struct {
	network, addr string
	dialer        net.Dialer

	mu     sync.Mutex
	idle   []*upConn
	closed bool
}

// upConn is one connection to a peer, used by one exchange at a time.
type upConn struct {
	c      net.Conn
	sock   sockIO
	rdl    time.Time // the read deadline set on c (see setLazyDeadline)
	parser httpwire.Parser
	resp   httpwire.Response
	rw     int // bytes of the response buffer filled by readHead
	idleAt time.Time
	reused bool
	// canRetryFresh: the request went out on a reused connection; if the
	// peer closes it without answering, it may have closed it while idle
	// (see forwarding.attempt).
	canRetryFresh bool

	// For closedByPeer: a read callback made once per connection, so
	// that checking allocates nothing.
	peek    func(fd uintptr) bool
	peekBuf [1]byte
	peekErr error

	// pending is a request to be written by the first read of the
	// answer (see sendThenRead), and sent how much of it was.
	pending  []byte
	sent     int
	sendRead func(fd uintptr) bool

	// stream is the HTTP/2 stream whose exchange uses the connection: a
	// reset of the stream cuts it off (see h2Stream.watch).
	stream *h2Stream
}

// sendError marks a request that could not be written whole.
type sendError struct{ error }

func (e sendError) Unwrap() error { return e.error }

// sendThenRead writes up.pending, then waits for the answer and reads its
// first bytes into b, all in one RawConn.Read. The runtime's poller is
// made ready to report readability before the request goes out, and the
// answer cannot come before the request, so no read needs to be tried
// before the wait: an exchange costs one send and one recv, where a write
// followed by a read costs a recv that finds nothing first, the poller
// reading before it waits.
//
// If the socket does not take the whole request at once, the rest is
// written and the answer read the ordinary way. A failed write comes back
// as a sendError.
func (up *upConn) sendThenRead(b []byte) (int, error) {
	up.sent = 0
	up.sock.buf, up.sock.n, up.sock.err = b, 0, nil
	err := up.sock.rc.Read(up.sendRead)
	up.sock.buf = nil
	req := up.pending
	up.pending = nil
	if err != nil {
		if up.sent < len(req) {
			return 0, sendError{err}
		}
		return 0, err
	}
	if up.sent < len(req) {
		if up.sock.err != nil {
			return 0, sendError{up.sock.err}
		}
		if _, err := up.sock.Write(req[up.sent:]); err != nil {
			return 0, sendError{err}
		}
		return up.sock.Read(b)
	}
	return up.sock.readResult(nil)
}

// sendReadOnce is sendThenRead's RawConn callback: on its first call it
// sends, and returns false to wait without reading; after that it reads.
func (up *upConn) sendReadOnce(fd uintptr) bool {
	for up.sent < len(up.pending) {
		n, errno := send(int(fd), up.pending[up.sent:])
		switch errno {
		case 0:
			up.sent += n
			if up.sent == len(up.pending) {
				return false
			}
		case syscall.EINTR:
		case syscall.EAGAIN:
			return true // the rest is written outside, waiting for room
		default:
			up.sock.err = os.NewSyscallError("sendto", errno)
			return true
		}
	}
	return up.sock.readOnce(fd)
}

// get returns an idle connection, or a new one when there is none or fresh
// is set. With check, an idle connection the peer has closed (or sent
// something on while idle) is closed and skipped instead of returned. now
// is the time, for the idle connections' ages: those idle for maxIdle
// (Timeouts.UpstreamIdle) or longer are closed.
func (p *upstreamPool) get(fresh, check bool, now time.Time, maxIdle time.Duration) (*upConn, error) {
	if !fresh {
		p.mu.Lock()
		for n := len(p.idle); n > 0; n = len(p.idle) {
			up := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			if now.Sub(up.idleAt) < maxIdle {
				p.mu.Unlock()
				if !up.rdl.IsZero() && !now.Before(up.rdl) {
					// The response header deadline of its last exchange
					// passed while it was idle.
					up.clearDeadline()
				}
				if check && up.closedByPeer() {
					up.c.Close()
					p.mu.Lock()
					continue
				}
				up.reused = true
				return up, nil
			}
			up.c.Close()
		}
		p.mu.Unlock()
	}
	c, err := p.dial()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		c.Close()
		return nil, errNotSocket
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	up := &upConn{c: c}
	up.sock.init(rc, true)
	up.peek = up.peekOnce
	up.sendRead = up.sendReadOnce
	return up, nil
}

var errNotSocket = errors.New("dialed connection has no file descriptor")

// dial connects to the peer on a goroutine of its own, while the
// connection's goroutine waits a frame deep. The net package's dial
// (resolution, the parallel and serial dialers, the socket options, the
// wait for the connect) needs close to 3 KiB of stack, which on top of an
// exchange's frames would grow the connection's stack from 4 KiB to 8
// KiB, and a stack keeps its size while the connection waits: for a
// client that sends its body slowly, that is 4 KiB more for as long as it
// takes. The dialing goroutine ends with the dial and its stack is freed;
// a new connection to a peer, unlike a request, already costs system
// calls and allocations enough that a goroutine more is no matter.
func (p *upstreamPool) dial() (net.Conn, error) {
	done := make(chan dialed, 1)
	go func() {
		c, err := p.dialer.Dial(p.network, p.addr)
		done <- dialed{c, err}
	}()
	d := <-done
	return d.c, d.err
}

type dialed struct {
	c   net.Conn
	err error
}

// clearDeadline removes the read deadline of the response head before a
// body is read, which may take any time.
// armRead bounds the next read of an answer body by d from now (lazily,
// see setLazyDeadline): a peer that sends nothing for d is given up.
func (up *upConn) armRead(d time.Duration) {
	up.rdl = setLazyDeadline(up.c, up.rdl, time.Now(), d)
}

// bodyReader reads an answer body from up, each read bounded by
// Timeouts.UpstreamRead (see armRead).
type bodyReader struct {
	up *upConn
	d  time.Duration
}

func (r bodyReader) Read(b []byte) (int, error) {
	r.up.armRead(r.d)
	return r.up.sock.Read(b)
}

func (up *upConn) clearDeadline() {
	if !up.rdl.IsZero() {
		up.c.SetReadDeadline(time.Time{})
		up.rdl = time.Time{}
	}
}

// closedByPeer reports whether the peer closed the idle connection up, or
// sent something on it unasked, which an idle connection must not carry:
// a look at the receive queue without waiting finds end-of-file or data.
// It sees the peer's close as soon as the peer's FIN has arrived: a
// request written to the connection after that would meet a closed socket,
// and the failure could not be told from a peer that read it and died.
func (up *upConn) closedByPeer() bool {
	up.peekErr = nil
	if err := up.sock.rc.Read(up.peek); err != nil {
		return true
	}
	return up.peekErr != syscall.EAGAIN
}

// peekOnce is the RawConn read callback of closedByPeer: it never waits.
func (up *upConn) peekOnce(fd uintptr) bool {
	for {
		_, _, up.peekErr = syscall.Recvfrom(int(fd), up.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if up.peekErr != syscall.EINTR {
			return true
		}
	}
}

// put returns a connection after a complete exchange, or closes it when it
// cannot carry another (reuse false) or the peer has left. since is when
// the exchange began: a connection counts as idle from then, which errs on
// the side of closing it before the peer does.
func (p *upstreamPool) put(up *upConn, reuse bool, since time.Time) {
	if up.stream != nil && up.stream.unwatch(up) {
		reuse = false
	}
	if !reuse {
		up.c.Close()
		return
	}
	up.idleAt = since
	up.canRetryFresh = false
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdlePeers {
		p.mu.Unlock()
		up.c.Close()
		return
	}
	p.idle = append(p.idle, up)
	p.mu.Unlock()
}

func (p *upstreamPool) discard(up *upConn) {
	if up.stream != nil {
		up.stream.unwatch(up)
	}
	up.c.Close()
}

// left reports whether the peer has left the table (ClosePeer).
func (p *upstreamPool) left() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *upstreamPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, up := range idle {
		up.c.Close()
	}
}
