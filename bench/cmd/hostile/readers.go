package main

import (
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/wharflb/wharf/bench/internal/procfs"
)

// readersMain: clients that ask for a large answer and never read any of
// it. A proxy that bounds the wait for a client to take its answer (nginx
// send_timeout, wharf --send-timeout) closes them, and lets go of the
// backend connections their answers came on; one that buffers answers
// (nginx) lets go of those at once.
func readersMain(args []string) error {
	var t target
	fs := flag.NewFlagSet("hostile readers", flag.ContinueOnError)
	t.flags(fs)
	clients := fs.Int("clients", 200, "clients that never read")
	size := fs.Int("bytes", 4<<20, "size of the answer each asks for")
	wait := fs.Duration("wait", 70*time.Second, "when to count the connections still held")
	sendTimeout := fs.Duration("send-timeout", 60*time.Second, "the send timeout the proxy was given (reported only)")
	out := fs.String("out", "", "JSON lines file to append the figures to")
	if err := parse(fs, args, &t); err != nil {
		return err
	}
	ports, err := backendPorts(t.Backends)
	if err != nil {
		return err
	}
	if err := procfs.RaiseFileLimit(*clients); err != nil {
		return err
	}
	req := fmt.Sprintf("GET /blob?bytes=%d HTTP/1.1\r\nHost: %s\r\n\r\n", *size, t.Addr)
	var conns []*net.TCPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < *clients; i++ {
		c, err := net.DialTimeout("tcp", t.Addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		tc := c.(*net.TCPConn)
		conns = append(conns, tc)
		if _, err := tc.Write([]byte(req)); err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
	}
	start := time.Now()
	fmt.Printf("readers %s: %d clients asked for %d bytes each and read nothing\n", t.Name, *clients, *size)

	// Sample every second: the backend connections, and when they were
	// all let go.
	var maxOpen, maxStalled int
	freedAt := time.Duration(-1)
	for time.Since(start) < *wait {
		time.Sleep(time.Second)
		open, stalled, err := backendConns(ports)
		if err != nil {
			return err
		}
		maxOpen, maxStalled = max(maxOpen, open), max(maxStalled, stalled)
		if stalled == 0 && freedAt < 0 && maxStalled > 0 {
			freedAt = time.Since(start)
		}
		if stalled > 0 {
			freedAt = -1
		}
	}
	open, stalled, err := backendConns(ports)
	if err != nil {
		return err
	}
	clientsOpen, err := clientsStillOpen(conns)
	if err != nil {
		return err
	}
	figures := map[string]any{
		"backend_conns_open_at_end":      open,
		"backend_conns_stalled_at_end":   stalled,
		"backend_conns_open_max":         maxOpen,
		"backend_conns_stalled_max":      maxStalled,
		"client_conns_open_at_end":       clientsOpen,
		"backend_stalled_freed_after_ms": msOrNil(freedAt),
	}
	return appendRecord(*out, record{Scenario: "readers", Proxy: t.Name, Time: start,
		Settings: map[string]any{"clients": *clients, "bytes": *size, "wait": wait.String(), "send_timeout": sendTimeout.String()},
		Figures:  figures})
}

func msOrNil(d time.Duration) any {
	if d < 0 {
		return nil
	}
	return d.Milliseconds()
}

// clientsStillOpen counts the connections of conns that the proxy has not
// closed: its side of them is still established. (Ours may stay
// established after the proxy closed: its FIN waits behind the answer
// bytes we do not read.)
func clientsStillOpen(conns []*net.TCPConn) (int, error) {
	mine := map[int]bool{}
	proxy := 0
	for _, c := range conns {
		mine[c.LocalAddr().(*net.TCPAddr).Port] = true
		proxy = c.RemoteAddr().(*net.TCPAddr).Port
	}
	socks, err := sockets()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range socks {
		if s.local == proxy && mine[s.remote] && s.state == tcpEstablished {
			n++
		}
	}
	return n, nil
}
