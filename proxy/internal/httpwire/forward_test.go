package httpwire

import (
	"net/netip"
	"testing"
)

func TestAppendRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		o    *RequestOptions
		want string
	}{
		{"as received", "GET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", nil,
			"GET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"},
		{"HTTP/1.0 client, bare LF, trimmed values", "GET /a HTTP/1.0\nUser-Agent:  x \nConnection: keep-alive\n\n", nil,
			"GET /a HTTP/1.1\r\nHost: \r\nUser-Agent: x\r\n\r\n"},
		{"hop-by-hop fields dropped", "GET / HTTP/1.1\r\nConnection: close, X-Private\r\nHost: a\r\nKeep-Alive: 5\r\nX-Private: 1\r\n" +
			"Proxy-Connection: x\r\nProxy-Authorization: y\r\nTE: gzip\r\nUpgrade: h2c\r\nCookie: c\r\n\r\n", nil,
			"GET / HTTP/1.1\r\nHost: a\r\nCookie: c\r\n\r\n"},
		{"length normalized and duplicates folded", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\nContent-Length: 007\r\n\r\n", nil,
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n"},
		{"zero length kept", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", nil,
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"},
		{"chunked keeps Trailer, TE: trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nTrailer: X-Sum\r\nTE: trailers, deflate\r\n\r\n", nil,
			"POST / HTTP/1.1\r\nHost: a\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n"},
		{"upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n", nil,
			"GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{"absolute-form host", "GET http://b.example/x HTTP/1.1\r\nHost: a\r\n\r\n", &RequestOptions{Target: []byte("/x")},
			"GET /x HTTP/1.1\r\nHost: b.example\r\n\r\n"},
		{"untrusted client: forwarded fields replaced", "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\nX-Forwarded-Host: evil\r\n" +
			"Forwarded: for=1.1.1.1\r\nX-Real-IP: 1.1.1.1\r\nTrue-Client-IP: 1.1.1.1\r\nAccept: */*\r\n\r\n",
			&RequestOptions{ClientIP: netip.MustParseAddr("10.0.0.9"), Host: []byte("backend:6969")},
			"GET / HTTP/1.1\r\nHost: backend:6969\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.9\r\nX-Real-IP: 10.0.0.9\r\nX-Forwarded-Host: a\r\nX-Forwarded-Proto: http\r\n\r\n"},
		{"untrusted over TLS, IPv6, listed XFF dropped", "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n",
			&RequestOptions{ClientIP: netip.MustParseAddr("2001:db8::1"), Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, TLS: true},
			"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 2001:db8::1\r\nX-Real-IP: 2001:db8::1\r\nX-Forwarded-Host: a\r\nX-Forwarded-Proto: https\r\n\r\n"},
		{"trusted client: chain kept, real IP recursive", "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-For: 2.2.2.2, 10.0.0.1\r\nX-Forwarded-Host: front\r\n" +
			"Forwarded: for=2.2.2.2\r\nX-Real-IP: 9.9.9.9\r\nTrue-Client-IP: 2.2.2.2\r\n\r\n",
			&RequestOptions{ClientIP: netip.MustParseAddr("10.0.0.9"), Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			"GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=2.2.2.2\r\nTrue-Client-IP: 2.2.2.2\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.1, 10.0.0.9\r\nX-Real-IP: 2.2.2.2\r\n" +
				"X-Forwarded-Proto: https\r\nX-Forwarded-Host: front\r\n\r\n"},
		{"trusted client: listed fields still sent, missing ones set", "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For, X-Real-IP, Forwarded\r\nX-Forwarded-For: 1.1.1.1\r\nForwarded: for=1.1.1.1\r\n\r\n",
			&RequestOptions{ClientIP: netip.MustParseAddr("10.0.0.9"), Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			"GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=1.1.1.1\r\nX-Forwarded-For: 1.1.1.1, 10.0.0.9\r\nX-Real-IP: 1.1.1.1\r\nX-Forwarded-Host: a\r\nX-Forwarded-Proto: http\r\n\r\n"},
		{"underscored names dropped", "GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.1.1.1\r\nX-Ok: 1\r\nx_real_ip: 1\r\n\r\n", nil,
			"GET / HTTP/1.1\r\nHost: a\r\nX-Ok: 1\r\n\r\n"},
		{"without ClientIP, X-Forwarded-* pass", "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n", &RequestOptions{},
			"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Parser
			var r Request
			if err := p.ParseRequest(&r, []byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			if got := string(AppendRequest([]byte("prefix"), &r, tt.o)); got != "prefix"+tt.want {
				t.Errorf("AppendRequest:\ngot  %q\nwant %q", got, "prefix"+tt.want)
			}
		})
	}
}

func TestRealIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct{ list, want string }{
		{"10.0.0.1", "10.0.0.1"},                                 // all trusted: the leftmost
		{"1.1.1.1", "1.1.1.1"},                                   // the connection itself is untrusted
		{"1.1.1.1, 2.2.2.2, 10.0.0.2, 10.0.0.1", "2.2.2.2"},      // first untrusted from the right
		{"1.1.1.1,,10.0.0.2 , 10.0.0.1", "1.1.1.1"},              // empty elements skipped
		{"1.1.1.1, junk, 10.0.0.2, 10.0.0.1", "10.0.0.2"},        // junk stops the walk
		{"1.1.1.1, 2.2.2.2:8080, 10.0.0.1", "2.2.2.2"},           // with a port
		{"1.1.1.1, [2001:db8::1]:80, fd00::1", "2001:db8::1"},    // IPv6 with a port
		{"::ffff:2.2.2.2, ::ffff:10.0.0.3, 10.0.0.1", "2.2.2.2"}, // IPv4-mapped
		{"fe80::1%eth0, 10.0.0.1", "10.0.0.1"},                   // zones refused
	}
	for _, tt := range tests {
		if got := RealIP([]byte(tt.list), trusted).String(); got != tt.want {
			t.Errorf("RealIP(%q) = %s, want %s", tt.list, got, tt.want)
		}
	}
}

func TestAppendResponse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		o    *ResponseOptions
		want string
	}{
		{"as received", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n", nil,
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n"},
		{"HTTP/1.0 upstream, hop-by-hop dropped", "HTTP/1.0 404 Not Found\nConnection: keep-alive, X-P\nKeep-Alive: 5\nX-P: 1\nContent-Length: 0\n\n", nil,
			"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"},
		{"chunked wins over length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n", nil,
			"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"unchunked for an HTTP/1.0 client", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n", &ResponseOptions{Unchunk: true, Close: true},
			"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"},
		{"keep-alive for an HTTP/1.0 client", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &ResponseOptions{KeepAlive: true},
			"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"},
		{"204 drops length", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", nil,
			"HTTP/1.1 204 No Content\r\n\r\n"},
		{"304 keeps length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\nETag: \"x\"\r\n\r\n", nil,
			"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 3\r\n\r\n"},
		{"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n", nil,
			"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{"no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", nil,
			"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"},
		// Gzip: the body goes compressed; Vary: it depends on Accept-Encoding.
		{"length to chunked, strong ETag weak, ranges dropped",
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"x\"\r\nAccept-Ranges: bytes\r\nContent-Length: 200\r\n\r\n", &ResponseOptions{Gzip: true, Vary: true},
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: W/\"x\"\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\nVary: Accept-Encoding\r\n\r\n"},
		{"weak ETag kept, malformed dropped",
			"HTTP/1.1 200 OK\r\nETag: W/\"x\"\r\nEtag: x\r\n\r\n", &ResponseOptions{Gzip: true},
			"HTTP/1.1 200 OK\r\nETag: W/\"x\"\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"},
		{"chunked with trailers: decoded, trailers dropped",
			"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n", &ResponseOptions{Gzip: true},
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"},
		{"HTTP/1.0 client: ends by closing",
			"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n", &ResponseOptions{Gzip: true, Unchunk: true, Close: true},
			"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n"},
		{"Vary listing it already",
			"HTTP/1.1 200 OK\r\nVary: Origin, Accept-Encoding\r\nContent-Length: 200\r\n\r\n", &ResponseOptions{Vary: true},
			"HTTP/1.1 200 OK\r\nVary: Origin, Accept-Encoding\r\nContent-Length: 200\r\n\r\n"},
		{"Vary *",
			"HTTP/1.1 200 OK\r\nVary: *\r\nContent-Length: 200\r\n\r\n", &ResponseOptions{Vary: true},
			"HTTP/1.1 200 OK\r\nVary: *\r\nContent-Length: 200\r\n\r\n"},
		{"Vary added to another",
			"HTTP/1.1 200 OK\r\nVary: Origin\r\nContent-Length: 200\r\n\r\n", &ResponseOptions{Vary: true},
			"HTTP/1.1 200 OK\r\nVary: Origin\r\nContent-Length: 200\r\nVary: Accept-Encoding\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Parser
			var r Response
			if err := p.ParseResponse(&r, []byte(tt.in), false); err != nil {
				t.Fatal(err)
			}
			if got := string(AppendResponse(nil, &r, tt.o)); got != tt.want {
				t.Errorf("AppendResponse:\ngot  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestAppendedHeadsParse checks that every forwarded head of the
// differential seeds parses again with the same framing.
func TestAppendedHeadsParse(t *testing.T) {
	for _, s := range requestSeeds() {
		var p Parser
		var r, r2 Request
		if p.ParseRequest(&r, []byte(s)) != nil {
			continue
		}
		out := AppendRequest(nil, &r, &RequestOptions{ClientIP: netip.MustParseAddr("192.0.2.1")})
		if err := p.ParseRequest(&r2, out); err != nil || r2.HeadLen != len(out) || r2.Framing != r.Framing || r2.ContentLength != r.ContentLength && r.Framing != NoBody {
			t.Errorf("%q forwarded as %q: %v", s, out, err)
		}
	}
	for _, s := range responseSeeds() {
		var p Parser
		var r, r2 Response
		if p.ParseResponse(&r, []byte(s), false) != nil {
			continue
		}
		out := AppendResponse(nil, &r, nil)
		if err := p.ParseResponse(&r2, out, false); err != nil || r2.HeadLen != len(out) || r2.Framing != r.Framing || r2.Status != r.Status {
			t.Errorf("%q forwarded as %q: %v", s, out, err)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	req := []byte("GET /webtest?action=get_uuid HTTP/1.1\r\nHost: 127.0.0.1:10000\r\nUser-Agent: wrk\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")
	res := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
	body := []byte("5\r\nhello\r\n0\r\n\r\n")
	var p Parser
	var r Request
	var s Response
	var c Chunked
	o := &RequestOptions{ClientIP: netip.MustParseAddr("10.1.2.3")}
	// A trusted client walks its X-Forwarded-For for X-Real-IP.
	trusted := &RequestOptions{ClientIP: netip.MustParseAddr("10.1.2.3"), Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	dst := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		if p.ParseRequest(&r, req) != nil || p.ParseResponse(&s, res, false) != nil {
			t.Fatal("parse failed")
		}
		dst = AppendRequest(dst[:0], &r, o)
		dst = AppendRequest(dst[:0], &r, trusted)
		dst = AppendResponse(dst[:0], &s, nil)
		c.Reset()
		if _, done, _ := c.Scan(body); !done {
			t.Fatal("scan failed")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
}
