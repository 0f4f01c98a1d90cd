//go:build !linux

package proxy

import (
	"syscall"
	"time"
)

// recv reads from a non-blocking socket without waiting.
func recv(fd int, b []byte) (int, syscall.Errno) {
	n, err := syscall.Read(fd, b)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}

// send writes to a non-blocking socket without waiting.
func send(fd int, b []byte) (int, syscall.Errno) {
	n, err := syscall.Write(fd, b)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}

// setUnackedLimit does nothing where TCP_USER_TIMEOUT is not known.
func setUnackedLimit(int, time.Duration) error { return nil }
