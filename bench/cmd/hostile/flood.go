package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharflb/wharf/bench/internal/procfs"
)

// floodMain: keep-alive clients and health probes run against the proxy,
// then more silent connections than the proxy has file descriptors arrive
// and stay. A proxy that runs out of descriptors must not blame its
// backends for it, and must keep answering its health check.
func floodMain(args []string) error {
	var t target
	fs := flag.NewFlagSet("hostile flood", flag.ContinueOnError)
	t.flags(fs)
	conns := fs.Int("conns", 21000, "silent connections")
	perChild := fs.Int("per-child", 7000, "silent connections per child process (each has its own open-file limit)")
	clients := fs.Int("clients", 300, "keep-alive clients")
	every := fs.Duration("every", time.Second, "each client's wait between two requests")
	warmup := fs.Duration("warmup", 3*time.Second, "clients and probes alone before the flood")
	duration := fs.Duration("duration", 60*time.Second, "how long the flood is held once open")
	out := fs.String("out", "", "JSON lines file to append the figures to")
	if err := parse(fs, args, &t); err != nil {
		return err
	}
	if t.Probe == "" {
		return fmt.Errorf("--probe is required")
	}
	if err := procfs.RaiseFileLimit(*clients + 100); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The phase each answer is counted in: 0 before the flood, 1 during.
	var phase atomic.Int32
	var mu sync.Mutex
	counts := [2]map[string]int{{}, {}}
	count := func(what string) {
		mu.Lock()
		counts[phase.Load()][what]++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	url := "http://" + t.Addr + "/webtest?action=get_uuid"
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for ctx.Err() == nil {
				res, err := c.Get(url)
				switch {
				case err != nil:
					count("client error")
				default:
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					count(fmt.Sprintf("client %d", res.StatusCode))
				}
				select {
				case <-ctx.Done():
				case <-time.After(*every):
				}
			}
		}()
	}
	// A health check as an orchestrator runs it: a new connection each
	// time, 2 s to answer, once a second.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			res, err := c.Get(t.Probe)
			if err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			if err == nil && res.StatusCode == 200 {
				count("probe ok")
			} else {
				count("probe failed")
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	// Peers marked down: wharf says so in /metrics, nginx in its error log.
	var failuresBefore float64
	var logStart int64
	if t.Metrics != "" {
		m, err := scrape(t.Metrics)
		if err != nil {
			return fmt.Errorf("metrics before the flood: %w", err)
		}
		failuresBefore = m.sum("wharf_peer_failures_total")
	}
	if t.ErrorLog != "" {
		if st, err := os.Stat(t.ErrorLog); err == nil {
			logStart = st.Size()
		}
	}
	time.Sleep(*warmup)

	phase.Store(1)
	start := time.Now()
	opened, failed, stop, err := flood(t.Addr, *conns, *perChild)
	if err != nil {
		return err
	}
	openedIn := time.Since(start)
	maxDown, scrapeFails := 0.0, 0
	for held := time.Now(); time.Since(held) < *duration; {
		time.Sleep(time.Second)
		if t.Metrics == "" {
			continue
		}
		if m, err := scrape(t.Metrics); err == nil {
			maxDown = max(maxDown, m.sum("wharf_peers", `state="down"`))
		} else {
			scrapeFails++
		}
	}
	cancel()
	wg.Wait()
	stop()

	mu.Lock()
	figures := map[string]any{
		"silent_opened":      opened,
		"silent_failed":      failed,
		"silent_open_ms":     openedIn.Milliseconds(),
		"before_flood":       counts[0],
		"during_flood":       counts[1],
		"clients_served":     counts[1]["client 200"],
		"client_requests":    total(counts[1], "client "),
		"probes_answered":    counts[1]["probe ok"],
		"probes_sent":        total(counts[1], "probe "),
		"metrics_unanswered": scrapeFails,
	}
	mu.Unlock()
	if t.Metrics != "" {
		// Scraped once the flood is gone, so that it answers.
		if m, err := scrape(t.Metrics); err == nil {
			figures["peer_failures"] = m.sum("wharf_peer_failures_total") - failuresBefore
			figures["peers_down_max"] = maxDown
			figures["peers_down_after"] = m.sum("wharf_peers", `state="down"`)
			figures["shortage_total"] = m.sum("wharf_shortage_total")
			figures["reclaimed_total"] = m.sum("wharf_connections_reclaimed_total")
		}
	}
	if t.ErrorLog != "" {
		lines := logLines(t.ErrorLog, logStart)
		figures["peers_marked_down"] = countContaining(lines, "upstream server temporarily disabled")
		figures["no_live_upstreams"] = countContaining(lines, "no live upstreams")
		figures["worker_connections_not_enough"] = countContaining(lines, "worker_connections are not enough")
	}
	return appendRecord(*out, record{Scenario: "flood", Proxy: t.Name, Time: start,
		Settings: map[string]any{"conns": *conns, "clients": *clients, "every": every.String(), "duration": duration.String()},
		Figures:  figures})
}

// total adds the counts whose key starts with prefix.
func total(c map[string]int, prefix string) int {
	n := 0
	for k, v := range c {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// flood opens n silent connections to addr from child processes of
// perChild each, and returns how many opened and failed, and a function
// that closes them all.
func flood(addr string, n, perChild int) (opened, failed int, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, 0, nil, err
	}
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	var kids []child
	stop = func() {
		for _, k := range kids {
			k.stdin.Close()
		}
		for _, k := range kids {
			k.cmd.Wait()
		}
	}
	for left := n; left > 0; left -= perChild {
		cmd := exec.Command(self, "silent", "--addr", addr, "--conns", fmt.Sprint(min(left, perChild)))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			stop()
			return 0, 0, nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			stop()
			return 0, 0, nil, err
		}
		if err := cmd.Start(); err != nil {
			stop()
			return 0, 0, nil, err
		}
		kids = append(kids, child{cmd, stdin, bufio.NewReader(stdout)})
	}
	for _, k := range kids {
		line, err := k.out.ReadString('\n')
		if err != nil {
			stop()
			return 0, 0, nil, fmt.Errorf("flood child: %w", err)
		}
		var o, f int
		fmt.Sscanf(line, "opened %d failed %d", &o, &f)
		opened, failed = opened+o, failed+f
	}
	return opened, failed, stop, nil
}

// silentMain opens silent connections, says how many opened, and holds
// them until its standard input closes.
func silentMain(args []string) error {
	fs := flag.NewFlagSet("hostile silent", flag.ContinueOnError)
	addr := fs.String("addr", "", "host:port")
	n := fs.Int("conns", 1000, "connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := procfs.RaiseFileLimit(*n); err != nil {
		return err
	}
	var (
		mu     sync.Mutex
		conns  []net.Conn
		failed int
		wg     sync.WaitGroup
	)
	next := make(chan struct{})
	for w := 0; w < 1000; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				c, err := net.DialTimeout("tcp", *addr, 3*time.Second)
				mu.Lock()
				if err != nil {
					failed++
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < *n; i++ {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	fmt.Printf("opened %d failed %d\n", len(conns), failed)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// logLines returns the lines of file path from offset from on.
func logLines(path string, from int64) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return nil
	}
	b, _ := io.ReadAll(f)
	return strings.Split(string(b), "\n")
}

func countContaining(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}
