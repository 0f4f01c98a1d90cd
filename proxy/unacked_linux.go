package proxy

import (
	"net"
	"syscall"
	"unsafe"
)

// neverAcknowledged reports whether the peer's TCP acknowledged none of the
// last n bytes written to c, which went out as one segment, now that the
// connection broke before an answer: the peer then cannot have read the
// request. A peer that read it and died closed the connection with a FIN
// that acknowledges every byte it received; a peer that had closed the
// connection before the request arrived, or closed it without reading it,
// acknowledged nothing of it (a reset acknowledges nothing). Only a
// request in one segment is judged, so that the peer cannot have read a
// first part; anything else, and any doubt, reports false.
func neverAcknowledged(c net.Conn, n int) bool {
	tc, ok := c.(*net.TCPConn)
	if !ok || n <= 0 {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	never := false
	rc.Control(func(fd uintptr) {
		mss, err := syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG)
		if err != nil || n > mss {
			return
		}
		// TIOCOUTQ (SIOCOUTQ) of a TCP socket: bytes written and not yet
		// acknowledged, also once the connection is closed or reset.
		var unacked int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&unacked))); e != 0 {
			return
		}
		never = int(unacked) == n
	})
	return never
}
