// Command benchrun is the measuring half of bench/run.sh: it drives wrk
// against proxies that are already running (wharf, nginx, HAProxy in front of
// the same webtest backends), reads their CPU time and memory from /proc, and
// prints Markdown tables and writes the raw figures as JSON.
//
// Throughput (the default mode): for each concurrency and each proxy,
// interleaved and repeated --runs times after one uncounted warm-up per
// proxy and concurrency,
//
//	wrk -t1 -cC -dD --latency http://ADDR/webtest?action=get_uuid
//
// with the user+system CPU time of all the proxy's processes (and of the
// backends, wrk and the whole host) read before and after each run.
//
// With --tls-proxy and --tls-conc or --handshake-conc, the same over
// https: keep-alive (HTTP/1.1 in TLS), and with "Connection: close", which
// makes every request a full TLS handshake. With --h2-conc, HTTP/2 over the
// same TLS listeners, negotiated by ALPN:
//
//	h2load -t1 -cC -m8 -D D --log-file=... https://ADDR/webtest?action=get_uuid
//
// (latency percentiles from h2load's per-request log).
//
// With --gzip-proxy and --gzip-conc, webtest's 10 KiB JSON sample
// (action=sample&size=10240) with "Accept-Encoding: gzip", from listeners
// of the proxies that compress it.
//
// Idle connections (--conns N): for each proxy in turn, opens N keep-alive
// connections from this process, sends one request on each, keeps them open
// for --hold with a trickle of --rate requests per second on random ones,
// and reports the proxy's resident memory before and after.
//
// Usage:
//
//	benchrun --proxy wharf=127.0.0.1:PORT,pid=PID --proxy nginx=... \
//	         --backend-pids PID,PID,PID [--runs 5] [--duration 10s] [--quick]
//	         [--tls-proxy wharf=127.0.0.1:PORT,pid=PID ... --tls-conc 64 --handshake-conc 32 --h2-conc 64]
//	         [--gzip-proxy wharf=127.0.0.1:PORT,pid=PID ... --gzip-conc 64]
//	benchrun --conns 15000 --proxy NAME=ADDR,pid=PID ...
//	benchrun --free-ports N
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const requestPath = "/webtest?action=get_uuid"

// target is one proxy under test.
type target struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
}

type targetList []target

func (l *targetList) String() string { return fmt.Sprint(*l) }

// Set parses NAME=HOST:PORT,pid=PID.
func (l *targetList) Set(s string) error {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=HOST:PORT,pid=PID, got %q", s)
	}
	addr, pidPart, ok := strings.Cut(rest, ",pid=")
	if !ok {
		return fmt.Errorf("want NAME=HOST:PORT,pid=PID, got %q", s)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	pid, err := strconv.Atoi(pidPart)
	if err != nil || pid <= 0 {
		return fmt.Errorf("%q: bad pid", s)
	}
	*l = append(*l, target{Name: name, Addr: addr, PID: pid})
	return nil
}

// load is one kind of traffic of the throughput mode at one concurrency.
type load struct {
	Kind string // loadHTTP, loadTLS, loadHandshake, loadGzip or loadH2
	Conc int
}

const (
	loadHTTP      = "http"      // HTTP/1.1 keep-alive
	loadTLS       = "https"     // HTTP/1.1 in TLS, keep-alive
	loadHandshake = "handshake" // HTTP/1.1 in TLS, Connection: close: a full handshake per request
	loadGzip      = "gzip"      // HTTP/1.1 keep-alive, the 10 KiB JSON sample compressed at level 1
	loadH2        = "h2"        // HTTP/2 in TLS (ALPN h2), h2load with several streams per connection
)

// label names the load in the tables.
func (l load) label() string {
	switch l.Kind {
	case loadTLS:
		return "HTTP/1.1 in TLS"
	case loadHandshake:
		return "TLS handshake per request"
	case loadGzip:
		return "gzip, 10 KiB JSON"
	case loadH2:
		return "HTTP/2"
	}
	return "HTTP/1.1"
}

// url is what wrk asks for of the proxy at addr.
func (l load) url(addr string) string {
	switch l.Kind {
	case loadHTTP:
		return "http://" + addr + requestPath
	case loadGzip:
		return "http://" + addr + gzipPath
	}
	return "https://" + addr + requestPath
}

// wrkArgs are the wrk options the load adds.
func (l load) wrkArgs() []string {
	switch l.Kind {
	case loadHandshake:
		return []string{"-H", "Connection: close"}
	case loadGzip:
		return []string{"-H", gzipHeader}
	}
	return nil
}

type options struct {
	proxies     targetList
	tlsProxies  targetList // the same proxies' TLS listeners, for the https loads
	gzipProxies targetList // the same proxies' listeners that compress, for the gzip load
	backendPIDs []int
	concs       []int
	loads       []load
	runs        int
	duration    time.Duration
	warmup      time.Duration
	pause       time.Duration
	idleWait    time.Duration
	maxRest     float64
	repeats     int
	baseline    string
	wrk         string
	h2load      string
	h2Streams   int
	wharfBin    string
	wharfRev    string
	baseBin     string // a second wharf, proxy "wharf-base", e.g. built from an older commit
	baseRev     string
	outDir      string
	conns       int
	hold        time.Duration
	rate        int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var o options
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.Var(&o.proxies, "proxy", "proxy under test, NAME=HOST:PORT,pid=PID (repeatable; run in this order)")
	backends := fs.String("backend-pids", "", "comma-separated PIDs of the backends, for their CPU time")
	concs := fs.String("conc", "64,512", "comma-separated wrk connection counts over plain HTTP; empty for none")
	fs.Var(&o.tlsProxies, "tls-proxy", "TLS listener of a proxy under test, NAME=HOST:PORT,pid=PID (repeatable), for --tls-conc and --handshake-conc")
	tlsConcs := fs.String("tls-conc", "", "comma-separated wrk connection counts over https, keep-alive")
	handshakeConcs := fs.String("handshake-conc", "", "comma-separated wrk connection counts over https with Connection: close (a full handshake per request)")
	fs.Var(&o.gzipProxies, "gzip-proxy", "listener of a proxy under test that compresses JSON at gzip level 1, NAME=HOST:PORT,pid=PID (repeatable), for --gzip-conc")
	gzipConcs := fs.String("gzip-conc", "", "comma-separated wrk connection counts fetching the 10 KiB JSON sample with Accept-Encoding: gzip")
	h2Concs := fs.String("h2-conc", "", "comma-separated h2load connection counts over https with HTTP/2 (ALPN h2), on the --tls-proxy listeners")
	fs.IntVar(&o.h2Streams, "h2-streams", h2StreamsDefault, "concurrent HTTP/2 streams per h2load connection (h2load -m)")
	fs.StringVar(&o.h2load, "h2load", "h2load", "h2load binary, for --h2-conc")
	fs.IntVar(&o.runs, "runs", 5, "measured runs per proxy and concurrency")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of one wrk run")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "length of the uncounted warm-up run")
	fs.DurationVar(&o.pause, "pause", time.Second, "pause between runs, for closed connections to settle; the host's load is sampled meanwhile")
	fs.Float64Var(&o.maxRest, "max-rest", 0.10, "a run in which more than this share of the host's busy CPU time was neither the proxy's, the backends' nor wrk's is disturbed")
	fs.IntVar(&o.repeats, "repeat-disturbed", 1, "how many times a disturbed run is repeated before it is kept anyway")
	fs.DurationVar(&o.idleWait, "idle-wait", 15*time.Second, "before a run, wait at most this long for the host to be idle (other load skews the figures)")
	fs.StringVar(&o.baseline, "baseline", "nginx", "proxy the ratios are relative to")
	fs.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	fs.StringVar(&o.wharfBin, "wharf-bin", "bin/wharf", "wharf binary, for its version")
	fs.StringVar(&o.wharfRev, "wharf-rev", "", "source revision wharf was built from, for the report")
	fs.StringVar(&o.baseBin, "wharf-base-bin", "", "binary of the proxy named wharf-base (a second wharf), for its version")
	fs.StringVar(&o.baseRev, "wharf-base-rev", "", "what wharf-base was built from, for the report")
	fs.StringVar(&o.outDir, "out", "bench/results", "directory for the raw JSON and Markdown results")
	fs.IntVar(&o.conns, "conns", 0, "idle-connection mode: hold this many keep-alive connections to each proxy (0: throughput mode)")
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "idle-connection mode: how long to hold the connections")
	fs.IntVar(&o.rate, "rate", 200, "idle-connection mode: requests per second spread over random held connections")
	quick := fs.Bool("quick", false, "smoke test: 1 run of 2s, 1s warm-up, 5s hold, no waiting for an idle host, no repeats")
	freePorts := fs.Int("free-ports", 0, "print this many free TCP ports on 127.0.0.1 below the ephemeral range and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *freePorts > 0 {
		ports, err := findFreePorts(*freePorts)
		if err != nil {
			return err
		}
		for _, p := range ports {
			fmt.Println(p)
		}
		return nil
	}
	if *quick {
		o.runs, o.duration, o.warmup, o.hold = 1, 2*time.Second, time.Second, 5*time.Second
		o.idleWait, o.repeats = 0, 0
	}
	var err error
	if o.backendPIDs, err = parseInts(*backends); err != nil {
		return fmt.Errorf("--backend-pids: %w", err)
	}
	for _, l := range []struct {
		flag, list, kind string
	}{{"--conc", *concs, loadHTTP}, {"--tls-conc", *tlsConcs, loadTLS}, {"--handshake-conc", *handshakeConcs, loadHandshake}, {"--gzip-conc", *gzipConcs, loadGzip}, {"--h2-conc", *h2Concs, loadH2}} {
		cs, err := parseInts(l.list)
		if err != nil {
			return fmt.Errorf("%s: bad list %q", l.flag, l.list)
		}
		if l.kind == loadHTTP {
			o.concs = cs
		}
		for _, c := range cs {
			o.loads = append(o.loads, load{l.kind, c})
		}
	}
	if len(o.proxies) == 0 {
		return errors.New("no --proxy given")
	}
	if len(o.loads) == 0 && o.conns == 0 {
		return errors.New("no load: give --conc, --tls-conc, --handshake-conc, --gzip-conc or --h2-conc")
	}
	for _, l := range o.loads {
		if len(o.proxiesFor(l)) > 0 {
			continue
		}
		if l.Kind == loadGzip {
			return errors.New("--gzip-conc needs --gzip-proxy")
		}
		return errors.New("--tls-conc, --handshake-conc and --h2-conc need --tls-proxy")
	}
	if o.runs < 1 {
		return errors.New("--runs must be at least 1")
	}
	if o.h2Streams < 1 {
		return errors.New("--h2-streams must be at least 1")
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	for _, p := range o.proxies {
		if err := checkProxy(ctx, p, "http"); err != nil {
			return err
		}
	}
	for _, p := range o.tlsProxies {
		if err := checkProxy(ctx, p, "https"); err != nil {
			return err
		}
		if o.hasLoad(loadH2) {
			if err := checkProxy(ctx, p, "h2"); err != nil {
				return err
			}
		}
	}
	for _, p := range o.gzipProxies {
		if err := checkGzip(ctx, p); err != nil {
			return err
		}
	}
	if o.conns > 0 {
		return connsMode(ctx, o)
	}
	return throughputMode(ctx, o)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// findFreePorts returns n distinct ports that 127.0.0.1 can listen on,
// chosen below the kernel's ephemeral range so that none of the many client
// connections of a run can be holding one when a proxy is restarted.
func findFreePorts(n int) ([]int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	const first = 10000
	if low-first < 100 {
		return nil, fmt.Errorf("ephemeral range starts at %d: no room below it", low)
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		p := first + rand.Intn(low-first)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		ports = append(ports, p)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("found only %d free ports", len(ports))
	}
	return ports, nil
}

// checkProxy sends a few requests through p and checks that the answers are
// webtest's and that every backend is reached. Scheme "h2" is https with
// HTTP/2 offered by ALPN, and every answer must have come over HTTP/2.
func checkProxy(ctx context.Context, p target, scheme string) error {
	tr := &http.Transport{Proxy: nil,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the kit's own self-signed certificate
	proto := 1
	if scheme == "h2" {
		scheme, proto = "https", 2
		tr.ForceAttemptHTTP2 = true // with a TLSClientConfig of its own, the Transport offers h2 only when told
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	defer c.CloseIdleConnections()
	seen := map[string]int{}
	for i := 0; i < 12; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+p.Addr+requestPath, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		if resp.ProtoMajor != proto {
			return fmt.Errorf("%s: answered over %s, not HTTP/%d", p.Name, resp.Proto, proto)
		}
		var v struct {
			IsSuccess bool
			Server    string
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil || !v.IsSuccess {
			return fmt.Errorf("%s: unexpected answer %s: %.200s", p.Name, resp.Status, body)
		}
		seen[v.Server]++
	}
	var names []string
	for s := range seen {
		names = append(names, s)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "%s at %s://%s answers over HTTP/%d; backends reached: %s\n", p.Name, scheme, p.Addr, proto, strings.Join(names, ", "))
	return nil
}

// hasLoad reports whether a load of kind is to be run.
func (o options) hasLoad(kind string) bool {
	for _, l := range o.loads {
		if l.Kind == kind {
			return true
		}
	}
	return false
}

// proxiesFor are the listeners a load is sent to.
func (o options) proxiesFor(l load) targetList {
	switch l.Kind {
	case loadHTTP:
		return o.proxies
	case loadGzip:
		return o.gzipProxies
	}
	return o.tlsProxies
}

// runRecord is one wrk run with the CPU time spent around it.
type runRecord struct {
	Proxy  string `json:"proxy"`
	Load   string `json:"load"` // http, https, handshake, gzip or h2
	Conc   int    `json:"concurrency"`
	Round  int    `json:"round"` // 0 for the warm-up
	Warmup bool   `json:"warmup"`
	// Discarded runs were disturbed by other load and repeated.
	Discarded bool      `json:"discarded,omitempty"`
	Start     time.Time `json:"start"`
	// BusyBefore is the host's load (CPUs busy) just before the run.
	BusyBefore  float64   `json:"host_busy_cpus_before"`
	WallSeconds float64   `json:"wall_seconds"`
	Wrk         wrkResult `json:"wrk"`
	ProxyPIDs   []int     `json:"proxy_pids"`
	// CPU seconds (user+system) spent during the run.
	ProxyCPU   float64 `json:"proxy_cpu_seconds"`
	BackendCPU float64 `json:"backend_cpu_seconds"`
	HostBusy   float64 `json:"host_busy_cpu_seconds"`
	HostSteal  float64 `json:"host_steal_cpu_seconds"`
	// Microseconds of CPU per completed request.
	ProxyUSPerReq   float64 `json:"proxy_cpu_us_per_request"`
	BackendUSPerReq float64 `json:"backend_cpu_us_per_request"`
	WrkUSPerReq     float64 `json:"wrk_cpu_us_per_request"`
	HostUSPerReq    float64 `json:"host_cpu_us_per_request"`
	// RestUSPerReq is the host's busy time not accounted to the proxy, the
	// backends or wrk: other processes, and kernel time (softirq) that the
	// kernel does not charge to any process.
	RestUSPerReq float64 `json:"rest_cpu_us_per_request"`
}

type throughputReport struct {
	Meta    meta        `json:"meta"`
	Proxies []target    `json:"proxies"`
	Runs    []runRecord `json:"runs"`
	Summary []summary   `json:"summary"`
}

func throughputMode(ctx context.Context, o options) error {
	m := collectMeta(o)
	m.Settings = map[string]string{
		"runs":         strconv.Itoa(o.runs),
		"duration":     o.duration.String(),
		"warmup":       o.warmup.String(),
		"loads":        fmt.Sprint(o.loads),
		"wrk":          "-t1 --latency",
		"h2load":       fmt.Sprintf("-t1 -m%d (HTTP/2 load)", o.h2Streams),
		"url_path":     requestPath + " (gzip load: " + gzipPath + ")",
		"interleaving": "per round, proxies in the order given",
	}
	rep := throughputReport{Meta: m, Proxies: o.proxies}
	total := 0
	for _, l := range o.loads {
		total += len(o.proxiesFor(l)) * (o.runs + 1)
	}
	n := 0
	for _, l := range o.loads {
		c := l.Conc
		for round := 0; round <= o.runs; round++ {
			for _, p := range o.proxiesFor(l) {
				n++
				d := o.duration
				if round == 0 {
					d = o.warmup
				}
				label := fmt.Sprintf("run %d", round)
				if round == 0 {
					label = "warm-up"
				}
				for attempt := 0; ; attempt++ {
					busy, err := waitIdle(ctx, o.pause, o.idleWait)
					if err != nil {
						return err
					}
					r, err := measureRun(ctx, o, p, l, d)
					r.BusyBefore = busy
					if err != nil {
						return fmt.Errorf("%s %s c=%d round %d: %w", p.Name, l.Kind, c, round, err)
					}
					r.Round, r.Warmup = round, round == 0
					fmt.Fprintf(os.Stderr, "[%d/%d] %-9s c=%d %-8s %-7s %6.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  CPU µs/req: proxy %5.1f  backends %5.1f  rest of host %5.1f\n",
						n, total, l.Kind, c, p.Name, label, r.Wrk.ReqPerSec, r.Wrk.P50ms, r.Wrk.P99ms, r.Wrk.Errors(),
						r.ProxyUSPerReq, r.BackendUSPerReq, r.RestUSPerReq)
					if w := r.Wrk; w.H2Failed > 0 {
						fmt.Fprintf(os.Stderr, "        h2load: %d of %d requests failed (%d errored, %d timed out; status 4xx %d, 5xx %d)\n",
							w.H2Failed, w.Requests, w.H2Errored, w.H2Timeout, w.H2Status4xx, w.H2Status5xx)
					}
					share := r.RestUSPerReq / r.HostUSPerReq
					if r.Wrk.Requests == 0 {
						share = 1
					}
					if !r.Warmup && share > o.maxRest && attempt < o.repeats {
						// Something else ran during the run: repeat it, and
						// keep the disturbed one in the JSON, marked.
						r.Discarded = true
						rep.Runs = append(rep.Runs, r)
						fmt.Fprintf(os.Stderr, "        disturbed: %.0f%% of the busy CPU time was not the kit's; repeating the run\n", share*100)
						continue
					}
					if r.Wrk.Requests == 0 {
						return fmt.Errorf("%s %s c=%d round %d: wrk completed no request", p.Name, l.Kind, c, round)
					}
					rep.Runs = append(rep.Runs, r)
					break
				}
			}
		}
	}
	rep.Summary = summarize(rep.Runs, o)
	md := throughputMarkdown(rep, o)
	fmt.Print(md)
	return writeResults(o.outDir, "throughput", rep, md)
}

// idleBusy is the load (CPUs busy) under which the host counts as idle: the
// idle proxies and backends use next to nothing.
const idleBusy = 0.15

// waitIdle samples the host's load over pause, and keeps sampling for at
// most maxWait more while it is above idleBusy. It returns the last load.
func waitIdle(ctx context.Context, pause, maxWait time.Duration) (float64, error) {
	if pause <= 0 {
		pause = 500 * time.Millisecond
	}
	deadline := time.Now().Add(pause + maxWait)
	warned := false
	for {
		h0, err := readHostCPU()
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := sleep(ctx, pause); err != nil {
			return 0, err
		}
		h1, err := readHostCPU()
		if err != nil {
			return 0, err
		}
		busy := (h1.busy - h0.busy) / time.Since(t0).Seconds()
		if busy < idleBusy || time.Now().After(deadline) {
			if busy >= idleBusy {
				fmt.Fprintf(os.Stderr, "warning: host still busy (%.2f CPUs) after waiting %s; running anyway\n", busy, maxWait)
			}
			return busy, nil
		}
		if !warned {
			fmt.Fprintf(os.Stderr, "host busy (%.2f CPUs): waiting up to %s for it to be idle\n", busy, maxWait)
			warned = true
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// measureRun runs wrk once against p and accounts the CPU time around it.
func measureRun(ctx context.Context, o options, p target, l load, d time.Duration) (runRecord, error) {
	r := runRecord{Proxy: p.Name, Load: l.Kind, Conc: l.Conc}
	pids, err := processTree(p.PID)
	if err != nil {
		return r, err
	}
	r.ProxyPIDs = pids
	p0, err := cpuSeconds(pids)
	if err != nil {
		return r, err
	}
	b0, err := cpuSeconds(o.backendPIDs)
	if err != nil {
		return r, err
	}
	h0, err := readHostCPU()
	if err != nil {
		return r, err
	}
	r.Start = time.Now()
	var w wrkResult
	var out string
	if l.Kind == loadH2 {
		w, out, err = runH2load(ctx, o.h2load, "", l.url(p.Addr), l.Conc, o.h2Streams, d)
	} else {
		w, out, err = runWrk(ctx, o.wrk, l.url(p.Addr), l.Conc, d, l.wrkArgs()...)
	}
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, out)
	}
	// Let the proxy finish closing wrk's connections: that work is part of
	// the run.
	time.Sleep(100 * time.Millisecond)
	r.WallSeconds = time.Since(r.Start).Seconds()
	p1, err := cpuSeconds(pids)
	if err != nil {
		return r, fmt.Errorf("a proxy process went away during the run: %w", err)
	}
	b1, err := cpuSeconds(o.backendPIDs)
	if err != nil {
		return r, fmt.Errorf("a backend went away during the run: %w", err)
	}
	h1, err := readHostCPU()
	if err != nil {
		return r, err
	}
	if now, err := processTree(p.PID); err == nil && fmt.Sprint(now) != fmt.Sprint(pids) {
		return r, fmt.Errorf("the processes of %s changed during the run: %v, then %v", p.Name, pids, now)
	}
	r.Wrk = w
	r.ProxyCPU, r.BackendCPU = p1-p0, b1-b0
	r.HostBusy, r.HostSteal = h1.busy-h0.busy, h1.steal-h0.steal
	if w.Requests > 0 {
		n := float64(w.Requests)
		r.ProxyUSPerReq = r.ProxyCPU * 1e6 / n
		r.BackendUSPerReq = r.BackendCPU * 1e6 / n
		r.WrkUSPerReq = w.CPUSeconds * 1e6 / n
		r.HostUSPerReq = r.HostBusy * 1e6 / n
		r.RestUSPerReq = r.HostUSPerReq - r.ProxyUSPerReq - r.BackendUSPerReq - r.WrkUSPerReq
	}
	return r, nil
}

// writeResults saves the raw JSON and the Markdown under dir.
func writeResults(dir, kind string, v any, md string) error {
	stamp := time.Now().UTC().Format("20060102-150405")
	base := filepath.Join(dir, kind+"-"+stamp)
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "raw results: %s.json, table: %s.md\n", base, base)
	return nil
}

// meta describes when, where and with what a benchmark ran.
type meta struct {
	Date     string            `json:"date"`
	Machine  map[string]string `json:"machine"`
	Versions map[string]string `json:"versions"`
	Settings map[string]string `json:"settings"`
	// HostBusyBefore is how many CPUs were busy, over 2 s, before the
	// benchmark started: anything else running skews every figure.
	HostBusyBefore float64 `json:"host_busy_cpus_before"`
}

func collectMeta(o options) meta {
	m := meta{
		Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		Machine: map[string]string{
			"nproc":   firstLine(commandOutput("nproc")),
			"cpu":     cpuModel(),
			"kernel":  kernelRelease(),
			"goarch":  runtime.GOARCH,
			"clk_tck": strconv.Itoa(int(clockTicks)),
		},
		Versions: map[string]string{},
	}
	if h0, err := readHostCPU(); err == nil {
		time.Sleep(2 * time.Second)
		if h1, err := readHostCPU(); err == nil {
			m.HostBusyBefore = (h1.busy - h0.busy) / 2
		}
	}
	if m.HostBusyBefore > 0.1 {
		fmt.Fprintf(os.Stderr, "warning: the host is not idle (%.2f CPUs busy before the start); other load skews the figures\n", m.HostBusyBefore)
	}
	if m.Machine["nproc"] == "" {
		m.Machine["nproc"] = strconv.Itoa(runtime.NumCPU())
	}
	for _, p := range o.proxies {
		switch p.Name {
		case "nginx":
			m.Versions["nginx"] = firstLine(commandOutput("nginx", "-v"))
		case "haproxy":
			m.Versions["haproxy"] = firstLine(commandOutput("haproxy", "-v"))
		case "wharf":
			m.Versions["wharf"] = firstLine(commandOutput(o.wharfBin, "version"))
			if o.wharfRev != "" {
				m.Versions["wharf"] += " (" + o.wharfRev + ")"
			}
		case "wharf-base":
			if o.baseBin == "" {
				break
			}
			m.Versions["wharf-base"] = "wharf-base: " + firstLine(commandOutput(o.baseBin, "version"))
			if o.baseRev != "" {
				m.Versions["wharf-base"] += " (" + o.baseRev + ")"
			}
		}
	}
	m.Versions["wrk"] = firstLine(commandOutput(o.wrk, "-v"))
	if o.hasLoad(loadH2) {
		m.Versions["h2load"] = firstLine(commandOutput(o.h2load, "--version"))
	}
	m.Versions["go"] = firstLine(commandOutput("go", "version"))
	return m
}
