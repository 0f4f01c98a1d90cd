package main

import (
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// sampleJSON is a webtest-like answer of exactly n bytes.
func sampleJSON(n int) string {
	const head, tail = `{"IsSuccess":true,"Pad":"`, `"}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// sampleServer answers the sample, compressed or not, of size bytes.
func sampleServer(t *testing.T, compress bool, size int) target {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RequestURI() != gzipPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !compress || !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Write([]byte(sampleJSON(size)))
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		zw.Write([]byte(sampleJSON(size)))
		zw.Close()
	}))
	t.Cleanup(srv.Close)
	return target{Name: "test", Addr: srv.Listener.Addr().String(), PID: 1}
}

func TestCheckGzipAcceptsACompressedSample(t *testing.T) {
	if err := checkGzip(context.Background(), sampleServer(t, true, gzipSampleSize)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckGzipRefusesAnUncompressedSample(t *testing.T) {
	err := checkGzip(context.Background(), sampleServer(t, false, gzipSampleSize))
	if err == nil || !strings.Contains(err.Error(), "does not compress") {
		t.Fatalf("got %v, want an error saying the proxy does not compress", err)
	}
}

func TestCheckGzipRefusesAnotherDocument(t *testing.T) {
	err := checkGzip(context.Background(), sampleServer(t, true, 2048))
	if err == nil || !strings.Contains(err.Error(), "decompresses to 2048 bytes") {
		t.Fatalf("got %v, want an error naming the size", err)
	}
}

func TestGzipLoadAsksForTheSampleCompressed(t *testing.T) {
	l := load{loadGzip, 64}
	if got := l.url("127.0.0.1:80"); got != "http://127.0.0.1:80/webtest?action=sample&size=10240" {
		t.Errorf("url = %q", got)
	}
	if got := l.wrkArgs(); !reflect.DeepEqual(got, []string{"-H", "Accept-Encoding: gzip"}) {
		t.Errorf("wrkArgs = %q", got)
	}
	// The plain load sends no Accept-Encoding, so that proxies compressing
	// on the same listener would not compress its answers.
	for _, kind := range []string{loadHTTP, loadTLS, loadHandshake} {
		for _, a := range (load{kind, 64}).wrkArgs() {
			if strings.Contains(strings.ToLower(a), "accept-encoding") {
				t.Errorf("%s load sends %q", kind, a)
			}
		}
	}
}

func TestGzipLoadGoesToTheCompressingListeners(t *testing.T) {
	o := options{
		proxies:     targetList{{Name: "nginx", Addr: "127.0.0.1:1", PID: 1}},
		gzipProxies: targetList{{Name: "nginx", Addr: "127.0.0.1:2", PID: 1}},
	}
	if got := o.proxiesFor(load{loadGzip, 64}); len(got) != 1 || got[0].Addr != "127.0.0.1:2" {
		t.Fatalf("gzip load goes to %v", got)
	}
	if got := o.proxiesFor(load{loadHTTP, 64}); len(got) != 1 || got[0].Addr != "127.0.0.1:1" {
		t.Fatalf("http load goes to %v", got)
	}
}

func TestGzipConcNeedsGzipProxy(t *testing.T) {
	err := run(context.Background(), []string{"--proxy", "nginx=127.0.0.1:1,pid=1", "--conc", "", "--gzip-conc", "64", "--out", t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "--gzip-conc needs --gzip-proxy") {
		t.Fatalf("got %v", err)
	}
}

func TestGzipRowsCompareWithTheBaselinesGzipRow(t *testing.T) {
	o := options{
		baseline:    "nginx",
		loads:       []load{{loadHTTP, 64}, {loadGzip, 64}},
		proxies:     targetList{{Name: "wharf"}, {Name: "nginx"}},
		gzipProxies: targetList{{Name: "wharf"}, {Name: "nginx"}},
	}
	run := func(proxy, kind string, us float64) runRecord {
		return runRecord{Proxy: proxy, Load: kind, Conc: 64, Round: 1, ProxyUSPerReq: us, WallSeconds: 1, Wrk: wrkResult{ReqPerSec: 1000, P99ms: 1}}
	}
	sum := summarize([]runRecord{
		run("wharf", loadHTTP, 20), run("nginx", loadHTTP, 40),
		run("wharf", loadGzip, 60), run("nginx", loadGzip, 120),
	}, o)
	if len(sum) != 4 {
		t.Fatalf("%d rows, want 4", len(sum))
	}
	for _, s := range sum {
		want := 1.0
		if s.Proxy == "wharf" {
			want = 0.5
		}
		if s.CPURatio != want {
			t.Errorf("%s %s: CPU ratio %v, want %v", s.Proxy, s.Load, s.CPURatio, want)
		}
	}
	md := throughputMarkdown(throughputReport{Summary: sum}, o)
	if !strings.Contains(md, "| gzip, 10 KiB JSON | 64 | wharf |") || !strings.Contains(md, "Accept-Encoding: gzip") {
		t.Fatalf("the table has no gzip row or method:\n%s", md)
	}
}
