package proxy

import (
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
