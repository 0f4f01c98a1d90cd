package proxy

import (
	"bufio"
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/wharflb/wharf/lb"
)

// rawBackend answers every request on a keep-alive connection with a fixed
// webtest-sized answer, allocating nothing, so that a benchmark measures the
// proxy.
func rawBackend(b testing.TB) lb.Backend {
	b.Helper()
	body := `{"IsSuccess":true,"Data":"0f8fad5b-d9cb-469f-a165-70867728950e","RequestTime":"2026-11-24 18:00:00.123","ResponseTime":"2026-11-24 18:00:00.124","Server":"webtest001"}` + "\n"
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return rawPeer(b, "raw", func(c net.Conn) {
		buf := make([]byte, 8192)
		have := 0
		for {
			n, err := c.Read(buf[have:])
			if err != nil {
				return
			}
			have += n
			// Requests here have no body: each ends at CRLFCRLF.
			for {
				i := bytes.Index(buf[:have], []byte("\r\n\r\n"))
				if i < 0 {
					break
				}
				if _, err := c.Write(answer); err != nil {
					return
				}
				have = copy(buf, buf[i+4:have])
			}
		}
	})
}

// rawPeer is a peer on 127.0.0.1 that serves each connection with serve
// on a goroutine of its own, and closes it after.
func rawPeer(tb testing.TB, name string, serve func(c net.Conn)) lb.Backend {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return lb.Backend{ID: name, Name: name, Network: "tcp", Addr: ln.Addr().String(), Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second}
}

// keepAliveClient dials url and returns a function that sends one request
// on the connection and reads the answer, allocating nothing.
func keepAliveClient(tb testing.TB, url string) func() {
	return keepAliveClientWith(tb, url, "")
}

// keepAliveClientWith is keepAliveClient with extra field lines (each
// ending in CRLF) in the request; it reads answers framed by length or by
// chunks.
func keepAliveClientWith(tb testing.TB, url, fields string) func() {
	c, err := dialProxy(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	req := []byte("GET /webtest?action=get_uuid HTTP/1.1\r\nHost: localhost:10000\r\nUser-Agent: bench\r\n" + fields + "\r\n")
	br := bufio.NewReaderSize(c, 16<<10)
	line := func() []byte {
		l, err := br.ReadSlice('\n')
		if err != nil {
			tb.Fatal(err)
		}
		return l
	}
	return func() {
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		// Read the head, then the body by Content-Length or by chunks.
		cl, chunked := -1, false
		for {
			l := line()
			if len(l) == 2 {
				break
			}
			if bytes.HasPrefix(l, []byte("Content-Length: ")) {
				cl, _ = strconv.Atoi(string(bytes.TrimSpace(l[16:])))
			}
			chunked = chunked || bytes.Equal(l, []byte("Transfer-Encoding: chunked\r\n"))
		}
		if !chunked {
			if _, err := br.Discard(cl); err != nil {
				tb.Fatal(err)
			}
			return
		}
		for {
			size := 0
			for _, b := range bytes.TrimSpace(line()) {
				size = size<<4 | int(unhexDigit(b))
			}
			if _, err := br.Discard(size + 2); err != nil {
				tb.Fatal(err)
			}
			if size == 0 {
				return
			}
		}
	}
}

func unhexDigit(b byte) byte {
	switch {
	case b >= 'a':
		return b - 'a' + 10
	case b >= 'A':
		return b - 'A' + 10
	}
	return b - '0'
}

// BenchmarkProxyPath is one keep-alive client sending requests one after
// the other through each engine: ns/op is the round trip, allocs/op the
// whole process's allocations per request (client and backend allocate
// nothing).
func BenchmarkProxyPath(b *testing.B) {
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			url, _ := e.start(b, Config{}, rawBackend(b))
			roundTrip := keepAliveClient(b, url)
			for i := 0; i < 100; i++ {
				roundTrip() // warm the pools
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				roundTrip()
			}
		})
	}
	b.Run("fast/gzip", func(b *testing.B) {
		url, _ := newFastProxy(b, gzipOn, rawBackend(b))
		roundTrip := keepAliveClientWith(b, url, "Accept-Encoding: gzip\r\n")
		for i := 0; i < 100; i++ {
			roundTrip()
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			roundTrip()
		}
	})
}

// The fast path allocates nothing per request in the steady state: the
// whole process's allocations are counted, and the client and the backend
// allocate nothing.
func TestFastPathAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates, and sync.Pool drops items at random under it")
	}
	// A trusted client costs the walk of its X-Forwarded-For too.
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	// Over TLS, crypto/tls allocates one small reader each time it reads
	// a record from the network (readFromUntil's atLeastReader, 24 bytes,
	// which escapes through io.Reader): one per request in the proxy, and
	// one in the test's client. wharf's own code adds none.
	const tlsRecordReads = 2
	for _, start := range fastStarts {
		want := 0.0
		if start.name == "tls" {
			want = tlsRecordReads
		}
		for _, cfg := range []Config{{}, {TrustedProxies: trusted}} {
			url, _, _ := start.start(t, cfg, fastHooks{}, rawBackend(t))
			roundTrip := keepAliveClient(t, url)
			for i := 0; i < 100; i++ {
				roundTrip() // warm the pools
			}
			if n := testing.AllocsPerRun(2000, roundTrip); n > want {
				t.Fatalf("%s, trusted proxies %v: %v allocations per request, want %v", start.name, cfg.TrustedProxies, n, want)
			}
		}
	}
	// Compressing takes a pooled compressor, and the compressed answer
	// goes out chunked.
	url, _ := newFastProxy(t, gzipOn, rawBackend(t))
	if res, _ := fetch(t, "GET", url+"/", "gzip"); res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatal("the answer was not compressed")
	}
	roundTrip := keepAliveClientWith(t, url, "Accept-Encoding: gzip\r\n")
	for i := 0; i < 100; i++ {
		roundTrip()
	}
	if n := testing.AllocsPerRun(2000, roundTrip); n != 0 {
		t.Fatalf("gzip: %v allocations per request, want 0", n)
	}
}
