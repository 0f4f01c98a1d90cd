//go:build !linux

package proxy

import "net"

// neverAcknowledged cannot tell on this system: a request that may have
// reached the peer is treated as having reached it.
func neverAcknowledged(c net.Conn, n int) bool { return false }
