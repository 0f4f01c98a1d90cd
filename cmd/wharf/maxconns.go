package main

import "syscall"

// fdReserve is the descriptors kept out of --max-conns' default: the
// listeners, the admin server and its clients, the engine connection,
// health checks and log files.
const fdReserve = 64

// defaultMaxConns derives --max-conns from the process's descriptor limit
// (which Go raises to the hard limit at start): each client connection may
// hold one connection to a peer, so half of what is left after the
// reserve. With 20,000 descriptors that is 9,968.
func defaultMaxConns() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<31 {
		return 0 // no usable bound known: none set
	}
	return maxConnsFor(int64(lim.Cur))
}

func maxConnsFor(fds int64) int {
	return int(max((fds-fdReserve)/2, 1))
}
