package proxy

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// peerConns holds a peer's connections for both engines. It is the peer's
// lb attachment, so it lives exactly as long as the peer, and ClosePeer
// closes its idle connections when the peer leaves the table.
type peerConns struct {
	stdOnce sync.Once
	std     *peerTransport
	fast    upstreamPool
}

func connsOf(p *lb.Peer, dialTimeout time.Duration) *peerConns {
	return p.AttachOnce(func() any {
		return &peerConns{fast: upstreamPool{network: p.Network, addr: p.Addr, dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}}}
	}).(*peerConns)
}

func fastPool(p *lb.Peer, dialTimeout time.Duration) *upstreamPool {
	return &connsOf(p, dialTimeout).fast
}

// ClosePeer closes the idle connections of a peer that left the table; it
// is the lb.OnRemove hook. Connections in use finish their exchange and are
// closed instead of being kept.
func ClosePeer(attachment any) {
	pc, ok := attachment.(*peerConns)
	if !ok {
		return
	}
	pc.fast.close()
	if pc.std != nil {
		pc.std.closeOnce.Do(pc.std.CloseIdleConnections)
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

	// For closedByPeer: the connection's raw form and a read callback
	// made once per connection, so that checking allocates nothing.
	rc      syscall.RawConn
	peek    func(fd uintptr) bool
	peekBuf [1]byte
	peekErr error
}

// get returns an idle connection, or a new one when there is none or fresh
// is set. With check, an idle connection the peer has closed (or sent
// something on while idle) is closed and skipped instead of returned.
func (p *upstreamPool) get(fresh, check bool) (*upConn, error) {
	if !fresh {
		now := time.Now()
		p.mu.Lock()
		for n := len(p.idle); n > 0; n = len(p.idle) {
			up := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			if now.Sub(up.idleAt) < upIdleMax {
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
	c, err := p.dialer.Dial(p.network, p.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	up := &upConn{c: c}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			up.rc = rc
			up.peek = up.peekOnce
			up.sock.init(rc, true)
		}
	}
	if up.rc == nil {
		c.Close()
		return nil, errNotSocket
	}
	return up, nil
}

var errNotSocket = errors.New("dialed connection has no file descriptor")

// clearDeadline removes the read deadline of the response head before a
// body is read, which may take any time.
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
	if err := up.rc.Read(up.peek); err != nil {
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
// cannot carry another (reuse false) or the peer has left.
func (p *upstreamPool) put(up *upConn, reuse bool) {
	if !reuse {
		up.c.Close()
		return
	}
	up.idleAt = time.Now()
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

func (p *upstreamPool) discard(up *upConn) { up.c.Close() }

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
