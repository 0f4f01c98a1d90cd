package main

import "testing"

const wrkSample = `Running 10s test @ http://127.0.0.1:20001/webtest?action=get_uuid
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.41ms  402.11us  12.30ms   87.12%
    Req/Sec    45.73k     1.20k   47.60k    80.00%
  Latency Distribution
     50%    1.35ms
     75%    1.55ms
     90%  850.00us
     99%     1.02s
  455123 requests in 10.00s, 110.50MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:  45508.12
Transfer/sec:     11.05MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{
		Requests: 455123, Seconds: 10, ReqPerSec: 45508.12,
		P50ms: 1.35, P75ms: 1.55, P90ms: 0.85, P99ms: 1020,
		ConnectErrs: 1, ReadErrs: 2, WriteErrs: 3, TimeoutErrs: 4, Non2xx: 5,
	}
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	if r.Errors() != 15 {
		t.Fatalf("Errors() = %d", r.Errors())
	}
}

func TestParseWrkNoErrors(t *testing.T) {
	out := "  1 threads and 8 connections\n  Latency Distribution\n     50%   10.00us\n     75%   20.00us\n     90%   30.00us\n     99%   40.00us\n  100 requests in 1.00s, 1.00KB read\nRequests/sec:    100.00\n"
	r, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors() != 0 || r.P99ms != 0.04 || r.Requests != 100 {
		t.Fatalf("got %+v", r)
	}
}

func TestParseWrkMissingLatency(t *testing.T) {
	if _, err := parseWrk("  100 requests in 1.00s, 1.00KB read\nRequests/sec: 100.00\n"); err == nil {
		t.Fatal("want an error without the latency distribution")
	}
}

func TestNewStat(t *testing.T) {
	s := newStat([]float64{5, 1, 3, 2, 4})
	if s != (stat{Median: 3, Min: 1, Max: 5}) {
		t.Fatalf("odd: %+v", s)
	}
	s = newStat([]float64{4, 1, 3, 2})
	if s != (stat{Median: 2.5, Min: 1, Max: 4}) {
		t.Fatalf("even: %+v", s)
	}
}
