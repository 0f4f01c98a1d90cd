package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// sessionEnd says why a read session ended without an error.
type sessionEnd uint8

const (
	sessionDone sessionEnd = iota // the connection is to be closed
	sessionOut                    // a request is to be answered outside the session
)

// errInSession: a read of the client connection was tried inside its read
// session, where it would wait for the lock the session holds.
var errInSession = errors.New("proxy: client read inside the read session")

// errH2Preface: a plain connection began with HTTP/2's preface.
var errH2Preface = errors.New("proxy: HTTP/2 preface")

// serve reads and answers requests until the connection closes, or until
// it has been idle for a while (Timeouts.idleHandoff) and waitIdle takes
// it over.
//
// Requests are read, and answered when they are whole in the buffer (the
// usual case), inside one RawConn.Read of the client connection: the read
// session (see session). The runtime's poller is readied once for the
// whole session and keeps any readability that comes meanwhile, so between
// two requests the session waits without trying a read first: where a
// read after each answer finds nothing most of the time, a request costs
// one recv. A request that needs more reads from the client (a body still
// on its way, an upgrade) ends the session and is answered outside it.
func (c *fastConn) serve() {
	for {
		c.idle.Store(true)
		if c.s.shutdown.Load() {
			break
		}
		c.after, c.serr = sessionDone, nil
		c.armWait()
		c.inSession = true
		err := c.sock.rc.Read(c.sessionFn)
		c.inSession = false
		if err == nil {
			err = c.serr
		}
		if err == errH2Preface {
			c.serveH2((*c.in)[c.r:c.w])
			return
		}
		if err != nil {
			if c.wait == waitHandoff && errors.Is(err, os.ErrDeadlineExceeded) {
				if h := c.s.hooks.handoff; h != nil {
					h()
				}
				go c.waitIdle()
				return
			}
			var perr *httpwire.Error
			if errors.As(err, &perr) {
				c.writeError(perr.Status(), perr.Error(), "", true)
			}
			break
		}
		if c.after == sessionDone {
			break
		}
		keep := c.exchange()
		if !keep || c.s.shutdown.Load() {
			break
		}
		c.releaseIdle()
	}
	c.close()
}

// waitIdle waits for the next request of a connection that has been idle
// for Timeouts.idleHandoff, then serves it. It runs on a goroutine of its
// own, and the one that served the connection ends: that one's stack grew
// to what an exchange needs (4 KiB), while a new goroutine starts with
// 2 KiB and waits a few frames deep. Connections that sit idle, usually
// most of them, so cost about 2 KiB less each; a busy connection is never
// idle that long, and one that is pays for a new goroutine once per idle
// spell.
func (c *fastConn) waitIdle() {
	c.idleLong = true
	c.serve()
}

// session is serve's RawConn read callback. It parses what the buffer
// holds, reads only when that is not a whole head, and answers each
// request that needs nothing more from the client. It returns false to
// wait for readability, and true to end the session: c.serr says what
// failed, or c.after what comes next.
func (c *fastConn) session(fd uintptr) bool {
	c.fd = int(fd)
	for {
		err := c.parseHead()
		if err == httpwire.ErrNeedMore {
			c.sock.n, c.sock.err = 0, nil
			if !c.readSome(fd) {
				c.full = false
				c.armWait()
				return false
			}
			n, err := c.sock.readResult(nil)
			if err != nil {
				c.serr = err
				return true
			}
			c.w += n
			c.full = c.w == len(*c.in)
			c.idle.Store(false)
			c.idleLong = false
			continue
		}
		if err != nil {
			c.serr = err
			return true
		}
		c.wait = waitNone
		c.idle.Store(false)
		if !c.whole() {
			c.after = sessionOut
			return true
		}
		if !c.exchange() || c.s.shutdown.Load() {
			return true
		}
		c.releaseIdle()
		c.idle.Store(true)
		if c.s.shutdown.Load() {
			return true
		}
		// Over TLS, crypto/tls may also hold more records than the one
		// just read, unless the socket gave exactly one (see tlsSocket).
		if c.in != nil || c.full || c.tc != nil && !c.sockTLS.drained {
			continue // more is here, or may be: parse and read before waiting
		}
		// Nothing more was here at the last read, and whatever comes
		// after it the poller has kept: wait without reading.
		c.armWait()
		return false
	}
}

// readSome is the session's read: readOnce on a plain connection,
// readOnceTLS over TLS.
func (c *fastConn) readSome(fd uintptr) bool {
	if c.tc != nil {
		return c.readOnceTLS()
	}
	return c.readOnce(fd)
}

// parseHead parses the request head at c.in[c.r:c.w] into c.x.req. It
// returns httpwire.ErrNeedMore when more bytes are needed, having made
// room for them, and a parse error as it is.
func (c *fastConn) parseHead() error {
	for c.in != nil && c.w > c.r {
		x := c.state()
		// Tolerate the CRLF some clients send after a POST body.
		if k := httpwire.LeadingCRLF((*c.in)[c.r:c.w]); k > 0 {
			c.r += k
			x.parser.Reset()
			continue
		}
		if c.tc == nil && !c.served.Load() {
			// HTTP/2 with prior knowledge (h2c) begins with its preface,
			// which would otherwise parse as a request of HTTP/2.0.
			if b := (*c.in)[c.r:c.w]; len(b) < len(h2Preface) && string(b) == h2Preface[:len(b)] {
				break
			} else if len(b) >= len(h2Preface) && string(b[:len(h2Preface)]) == h2Preface {
				return errH2Preface
			}
		}
		err := x.parser.ParseRequest(&x.req, (*c.in)[c.r:c.w])
		if err != httpwire.ErrNeedMore {
			return err
		}
		if c.w == len(*c.in) {
			if c.r == 0 && cap(*c.in) >= fastBigSize {
				return httpwire.ErrHeadTooLarge
			}
			c.compact(c.r == 0)
		}
		break
	}
	return httpwire.ErrNeedMore
}

// whole reports whether the request in c.x.req can be answered without
// another read from the client: its body, if any, is in the buffer, and it
// neither asks to upgrade nor expects a 100 Continue.
func (c *fastConn) whole() bool {
	req := &c.x.req
	if req.Upgrade != nil || req.ExpectContinue {
		return false
	}
	switch req.Framing {
	case httpwire.NoBody:
		return true
	case httpwire.ByLength:
		return int64(c.w-c.r-req.HeadLen) >= req.ContentLength
	}
	return false // chunked: where it ends is found by reading it
}

// waitKind is what the read deadline in force on a client connection is
// for. When it expires, serve hands the connection over to waitIdle if it
// was waitHandoff's, and otherwise closes it: the limit was reached.
type waitKind uint8

const (
	waitNone       waitKind = iota // none of the below: no deadline, or a body's
	waitHandoff                    // no request begun: Timeouts.idleHandoff
	waitClientIdle                 // no request begun, handed to waitIdle: the rest of Timeouts.ClientIdle
	waitHead                       // a head begun: Timeouts.RequestHeader from its first bytes
)

// armWait sets the read deadline for the wait ahead: idleHandoff while no
// request has begun (the rest of ClientIdle once handed to waitIdle), and
// RequestHeader from the first bytes of a head.
func (c *fastConn) armWait() {
	want := waitHandoff
	switch {
	case c.in != nil && c.w > c.r:
		want = waitHead
	case c.idleLong:
		want = waitClientIdle
	}
	if want == waitHead && c.wait == waitHead {
		return // counted from the head's first bytes
	}
	now := c.lastEnd // saves reading the clock again right after an exchange
	c.lastEnd = time.Time{}
	if now.IsZero() {
		now = time.Now()
	}
	to := &c.s.cfg.Timeouts
	var d time.Duration
	switch want {
	case waitHandoff:
		c.idleSince = now
		d = to.idleHandoff
	case waitClientIdle:
		d = to.ClientIdle - now.Sub(c.idleSince)
	case waitHead:
		d = to.RequestHeader
	}
	c.rdl = setLazyDeadline(c.c, c.rdl, now, d)
	c.wait = want
}

// write writes b to the client: through its *tls.Conn over TLS, which
// writes the records with writeSocket.
func (c *fastConn) write(b []byte) (int, error) {
	if c.h2s != nil {
		return c.h2s.writeBody(b)
	}
	if c.tc != nil {
		return c.tc.Write(b)
	}
	return c.writeSocket(b)
}

// writeSocket writes b to the client's socket. Inside the read session
// the descriptor is held open by the session's RawConn.Read, so it is
// written to directly, without RawConn.Write's locking, as long as the
// socket takes everything at once; the rest, if any, goes through
// RawConn.Write, which waits.
func (c *fastConn) writeSocket(b []byte) (int, error) {
	n := 0
	if c.inSession {
		for n < len(b) {
			k, errno := send(c.fd, b[n:])
			if errno == syscall.EINTR {
				continue
			}
			if errno != 0 {
				break // EAGAIN, or an error that the write below reports
			}
			n += k
		}
		if n == len(b) {
			return n, nil
		}
	}
	return c.writeWaiting(b, n)
}

// writeWaiting writes b[n:] to the client, waiting while its socket is
// full, as long as the client takes some of it within Timeouts.ClientSend
// of the last progress (nginx's send_timeout); a client that takes nothing
// for that long is cut off, freeing its connection and the peer's.
func (c *fastConn) writeWaiting(b []byte, n int) (int, error) {
	return writeProgressing(c.c, &c.wdl, c.s.cfg.Timeouts.ClientSend, &c.sock, b, n)
}

// writeProgressing writes b[n:] with w, under conn's write deadline,
// which it keeps at d after the last write that made progress (wdl is the
// deadline set on conn): a write fails only after d without progress.
func writeProgressing(conn net.Conn, wdl *time.Time, d time.Duration, w io.Writer, b []byte, n int) (int, error) {
	for {
		if want, move := lazyDeadline(*wdl, time.Now(), d); move {
			conn.SetWriteDeadline(want)
			*wdl = want
		}
		k, err := w.Write(b[n:])
		n += k
		if err != nil && k > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			continue // progress within the window: a new window
		}
		return n, err
	}
}

// clientWriter is the client connection as an io.Writer.
type clientWriter struct{ c *fastConn }

func (w clientWriter) Write(b []byte) (int, error) { return w.c.write(b) }
