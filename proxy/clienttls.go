package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	stdlog "log"
	"net/http"
	"os"
	"time"

	"golang.org/x/net/http2"

	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// The client side of a fast-path connection is read and written through
// two methods, fill and write (with writeAll for wharf's own answers):
// everything above them, the request flow from parsing a head to relaying
// the answer, is the same over plain TCP and over TLS. Below them, a plain
// connection reads with recv(2) on its descriptor, inside a read session
// that answers whole requests without leaving the poller (session.go); a
// TLS connection reads and writes through its *tls.Conn, which must see
// every byte of the socket, so it has no read session: serveTLS is its
// request loop.

// fastTLS is what a FastServer needs to serve its listeners over TLS.
type fastTLS struct {
	config *tls.Config
	// h2 serves the connections that negotiate HTTP/2 by ALPN, with base
	// as their http.Server (limits, error log, graceful shutdown).
	h2   *http2.Server
	base *http.Server
}

// EnableTLS makes the server accept TLS on every listener it serves,
// with config (its certificates, versions and session tickets). HTTP/1.1
// in TLS goes through the fast path as plain HTTP/1.1 does; when h2 is
// not nil, "h2" is offered by ALPN first and connections that choose it
// are served by golang.org/x/net/http2 over h2 (the reference Handler),
// with errorLog for what that server reports. Call it before Serve.
//
// Session tickets are left to crypto/tls: with SessionTicketKey unset and
// SetSessionTicketKeys never called, it makes its own ticket keys, makes
// a new one every day and accepts each for seven days, which is the
// rotation a server needs that has no peers to share keys with. Its TLS
// 1.3 resumption also always runs a new (EC)DHE exchange, so a ticket key
// read from memory would not open recorded sessions.
func (s *FastServer) EnableTLS(config *tls.Config, h2 http.Handler, errorLog *stdlog.Logger) {
	config = config.Clone()
	config.NextProtos = []string{"http/1.1"}
	t := &fastTLS{config: config}
	if h2 != nil {
		config.NextProtos = []string{http2.NextProtoTLS, "http/1.1"}
		t.base = &http.Server{Handler: h2, ErrorLog: errorLog, IdleTimeout: s.cfg.Timeouts.ClientIdle,
			ReadHeaderTimeout: s.cfg.Timeouts.RequestHeader, MaxHeaderBytes: 64 << 10}
		t.h2 = &http2.Server{IdleTimeout: s.cfg.Timeouts.ClientIdle}
		// Registers the HTTP/2 connections with base, so that base's
		// Shutdown sends each a GOAWAY and lets its streams finish.
		if err := http2.ConfigureServer(t.base, t.h2); err != nil {
			panic(err) // only for a server configured twice
		}
	}
	s.tls = t
}

// shutdownH2 starts the graceful shutdown of the HTTP/2 connections:
// each gets a GOAWAY and ends when its streams have.
func (s *FastServer) shutdownH2() {
	if s.tls == nil || s.tls.base == nil {
		return
	}
	// With no listener and no connection of its own, base's Shutdown
	// only runs the shutdown hooks, and returns at once.
	s.tls.base.Shutdown(context.Background())
}

// start runs a new connection: over TLS, the handshake, then either
// HTTP/2 or serve.
func (c *fastConn) start() {
	if c.tc != nil {
		if !c.handshake() {
			c.close()
			return
		}
		if c.tc.ConnectionState().NegotiatedProtocol == http2.NextProtoTLS && c.s.tls.h2 != nil {
			c.serveH2()
			return
		}
	}
	c.serve()
}

// serveTLS is serve's request loop over TLS. A request head costs a Read
// of the *tls.Conn, which decrypts what the socket holds.
func (c *fastConn) serveTLS() {
	for {
		c.idle.Store(true)
		if c.s.shutdown.Load() {
			break
		}
		err := c.parseHead()
		if err == httpwire.ErrNeedMore {
			c.armWait()
			if err = c.fill(); err == nil {
				c.idle.Store(false)
				c.idleLong = false
				continue
			}
			if c.wait == waitHandoff && errors.Is(err, os.ErrDeadlineExceeded) && c.r == c.w {
				if h := c.s.hooks.handoff; h != nil {
					h()
				}
				// Waiting longer holds no buffer (see fill).
				c.releaseIdle()
				go c.waitIdle()
				return
			}
		}
		if err != nil {
			var perr *httpwire.Error
			if errors.As(err, &perr) {
				c.writeError(perr.Status(), perr.Error(), "", true)
			}
			break
		}
		c.wait = waitNone
		c.idle.Store(false)
		if !c.exchange() || c.s.shutdown.Load() {
			break
		}
		c.releaseIdle()
	}
	c.close()
}

// handshake runs the TLS handshake within Timeouts.TLSHandshake. The
// connection counts against Config.MaxConns from its accept, and until
// its first request it is among the first an accept loop at the cap
// closes, so a flood of slow handshakes cannot keep clients out.
func (c *fastConn) handshake() bool {
	c.idle.Store(true) // as a connection waiting for its first request
	dl := time.Now().Add(c.s.cfg.Timeouts.TLSHandshake)
	c.c.SetDeadline(dl)
	if err := c.tc.Handshake(); err != nil {
		if !c.reclaimed.Load() && !c.s.shutdown.Load() {
			c.s.cfg.Log.Debug().Err(err).Str("client", c.c.RemoteAddr().String()).Msg("TLS handshake error")
		}
		return false
	}
	c.c.SetWriteDeadline(time.Time{})
	c.rdl = dl // still set; armWait moves it
	return true
}

// serveH2 hands a connection that chose HTTP/2 to the HTTP/2 server; it
// stays counted until that server is done with it.
func (c *fastConn) serveH2() {
	c.idle.Store(false) // Shutdown ends it with a GOAWAY, not by closing it
	c.c.SetDeadline(time.Time{})
	c.rdl = time.Time{}
	t := c.s.tls
	t.h2.ServeConn(c.tc, &http2.ServeConnOpts{BaseConfig: t.base})
	c.close()
}

// fillTLS is fill over TLS. A connection that has been idle for
// Timeouts.idleHandoff waits for its next request without a buffer: it
// reads the first byte alone, and takes a buffer for the rest, which the
// *tls.Conn holds decrypted meanwhile.
func (c *fastConn) fillTLS() error {
	if c.in == nil {
		if c.idleLong {
			var one [1]byte
			n, err := c.tc.Read(one[:])
			if n == 0 {
				return readError(err)
			}
			c.in = getBuf()
			(*c.in)[0] = one[0]
			c.r, c.w = 0, 1
			return nil
		}
		c.in = getBuf()
		c.r, c.w = 0, 0
	}
	n, err := c.tc.Read((*c.in)[c.w:])
	c.w += n
	if n > 0 {
		return nil // an error comes again at the next read
	}
	return readError(err)
}

// readError is the error of a read that returned no bytes.
func readError(err error) error {
	if err == nil {
		return io.ErrNoProgress
	}
	return err
}

// writeTLS is write over TLS. A *tls.Conn whose write failed, timeout
// included, stays failed, so the limit cannot be a window renewed by
// progress as on a plain connection: each write, at most a buffer of
// answer, must be taken whole within Timeouts.ClientSend.
func (c *fastConn) writeTLS(b []byte) (int, error) {
	if want, move := lazyDeadline(c.wdl, time.Now(), c.s.cfg.Timeouts.ClientSend); move {
		c.c.SetWriteDeadline(want)
		c.wdl = want
	}
	return c.tc.Write(b)
}

// writeAll writes one of wharf's own answers whole, within d.
func (c *fastConn) writeAll(b []byte, d time.Duration) {
	c.c.SetWriteDeadline(time.Now().Add(d))
	if c.tc != nil {
		c.tc.Write(b)
	} else {
		c.sock.Write(b)
	}
	c.c.SetWriteDeadline(time.Time{})
	c.wdl = time.Time{}
}
