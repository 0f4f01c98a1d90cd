package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reported, or for the HTTP/2 load one
// h2load run (its latencies from its per-request log, its failures in the
// H2 fields).
type wrkResult struct {
	Requests    int64   `json:"requests"`
	Seconds     float64 `json:"seconds"`
	ReqPerSec   float64 `json:"req_per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P75ms       float64 `json:"p75_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	ConnectErrs int64   `json:"connect_errors"`
	ReadErrs    int64   `json:"read_errors"`
	WriteErrs   int64   `json:"write_errors"`
	TimeoutErrs int64   `json:"timeout_errors"`
	Non2xx      int64   `json:"non_2xx_3xx"`
	// h2load's counts: the requests that succeeded (2xx or 3xx), and those
	// that failed in any way, the errored (a stream or connection error),
	// the timed-out and the answers with another status included.
	H2Succeeded int64 `json:"h2_succeeded,omitempty"`
	H2Failed    int64 `json:"h2_failed,omitempty"`
	H2Errored   int64 `json:"h2_errored,omitempty"`
	H2Timeout   int64 `json:"h2_timeout,omitempty"`
	H2Status4xx int64 `json:"h2_status_4xx,omitempty"`
	H2Status5xx int64 `json:"h2_status_5xx,omitempty"`
	// Protocol is what h2load negotiated by ALPN (always h2 when kept).
	Protocol string `json:"protocol,omitempty"`
	// CPUSeconds is wrk's (or h2load's) own user+system time.
	CPUSeconds float64 `json:"cpu_seconds"`
}

// Errors is every failed request or connection wrk counted, or every
// request h2load counted as failed.
func (r wrkResult) Errors() int64 {
	return r.ConnectErrs + r.ReadErrs + r.WriteErrs + r.TimeoutErrs + r.Non2xx + r.H2Failed
}

var (
	reRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),`)
	reRate     = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	rePct      = regexp.MustCompile(`(?m)^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$`)
	reSockErrs = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
)

// unitMS converts a wrk time (value and unit) to milliseconds.
func unitMS(v float64, unit string) float64 {
	switch unit {
	case "us":
		return v / 1000
	case "ms":
		return v
	case "s":
		return v * 1000
	case "m":
		return v * 60e3
	case "h":
		return v * 3600e3
	}
	return v
}

// parseWrk reads the text wrk --latency prints.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := reRequests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no \"requests in\" line in wrk output")
	}
	r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	d, _ := strconv.ParseFloat(m[2], 64)
	r.Seconds = unitMS(d, m[3]) / 1000
	m = reRate.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec line in wrk output")
	}
	r.ReqPerSec, _ = strconv.ParseFloat(m[1], 64)
	found := 0
	for _, m := range rePct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		ms := unitMS(v, m[3])
		switch m[1] {
		case "50":
			r.P50ms = ms
		case "75":
			r.P75ms = ms
		case "90":
			r.P90ms = ms
		case "99":
			r.P99ms = ms
		}
		found++
	}
	if found < 4 {
		return r, fmt.Errorf("latency distribution missing in wrk output (run with --latency)")
	}
	if m := reSockErrs.FindStringSubmatch(out); m != nil {
		r.ConnectErrs, _ = strconv.ParseInt(m[1], 10, 64)
		r.ReadErrs, _ = strconv.ParseInt(m[2], 10, 64)
		r.WriteErrs, _ = strconv.ParseInt(m[3], 10, 64)
		r.TimeoutErrs, _ = strconv.ParseInt(m[4], 10, 64)
	}
	if m := reNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// runWrk runs wrk with one thread and conns connections for d against
// url, with the extra options args.
func runWrk(ctx context.Context, wrk, url string, conns int, d time.Duration, args ...string) (wrkResult, string, error) {
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	args = append([]string{"-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(secs) + "s", "--latency"}, args...)
	cmd := exec.CommandContext(ctx, wrk, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String()
	if err != nil {
		return wrkResult{}, out, fmt.Errorf("wrk: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	r, err := parseWrk(out)
	if err != nil {
		return r, out, err
	}
	r.CPUSeconds = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return r, out, nil
}
