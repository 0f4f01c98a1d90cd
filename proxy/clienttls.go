package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

// The client side of a fast-path connection is read and written through
// the read session (session.go) and two methods, fill and write:
// everything above them, the request flow from parsing a head to relaying
// the answer, is the same over plain TCP and over TLS. Below them, a plain
// connection reads with recv(2) on its descriptor and a TLS connection
// through its *tls.Conn, which reads the descriptor the same way through
// tlsSocket: inside the read session, a read that would wait tells
// crypto/tls so without waiting (a temporary error, after which it keeps
// what it has), the session waits for readability in the runtime's
// poller, and reads on. So a request in TLS costs the system calls a
// plain one does: one recv, one send.

// fastTLS is what a FastServer needs to serve its listeners over TLS.
type fastTLS struct {
	config *tls.Config
	h2     bool // "h2" is offered by ALPN
}

// EnableTLS makes the server accept TLS on every listener it serves,
// with config (its certificates, versions and session tickets). HTTP/1.1
// in TLS goes through the fast path as plain HTTP/1.1 does; with h2,
// "h2" is offered by ALPN first and connections that choose it are
// served by the HTTP/2 front end (h2.go) over the same request flow.
// Call it before Serve.
//
// Session tickets are left to crypto/tls: with SessionTicketKey unset and
// SetSessionTicketKeys never called, it makes its own ticket keys, makes
// a new one every day and accepts each for seven days, which is the
// rotation a server needs that has no peers to share keys with. Its TLS
// 1.3 resumption also always runs a new (EC)DHE exchange, so a ticket key
// read from memory would not open recorded sessions.
func (s *FastServer) EnableTLS(config *tls.Config, h2 bool) {
	config = config.Clone()
	// Protocols of config's own that are not HTTP (acme-tls/1, whose
	// challenge is answered by the handshake itself) are kept, offered
	// after HTTP.
	other := slices.DeleteFunc(slices.Clone(config.NextProtos), func(p string) bool {
		return p == http2.NextProtoTLS || p == "http/1.1"
	})
	config.NextProtos = append([]string{"http/1.1"}, other...)
	if h2 {
		config.NextProtos = append([]string{http2.NextProtoTLS, "http/1.1"}, other...)
	}
	s.tls = &fastTLS{config: config, h2: h2}
}

// The limits of an HTTP/2 connection. Each bounds what one client can
// make the server hold: streams and their exchanges (h2MaxStreams,
// nginx's http2_max_concurrent_streams), the frame read buffer
// (h2MaxFrameSize, the protocol's minimum, which every client takes),
// request body data received before the peer takes it (the flow control
// windows: a client cannot send more than they allow) and the decoded
// header list (h2MaxHeaderBytes, advertised as
// SETTINGS_MAX_HEADER_LIST_SIZE and enforced by the Framer over HEADERS
// and all their CONTINUATION frames together). Its writes keep
// Timeouts.ClientSend, as HTTP/1.1's do, so a connection that takes
// nothing for that long is closed.
const (
	h2MaxStreams      = 128
	h2MaxFrameSize    = 16 << 10
	h2ConnWindow      = 1 << 20
	h2StreamWindow    = 256 << 10
	h2HeaderTableSize = 4 << 10
	h2MaxHeaderBytes  = 64 << 10
)

// shutdownH2 starts the graceful shutdown of the HTTP/2 connections:
// each gets a GOAWAY and ends when its streams have; s.mu is held.
func (s *FastServer) shutdownH2() {
	for c := range s.conns {
		if h := c.h2.Load(); h != nil {
			h.gracefulShutdown()
		}
	}
}

// start runs a new connection: over TLS, the handshake, then either
// HTTP/2 or serve.
func (c *fastConn) start() {
	if c.tc != nil {
		if !c.handshake() {
			c.close()
			return
		}
		switch p := c.tc.ConnectionState().NegotiatedProtocol; {
		case p == http2.NextProtoTLS && c.s.tls.h2:
			c.serveH2(nil)
			return
		case p != "" && p != "http/1.1":
			// Not HTTP: the handshake was all of it (acme-tls/1).
			c.close()
			return
		}
	}
	c.serve()
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
	c.sockTLS.h1 = true
	return true
}

// fillTLS is fill over TLS, outside the read session.
func (c *fastConn) fillTLS() error {
	if c.in == nil {
		c.in = getBuf()
		c.r, c.w = 0, 0
	}
	n, err := c.tc.Read((*c.in)[c.w:])
	c.w += n
	if n > 0 {
		return nil // an error comes again at the next read
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readOnceTLS is readOnce over TLS: it reads what the *tls.Conn has or
// can read without waiting into c.in, leaving the count or the error in
// c.sock's n and err, and returns false when there is nothing to read
// yet, having given back a buffer that holds nothing.
func (c *fastConn) readOnceTLS() bool {
	if c.in == nil {
		c.in = getBuf()
		c.r, c.w = 0, 0
	}
	c.sockTLS.drained = false
	n, err := c.tc.Read((*c.in)[c.w:])
	if n > 0 {
		c.sock.n = n
		return true
	}
	if err == errWouldBlock {
		if h := c.s.hooks.wait; h != nil {
			h((*c.in)[c.r:c.w], false)
		}
		if c.r == c.w {
			putBuf(c.in)
			c.in = nil
		}
		return false
	}
	if err != io.EOF {
		c.sock.err = err
	}
	return true
}

// tlsSocket is the TCP connection under a client's *tls.Conn. Inside the
// read session it reads with recv(2) and never waits, and it keeps track
// of the TLS records it passes on, so that the session knows when
// crypto/tls holds nothing more to decrypt (drained). Once the handshake
// is done and the connection serves HTTP/1.1 (h1), it writes as a plain
// connection does (fastConn.writeSocket).
type tlsSocket struct {
	net.Conn
	c  *fastConn
	h1 bool

	// The last read in the session left the socket empty and passed on
	// exactly the end of one record: crypto/tls, having decrypted it,
	// holds nothing, and what comes next the poller will report.
	drained bool

	// Where the byte stream is in the TLS record framing: hdr holds hdrN
	// bytes of a record header, or body bytes of a record are still to
	// come.
	hdr  [5]byte
	hdrN int
	body int
}

func (s *tlsSocket) Read(b []byte) (int, error) {
	c := s.c
	if !c.inSession {
		n, err := s.Conn.Read(b)
		s.track(b[:n])
		return n, err
	}
	for {
		n, errno := recv(c.fd, b)
		switch errno {
		case 0:
			if n == 0 {
				return 0, io.EOF
			}
			ends := s.track(b[:n])
			s.drained = n < len(b) && ends == 1 && s.hdrN == 0 && s.body == 0
			return n, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, errWouldBlock
		}
		return 0, os.NewSyscallError("recvfrom", errno)
	}
}

// track follows the record framing over p, the next bytes of the
// stream, and returns how many records end in it.
func (s *tlsSocket) track(p []byte) (ends int) {
	for len(p) > 0 {
		if s.body > 0 {
			k := min(s.body, len(p))
			s.body -= k
			p = p[k:]
			if s.body == 0 {
				ends++
			}
			continue
		}
		k := copy(s.hdr[s.hdrN:], p)
		s.hdrN += k
		p = p[k:]
		if s.hdrN == len(s.hdr) {
			s.hdrN = 0
			if s.body = int(s.hdr[3])<<8 | int(s.hdr[4]); s.body == 0 {
				ends++
			}
		}
	}
	return ends
}

func (s *tlsSocket) Write(b []byte) (int, error) {
	if s.h1 {
		return s.c.writeSocket(b)
	}
	return s.Conn.Write(b)
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
