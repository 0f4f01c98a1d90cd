package proxy

import (
	"time"

	"golang.org/x/sys/unix"
	"syscall"
	"unsafe"
)

// recv reads from a non-blocking socket without waiting. It is a raw
// system call: one that cannot block needs none of the scheduler's
// preparation for a blocking one (handing the P over, taking it back).
// MSG_DONTWAIT makes sure of it whatever the descriptor's flags.
func recv(fd int, b []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd),
		uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), syscall.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// send writes to a non-blocking socket without waiting, as recv reads.
// MSG_NOSIGNAL: a peer that has gone gives EPIPE, not a SIGPIPE.
func send(fd int, b []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd),
		uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// setUnackedLimit sets TCP_USER_TIMEOUT on a peer socket: data the peer's
// TCP has not acknowledged for d ends the connection with ETIMEDOUT. A
// peer whose host vanished (its container's network removed, its node cut
// off) answers nothing, not even a reset; without this limit an attempt on
// it would wait for the whole response timeout. A peer that is merely slow
// to answer has acknowledged the request and is not affected.
func setUnackedLimit(fd int, d time.Duration) error {
	return syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
}
