package proxy

import (
	"io"
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
// writing allocate nothing. A sockIO serves one reader and one writer at a
// time, as a connection of the fast path is used by one exchange.
type sockIO struct {
	rc      syscall.RawConn
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool

	rbuf []byte
	rn   int
	rerr error

	wbuf []byte
	wn   int
	werr error
}

func (s *sockIO) init(rc syscall.RawConn) {
	s.rc = rc
	s.readFn = s.readOnce
	s.writeFn = s.writeOnce
}

// Read reads into b as io.Reader does: it waits until some bytes are there
// and returns io.EOF at the end of the stream.
func (s *sockIO) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s.rbuf, s.rn, s.rerr = b, 0, nil
	err := s.rc.Read(s.readFn)
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case s.rerr != nil:
		return 0, s.rerr
	case s.rn == 0:
		return 0, io.EOF
	}
	return s.rn, nil
}

func (s *sockIO) readOnce(fd uintptr) bool {
	for {
		n, errno := recv(int(fd), s.rbuf)
		switch errno {
		case 0:
			s.rn = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.rerr = os.NewSyscallError("recvfrom", errno)
		return true
	}
}

// Write writes all of b, waiting while the socket's send buffer is full.
func (s *sockIO) Write(b []byte) (int, error) {
	s.wbuf, s.wn, s.werr = b, 0, nil
	err := s.rc.Write(s.writeFn)
	s.wbuf = nil
	if err == nil {
		err = s.werr
	}
	return s.wn, err
}

func (s *sockIO) writeOnce(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		n, errno := send(int(fd), s.wbuf[s.wn:])
		switch errno {
		case 0:
			s.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			s.werr = os.NewSyscallError("sendto", errno)
			return true
		}
	}
	return true
}
