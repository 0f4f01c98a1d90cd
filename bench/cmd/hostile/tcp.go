package main

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
)

// sock is one IPv4 TCP socket of /proc/net/tcp.
type sock struct {
	local, remote int // ports
	state         int // 1 ESTABLISHED, 8 CLOSE_WAIT...
	sendQueue     int // bytes written and not yet acknowledged by the peer
}

const (
	tcpEstablished = 1
	tcpCloseWait   = 8
)

// sockets reads the IPv4 TCP sockets of the host's network namespace.
func sockets() ([]sock, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseSockets(f)
}

// parseSockets reads a /proc/net/tcp table.
func parseSockets(r io.Reader) ([]sock, error) {
	var out []sock
	sc := bufio.NewScanner(r)
	sc.Scan() // the header line
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		var s sock
		s.local = hexPort(fs[1])
		s.remote = hexPort(fs[2])
		st, _ := strconv.ParseInt(fs[3], 16, 32)
		s.state = int(st)
		q, _, _ := strings.Cut(fs[4], ":")
		tx, _ := strconv.ParseInt(q, 16, 64)
		s.sendQueue = int(tx)
		out = append(out, s)
	}
	return out, sc.Err()
}

// hexPort is the port of an "0100007F:1F90" address.
func hexPort(a string) int {
	_, p, _ := strings.Cut(a, ":")
	n, _ := strconv.ParseInt(p, 16, 32)
	return int(n)
}

// backendConns counts the established connections the backends at ports
// hold, and among them those where the backend has data it could not send
// yet: an answer that the proxy is not taking.
func backendConns(ports map[int]bool) (open, stalled int, err error) {
	socks, err := sockets()
	if err != nil {
		return 0, 0, err
	}
	for _, s := range socks {
		if ports[s.local] && s.state == tcpEstablished {
			open++
			if s.sendQueue > 0 {
				stalled++
			}
		}
	}
	return open, stalled, nil
}
