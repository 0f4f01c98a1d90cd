package main

import (
	"strconv"
	"strings"
	"testing"
)

const h2loadSample = `starting benchmark...
spawning thread #0: 64 total client(s). Timing-based test with 0s of warm-up time and 8s of main duration for measurements.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 8.00s, 15230.50 req/s, 2.70MB/s
requests: 121844 total, 122356 started, 121844 done, 121800 succeeded, 44 failed, 30 errored, 10 timeout
status codes: 121802 2xx, 0 3xx, 1 4xx, 3 5xx
traffic: 21.58MB (22625412) total, 830.01KB (849932) headers (space savings 96.51%), 18.59MB (19495040) data
                     min         max         mean         sd        +/- sd
time for request:      183us     61.01ms      3.36ms      1.62ms    82.02%
`

func TestParseH2load(t *testing.T) {
	r, err := parseH2load(h2loadSample)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 121844, Seconds: 8, ReqPerSec: 15230.5,
		H2Succeeded: 121800, H2Failed: 44, H2Errored: 30, H2Timeout: 10, H2Status4xx: 1, H2Status5xx: 3, Protocol: "h2"}
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	// failed already holds the errored, the timed-out and the 4xx/5xx.
	if r.Errors() != 44 {
		t.Fatalf("Errors() = %d, want 44", r.Errors())
	}
}

// Every request answered 502: h2load exits 0, and only the counts say so.
func TestParseH2loadAllFailed(t *testing.T) {
	out := strings.NewReplacer(
		"121800 succeeded, 44 failed, 30 errored, 10 timeout", "0 succeeded, 121844 failed, 0 errored, 0 timeout",
		"121802 2xx, 0 3xx, 1 4xx, 3 5xx", "0 2xx, 0 3xx, 0 4xx, 121844 5xx").Replace(h2loadSample)
	r, err := parseH2load(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors() != r.Requests || r.H2Status5xx != 121844 {
		t.Fatalf("got %+v", r)
	}
}

func TestParseH2loadNotH2(t *testing.T) {
	out := strings.Replace(h2loadSample, "Application protocol: h2", "Application protocol: http/1.1", 1)
	if _, err := parseH2load(out); err == nil || !strings.Contains(err.Error(), "http/1.1") {
		t.Fatalf("want an error naming http/1.1, got %v", err)
	}
}

func TestParseH2loadNoConnection(t *testing.T) {
	out := "starting benchmark...\n\nfinished in 1.00s, 0.00 req/s, 0B/s\n" +
		"requests: 0 total, 0 started, 0 done, 0 succeeded, 0 failed, 0 errored, 0 timeout\n" +
		"status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx\n"
	if _, err := parseH2load(out); err == nil || !strings.Contains(err.Error(), "no connection") {
		t.Fatalf("want a no-connection error, got %v", err)
	}
}

func TestParseH2loadTruncated(t *testing.T) {
	for _, cut := range []string{"finished in", "requests:"} {
		out := h2loadSample[:strings.Index(h2loadSample, cut)]
		if _, err := parseH2load(out); err == nil {
			t.Fatalf("output cut before %q: want an error", cut)
		}
	}
}

func TestH2LogLatencies(t *testing.T) {
	var b strings.Builder
	// 100 rows, 1..100 ms, out of order, one failed stream.
	for i := 100; i >= 1; i-- {
		status := "200"
		if i == 50 {
			status = "-1"
		}
		b.WriteString("1796104308175910\t" + status + "\t" + strconv.Itoa(i*1000) + "\n")
	}
	lat, err := h2LogLatencies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 100 {
		t.Fatalf("%d latencies, want 100", len(lat))
	}
	for p, want := range map[float64]float64{50: 50, 75: 75, 90: 90, 99: 99, 100: 100} {
		if got := percentile(lat, p); got != want {
			t.Errorf("p%v = %v ms, want %v", p, got, want)
		}
	}
	if _, err := h2LogLatencies(strings.NewReader("1\t200\n")); err == nil {
		t.Fatal("want an error for a short row")
	}
	if _, err := h2LogLatencies(strings.NewReader("1\t200\tx\n")); err == nil {
		t.Fatal("want an error for a bad duration")
	}
}
