package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The HTTP/2 load: h2load over TLS, the protocol chosen by ALPN, with
// h2StreamsDefault concurrent streams on each connection.
const h2StreamsDefault = 8

var (
	reH2Finished = regexp.MustCompile(`(?m)^finished in ([\d.]+)(us|ms|s|m|h), ([\d.]+) req/s`)
	reH2Requests = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	reH2Status   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	reH2Proto    = regexp.MustCompile(`(?m)^Application protocol: (\S+)`)
)

// parseH2load reads the text h2load prints at the end of a timed run. Its
// exit status is 0 even when every request failed, so the counts are the
// only record of failures: a run without them is an error, not a clean run.
// Requests are the ones done (answered or failed); Errors counts h2load's
// "failed", which includes the errored, the timed-out and the answers
// other than 2xx or 3xx.
func parseH2load(out string) (wrkResult, error) {
	var r wrkResult
	m := reH2Requests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no \"requests:\" line in h2load output")
	}
	n := make([]int64, 7)
	for i := range n {
		n[i], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	r.Requests, r.H2Succeeded, r.H2Failed, r.H2Errored, r.H2Timeout = n[2], n[3], n[4], n[5], n[6]
	if m := reH2Status.FindStringSubmatch(out); m != nil {
		r.H2Status4xx, _ = strconv.ParseInt(m[3], 10, 64)
		r.H2Status5xx, _ = strconv.ParseInt(m[4], 10, 64)
	}
	m = reH2Finished.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no \"finished in\" line in h2load output")
	}
	d, _ := strconv.ParseFloat(m[1], 64)
	r.Seconds = unitMS(d, m[2]) / 1000
	r.ReqPerSec, _ = strconv.ParseFloat(m[3], 64)
	// Without ALPN's h2 h2load falls back to HTTP/1.1 and would measure
	// that instead, with the same output.
	m = reH2Proto.FindStringSubmatch(out)
	if m == nil {
		if r.Requests == 0 {
			return r, fmt.Errorf("h2load made no connection (no protocol negotiated, no request done)")
		}
		return r, fmt.Errorf("no \"Application protocol\" line in h2load output")
	}
	r.Protocol = m[1]
	if r.Protocol != "h2" {
		return r, fmt.Errorf("h2load negotiated %q, not h2", r.Protocol)
	}
	return r, nil
}

// h2LogLatencies reads h2load's --log-file: one row per request, tab
// separated: start time (µs since the epoch), status (-1 for a failed
// stream), µs until the end of the answer. It returns the latencies in ms,
// sorted.
func h2LogLatencies(rd io.Reader) ([]float64, error) {
	var ms []float64
	sc := bufio.NewScanner(rd)
	for line := 1; sc.Scan(); line++ {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 3 {
			return nil, fmt.Errorf("h2load log line %d: %q: want 3 columns", line, sc.Text())
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || us < 0 {
			return nil, fmt.Errorf("h2load log line %d: bad duration %q", line, f[2])
		}
		ms = append(ms, float64(us)/1000)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Float64s(ms)
	return ms, nil
}

// percentile is the nearest-rank percentile p (0–100) of sorted xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

// runH2load runs h2load with one thread, conns connections of streams
// concurrent streams each, for d against url, and takes the latency
// percentiles from its per-request log in dir.
func runH2load(ctx context.Context, h2load, dir, url string, conns, streams int, d time.Duration) (wrkResult, string, error) {
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	logf, err := os.CreateTemp(dir, "h2load-*.log")
	if err != nil {
		return wrkResult{}, "", err
	}
	logPath := logf.Name()
	logf.Close()
	defer os.Remove(logPath)
	args := []string{"-t1", "-c" + strconv.Itoa(conns), "-m" + strconv.Itoa(streams), "-D", strconv.Itoa(secs),
		"--log-file=" + logPath, url}
	cmd := exec.CommandContext(ctx, h2load, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	out := stdout.String()
	if err != nil {
		return wrkResult{}, out, fmt.Errorf("h2load: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	r, err := parseH2load(out)
	if err != nil {
		return r, out + stderr.String(), err
	}
	r.CPUSeconds = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	f, err := os.Open(logPath)
	if err != nil {
		return r, out, err
	}
	defer f.Close()
	lat, err := h2LogLatencies(f)
	if err != nil {
		return r, out, err
	}
	if len(lat) == 0 && r.Requests > 0 {
		return r, out, fmt.Errorf("h2load logged none of its %d requests in %s", r.Requests, filepath.Base(logPath))
	}
	r.P50ms, r.P75ms, r.P90ms, r.P99ms = percentile(lat, 50), percentile(lat, 75), percentile(lat, 90), percentile(lat, 99)
	return r, out, nil
}
