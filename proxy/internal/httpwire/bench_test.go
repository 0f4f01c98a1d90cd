package httpwire

import (
	"bufio"
	"bytes"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// wrkRequest is the request wrk sends in the benchmark against nginx.
var wrkRequest = []byte("GET /webtest?action=get_uuid HTTP/1.1\r\nHost: 127.0.0.1:10000\r\n\r\n")

var browserRequest = []byte("GET /static/app.js?v=3 HTTP/1.1\r\nHost: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/\r\nConnection: keep-alive\r\nCookie: session=0123456789abcdef; theme=dark\r\n" +
	"Sec-Fetch-Dest: script\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: same-origin\r\nPriority: u=2\r\n\r\n")

// webtestResponse is the head of the webtest backend's answer.
var webtestResponse = []byte("HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n" +
	"Access-Control-Allow-Methods: GET, POST, OPTIONS\r\nContent-Type: application/json\r\n" +
	"Date: Mon, 02 Jun 2025 10:00:00 GMT\r\nContent-Length: 142\r\n\r\n")

func benchRequest(b *testing.B, head []byte) {
	var p Parser
	var r Request
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.ParseRequest(&r, head); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequest(b *testing.B)        { benchRequest(b, wrkRequest) }
func BenchmarkParseRequestBrowser(b *testing.B) { benchRequest(b, browserRequest) }

func BenchmarkParseResponse(b *testing.B) {
	var p Parser
	var r Response
	b.SetBytes(int64(len(webtestResponse)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.ParseResponse(&r, webtestResponse, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForwardRequest parses a request head and writes the upstream
// head with X-Forwarded-*, as the forwarder does per request.
func BenchmarkForwardRequest(b *testing.B) {
	var p Parser
	var r Request
	o := &RequestOptions{ClientIP: netip.MustParseAddr("172.18.0.1")}
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.ParseRequest(&r, wrkRequest); err != nil {
			b.Fatal(err)
		}
		dst = AppendRequest(dst[:0], &r, o)
	}
}

func BenchmarkForwardResponse(b *testing.B) {
	var p Parser
	var r Response
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.ParseResponse(&r, webtestResponse, false); err != nil {
			b.Fatal(err)
		}
		dst = AppendResponse(dst[:0], &r, nil)
	}
}

func BenchmarkChunkedScan(b *testing.B) {
	body := []byte(strings.Repeat("1000\r\n"+strings.Repeat("x", 4096)+"\r\n", 16) + "0\r\n\r\n")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var c Chunked
	for b.Loop() {
		c.Reset()
		if _, done, err := c.Scan(body); !done || err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetHTTPReadRequest is the reference: net/http reading the same
// head (without its server's extra checks).
func BenchmarkNetHTTPReadRequest(b *testing.B) {
	rd := bytes.NewReader(wrkRequest)
	br := bufio.NewReader(rd)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(wrkRequest)
		br.Reset(rd)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}
