package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharflb/wharf/bench/internal/procfs"
)

// connsResult is one proxy holding many idle keep-alive connections.
type connsResult struct {
	Proxy         string  `json:"proxy"`
	Addr          string  `json:"addr"`
	ProxyPIDs     []int   `json:"proxy_pids"`
	Target        int     `json:"target_connections"`
	Opened        int     `json:"opened"`
	OpenErrors    int     `json:"open_errors"`
	OpenSeconds   float64 `json:"open_seconds"`
	HoldSeconds   float64 `json:"hold_seconds"`
	Rate          int     `json:"trickle_rate"`
	TrickleReqs   int64   `json:"trickle_requests"`
	TrickleErrors int64   `json:"trickle_errors"`
	// Skipped counts trickle ticks that found no free connection or worker.
	Skipped    int64  `json:"trickle_skipped"`
	FirstError string `json:"first_error,omitempty"`
	Before     memory `json:"memory_before"`
	AfterOpen  memory `json:"memory_after_open"`
	End        memory `json:"memory_end"`
	MaxRSS     int64  `json:"max_rss_bytes"`
	// Bytes of proxy memory per held connection, from the growth between
	// before and after opening them, and between before and the end of the
	// hold.
	RSSPerConn    float64 `json:"rss_bytes_per_connection"`
	PSSPerConn    float64 `json:"pss_bytes_per_connection"`
	RSSPerConnEnd float64 `json:"rss_bytes_per_connection_end"`
}

type connsReport struct {
	Meta    meta          `json:"meta"`
	Results []connsResult `json:"results"`
}

// heldConn is one client keep-alive connection.
type heldConn struct {
	c    net.Conn
	br   *bufio.Reader
	busy atomic.Bool
	dead atomic.Bool
}

// roundTrip sends one request and reads the whole answer, which must be a
// 200 that keeps the connection open.
func (h *heldConn) roundTrip(req []byte) error {
	h.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := h.c.Write(req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	if resp.Close {
		return errors.New("proxy closed the connection after the answer")
	}
	return nil
}

func connsMode(ctx context.Context, o options) error {
	if err := procfs.RaiseFileLimit(o.conns); err != nil {
		return err
	}
	rep := connsReport{Meta: collectMeta(o)}
	rep.Meta.Settings = map[string]string{
		"connections": fmt.Sprint(o.conns),
		"hold":        o.hold.String(),
		"rate":        fmt.Sprint(o.rate),
	}
	for i, p := range o.proxies {
		if i > 0 {
			// Give the previous proxy's closed connections time to go.
			if err := sleep(ctx, 3*time.Second); err != nil {
				return err
			}
		}
		r, err := holdConns(ctx, o, p)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		rep.Results = append(rep.Results, r)
	}
	md := connsMarkdown(rep)
	fmt.Print(md)
	return writeResults(o.outDir, "conns", rep, md)
}

func holdConns(ctx context.Context, o options, p target) (connsResult, error) {
	r := connsResult{Proxy: p.Name, Addr: p.Addr, Target: o.conns, Rate: o.rate}
	pids, err := processTree(p.PID)
	if err != nil {
		return r, err
	}
	r.ProxyPIDs = pids
	req := []byte("GET " + requestPath + " HTTP/1.1\r\nHost: " + p.Addr + "\r\n\r\n")
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	dial := func() (*heldConn, error) {
		c, err := dialer.DialContext(ctx, "tcp", p.Addr)
		if err != nil {
			return nil, err
		}
		return &heldConn{c: c, br: bufio.NewReaderSize(c, 2048)}, nil
	}

	// Warm the proxy up (upstream connections, first allocations) so that
	// the baseline is a proxy that has served traffic.
	for i := 0; i < 4; i++ {
		h, err := dial()
		if err != nil {
			return r, err
		}
		for j := 0; j < 100; j++ {
			if err := h.roundTrip(req); err != nil {
				h.c.Close()
				return r, fmt.Errorf("warm-up: %w", err)
			}
		}
		h.c.Close()
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return r, err
	}
	if r.Before, err = readMemory(pids); err != nil {
		return r, err
	}

	// Open the connections, 64 at a time, one request on each.
	conns := make([]*heldConn, o.conns)
	var firstErr atomic.Value
	noteErr := func(err error) {
		firstErr.CompareAndSwap(nil, err.Error())
	}
	var openErrs atomic.Int64
	start := time.Now()
	idx := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				h, err := dial()
				if err == nil {
					if err = h.roundTrip(req); err != nil {
						h.c.Close()
					}
				}
				if err != nil {
					openErrs.Add(1)
					noteErr(fmt.Errorf("opening: %w", err))
					continue
				}
				conns[i] = h
			}
		}()
	}
	for i := 0; i < o.conns && ctx.Err() == nil; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	defer func() {
		for _, h := range conns {
			if h != nil {
				h.c.Close()
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return r, err
	}
	r.OpenSeconds = time.Since(start).Seconds()
	var live []*heldConn
	for _, h := range conns {
		if h != nil {
			live = append(live, h)
		}
	}
	r.Opened, r.OpenErrors = len(live), int(openErrs.Load())
	fmt.Fprintf(os.Stderr, "%s: %d connections open in %.1fs (%d errors)\n", p.Name, r.Opened, r.OpenSeconds, r.OpenErrors)
	if len(live) == 0 {
		return r, fmt.Errorf("no connection could be opened: %v", firstErr.Load())
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return r, err
	}
	if r.AfterOpen, err = readMemory(pids); err != nil {
		return r, err
	}
	r.MaxRSS = r.AfterOpen.RSS

	// Hold them, with a trickle of requests on random ones.
	var reqs, errs, skipped atomic.Int64
	jobs := make(chan *heldConn, 64)
	var tw sync.WaitGroup
	for w := 0; w < 32; w++ {
		tw.Add(1)
		go func() {
			defer tw.Done()
			for h := range jobs {
				err := h.roundTrip(req)
				reqs.Add(1)
				if err != nil {
					errs.Add(1)
					noteErr(fmt.Errorf("trickle: %w", err))
					h.dead.Store(true)
					h.c.Close()
				}
				h.busy.Store(false)
			}
		}()
	}
	rnd := rand.New(rand.NewSource(1))
	// A request is due every 1/rate s since the start; a late tick (a busy
	// host delays this goroutine) sends all the requests that fell due.
	tick := time.NewTicker(5 * time.Millisecond)
	sample := time.NewTicker(time.Second)
	holdStart := time.Now()
	deadline := holdStart.Add(o.hold)
	var due int64
	dispatch := func() {
		for try := 0; try < 8; try++ {
			h := live[rnd.Intn(len(live))]
			if h.dead.Load() || !h.busy.CompareAndSwap(false, true) {
				continue
			}
			select {
			case jobs <- h:
				return
			default: // every worker is busy
				h.busy.Store(false)
				skipped.Add(1)
				return
			}
		}
		skipped.Add(1)
	}
loop:
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			break loop
		case <-sample.C:
			if m, err := readMemory(pids); err == nil && m.RSS > r.MaxRSS {
				r.MaxRSS = m.RSS
			}
		case now := <-tick.C:
			for want := int64(now.Sub(holdStart).Seconds() * float64(o.rate)); due < want; due++ {
				dispatch()
			}
		}
	}
	tick.Stop()
	sample.Stop()
	close(jobs)
	tw.Wait()
	if err := ctx.Err(); err != nil {
		return r, err
	}
	r.HoldSeconds = time.Since(holdStart).Seconds()
	r.TrickleReqs, r.TrickleErrors, r.Skipped = reqs.Load(), errs.Load(), skipped.Load()
	if r.End, err = readMemory(pids); err != nil {
		return r, err
	}
	if r.End.RSS > r.MaxRSS {
		r.MaxRSS = r.End.RSS
	}
	if v := firstErr.Load(); v != nil {
		r.FirstError = v.(string)
	}
	n := float64(r.Opened)
	r.RSSPerConn = float64(r.AfterOpen.RSS-r.Before.RSS) / n
	r.PSSPerConn = float64(r.AfterOpen.PSS-r.Before.PSS) / n
	r.RSSPerConnEnd = float64(r.End.RSS-r.Before.RSS) / n
	fmt.Fprintf(os.Stderr, "%s: held %d connections for %.0fs, %d trickle requests, %d errors; RSS %s → %s → %s\n",
		p.Name, r.Opened, r.HoldSeconds, r.TrickleReqs, r.TrickleErrors,
		mib(r.Before.RSS), mib(r.AfterOpen.RSS), mib(r.End.RSS))
	return r, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func kb(b float64) string {
	if b < 1024 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f KiB", b/1024)
}

func connsMarkdown(rep connsReport) string {
	var b strings.Builder
	b.WriteString(header(rep.Meta, "Idle keep-alive connections"))
	s := rep.Meta.Settings
	fmt.Fprintf(&b, "- Method: %s keep-alive connections opened from one client process, one request on each, then held for %s with %s requests/s on random ones; "+
		"memory is the proxy's resident set (all its processes, /proc/PID/status VmRSS; PSS from smaps_rollup), before opening, 2 s after opening, and at the end; a trickle request is not sent when all 32 senders are still waiting for answers; per connection is the growth divided by the connections held; the last column is that growth × 100,000.\n\n",
		s["connections"], s["hold"], s["rate"])
	b.WriteString("| proxy | connections held | errors (open + trickle) | trickle requests (not sent) | RSS before | RSS after opening | RSS at end | per connection (RSS) | per connection (PSS) | per connection at end (RSS) | 100,000 connections |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s | %d | %d + %d | %d (%d) | %s | %s | %s | %s | %s | %s | ≈ %.0f MiB |\n",
			r.Proxy, r.Opened, r.OpenErrors, r.TrickleErrors, r.TrickleReqs, r.Skipped,
			mib(r.Before.RSS), mib(r.AfterOpen.RSS), mib(r.End.RSS),
			kb(r.RSSPerConn), kb(r.PSSPerConn), kb(r.RSSPerConnEnd), r.RSSPerConn*100000/(1<<20))
	}
	for _, r := range rep.Results {
		if r.FirstError != "" {
			fmt.Fprintf(&b, "\n%s, first error: `%s`\n", r.Proxy, r.FirstError)
		}
	}
	return b.String()
}
