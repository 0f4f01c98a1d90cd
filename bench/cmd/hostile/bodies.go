package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wharflb/wharf/bench/internal/procfs"
)

// bodiesMain: connections that each send all but the last byte of a
// request body and wait, the cost of a slow-body client. A proxy that keeps
// bodies for replay in memory without a bound pays the whole body for
// each; nginx keeps 16 KiB in memory and the rest in a temporary file.
func bodiesMain(args []string) error {
	var t target
	fs := flag.NewFlagSet("hostile bodies", flag.ContinueOnError)
	t.flags(fs)
	n := fs.Int("conns", 5000, "connections")
	size := fs.Int("size", 65536, "announced body size; each sends one byte less")
	out := fs.String("out", "", "JSON lines file to append the figures to")
	if err := parse(fs, args, &t); err != nil {
		return err
	}
	if err := procfs.RaiseFileLimit(*n); err != nil {
		return err
	}
	pids, err := procfs.ProcessTree(t.PID)
	if err != nil {
		return err
	}
	before, err := procfs.ReadMemory(pids)
	if err != nil {
		return err
	}
	head := fmt.Sprintf("POST /webtest?action=get_uuid HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", t.Addr, *size)
	payload := []byte(head + strings.Repeat("x", *size-1))

	start := time.Now()
	conns := make([]net.Conn, *n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	// 64 senders: every connection is open and has sent its bytes (into
	// the proxy's socket buffers at least) before memory is read.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fails int
		first error
	)
	next := make(chan int)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := net.DialTimeout("tcp", t.Addr, 10*time.Second)
				if err == nil {
					c.SetWriteDeadline(time.Now().Add(30 * time.Second))
					_, err = c.Write(payload)
				}
				mu.Lock()
				if err != nil {
					fails++
					if first == nil {
						first = err
					}
				}
				conns[i] = c
				mu.Unlock()
			}
		}()
	}
	for i := range *n {
		next <- i
	}
	close(next)
	wg.Wait()
	sent := time.Since(start)
	if fails > 0 {
		fmt.Printf("bodies %s: %d of %d connections failed (first: %v)\n", t.Name, fails, *n, first)
	}

	// Memory settles once the proxy has read what was sent: wait until
	// two readings a second apart differ by less than 1%, 20 s at most.
	after, err := procfs.ReadMemory(pids)
	if err != nil {
		return err
	}
	for i := 0; i < 20; i++ {
		time.Sleep(time.Second)
		m, err := procfs.ReadMemory(pids)
		if err != nil {
			return err
		}
		settled := abs(m.RSS-after.RSS) < after.RSS/100
		after = m
		if settled {
			break
		}
	}
	held := *n - fails
	figures := map[string]any{
		"conns_held":            held,
		"send_ms":               sent.Milliseconds(),
		"rss_before_bytes":      before.RSS,
		"rss_after_bytes":       after.RSS,
		"pss_before_bytes":      before.PSS,
		"pss_after_bytes":       after.PSS,
		"rss_per_conn_bytes":    (after.RSS - before.RSS) / int64(max(held, 1)),
		"pss_per_conn_bytes":    (after.PSS - before.PSS) / int64(max(held, 1)),
		"rss_of_all_conns_byte": after.RSS - before.RSS,
	}
	if t.Metrics != "" {
		if m, err := scrape(t.Metrics); err == nil {
			figures["wharf_retry_buffer_bytes"] = m.sum("wharf_retry_buffer_bytes")
			figures["wharf_retry_buffer_exhausted_total"] = m.sum("wharf_retry_buffer_exhausted_total")
			// Where the memory is, as the Go runtime sees it.
			for _, k := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes",
				"go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_next_gc_bytes"} {
				figures[k] = m.sum(k)
			}
		}
	}
	// The proxies are still waiting for the last byte: it goes to one of
	// them, to check that a held connection still works.
	if c := conns[0]; c != nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("x")); err == nil {
			if res, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				figures["last_byte_answer"] = res.StatusCode
				res.Body.Close()
			} else {
				figures["last_byte_answer"] = err.Error()
			}
		}
	}
	return appendRecord(*out, record{Scenario: "bodies", Proxy: t.Name, Time: start,
		Settings: map[string]any{"conns": *n, "size": *size, "sent": *size - 1}, Figures: figures})
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
