package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
)

// sockIO reads and writes a connected socket of the fast path with recv(2)
// and send(2) on its descriptor, from inside the RawConn callbacks: the
// runtime's poller still does the waiting, deadlines still apply, and a
// concurrent Close still waits for the call in progress. Compared with
// net.Conn's Read and Write it leaves out the VFS layer of read(2) and
// write(2) and, the socket being non-blocking, the scheduler's bookkeeping
// around a system call that might block (see recv). On the loopback path
// between a balancer and its peers, where the kernel does most of the work
// of a request, both are a measurable share of the CPU.
//
// The callbacks are made once, when the connection is, so that reading and
// writing allocate nothing. A sockIO does one call at a time, as the
// connections of the fast path are read and written by one goroutine (a
// tunnel, which copies both ways at once, uses the net.Conn).
type sockIO struct {
	rc      syscall.RawConn
	readFn  func(fd uintptr) bool // nil unless made with reads
	nowFn   func(fd uintptr) bool // nil unless made with reads
	writeFn func(fd uintptr) bool

	buf []byte
	n   int
	err error
}

// init readies s for writes to rc, and for reads when reads is set.
func (s *sockIO) init(rc syscall.RawConn, reads bool) {
	s.rc = rc
	if reads {
		s.readFn = s.readOnce
		s.nowFn = s.readNowOnce
	}
	s.writeFn = s.writeOnce
}

// Read reads into b as io.Reader does: it waits until some bytes are there
// and returns io.EOF at the end of the stream.
func (s *sockIO) Read(b []byte) (int, error) { return s.read(b, s.readFn) }

// read reads into b by the RawConn callback fn (readFn or nowFn).
func (s *sockIO) read(b []byte, fn func(fd uintptr) bool) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.buf, s.n, s.err = b, 0, nil
	err := s.rc.Read(fn)
	s.buf = nil
	return s.readResult(err)
}

// readResult is what a read through readOnce came to, err being what
// RawConn.Read returned: the bytes read, or the error, or io.EOF for none.
func (s *sockIO) readResult(err error) (int, error) {
	switch {
	case err != nil:
		return 0, err
	case s.err != nil:
		return 0, s.err
	case s.n == 0:
		return 0, io.EOF
	}
	return s.n, nil
}

// errWouldBlock: a read that may not wait (ReadNow, or tlsSocket.Read in
// the read session) found nothing to read. It is a temporary net.Error so
// that crypto/tls, reading through tlsSocket, passes it on without
// failing the connection and keeps the bytes it has.
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "proxy: nothing to read yet" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// ReadNow is Read without the wait: it returns errWouldBlock when nothing
// has arrived.
func (s *sockIO) ReadNow(b []byte) (int, error) { return s.read(b, s.nowFn) }

func (s *sockIO) readNowOnce(fd uintptr) bool {
	if !s.readOnce(fd) {
		s.err = errWouldBlock
	}
	return true
}

func (s *sockIO) readOnce(fd uintptr) bool {
	for {
		n, errno := recv(int(fd), s.buf)
		switch errno {
		case 0:
			s.n = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.err = os.NewSyscallError("recvfrom", errno)
		return true
	}
}

// Write writes all of b, waiting while the socket's send buffer is full.
func (s *sockIO) Write(b []byte) (int, error) {
	s.buf, s.n, s.err = b, 0, nil
	err := s.rc.Write(s.writeFn)
	s.buf = nil
	if err == nil {
		err = s.err
	}
	return s.n, err
}

func (s *sockIO) writeOnce(fd uintptr) bool {
	for s.n < len(s.buf) {
		n, errno := send(int(fd), s.buf[s.n:])
		switch errno {
		case 0:
			s.n += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.err = os.NewSyscallError("sendto", errno)
			return true
		}
	}
	return true
}
