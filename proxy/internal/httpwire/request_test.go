package httpwire

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// reqSummary is what the tests compare of a parsed request.
type reqSummary struct {
	Method, Target, Path, Host string
	Minor                      int
	ContentLength              int64
	Chunked                    bool
	Framing                    Framing
	Close                      bool
	Connection                 ConnTokens
	Upgrade                    string
	ExpectContinue             bool
	ExpectOther                bool
	TETrailers                 bool
	HeadLen                    int
}

func summarize(r *Request) reqSummary {
	return reqSummary{
		Method: string(r.Method), Target: string(r.Target), Path: string(r.Path), Host: string(r.Host),
		Minor: r.Minor, ContentLength: r.ContentLength, Chunked: r.Chunked, Framing: r.Framing,
		Close: r.Close, Connection: r.Connection, Upgrade: string(r.Upgrade),
		ExpectContinue: r.ExpectContinue, ExpectOther: r.ExpectOther, TETrailers: r.TETrailers,
		HeadLen: r.HeadLen,
	}
}

func TestParseRequestAccepts(t *testing.T) {
	const wrk = "GET /webtest?action=get_uuid HTTP/1.1\r\nHost: 127.0.0.1:10000\r\n\r\n"
	tests := []struct {
		name string
		in   string
		want reqSummary
	}{
		{"wrk", wrk, reqSummary{Method: "GET", Target: "/webtest?action=get_uuid", Path: "/webtest?action=get_uuid",
			Host: "127.0.0.1:10000", Minor: 1, ContentLength: -1}},
		{"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", ContentLength: -1, Close: true}},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", ContentLength: -1, Connection: ConnKeepAlive}},
		{"HTTP/1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: -1, Close: true, Connection: ConnClose}},
		{"close among words, like net/http's wantsClose", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo close\r\n\r\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: -1, Close: true, Connection: ConnOther}},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: -1}},
		{"mixed line ends", "GET / HTTP/1.1\r\nHost: a\n\r\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: -1}},
		{"content length, body not examined", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhe\x00lo",
			reqSummary{Method: "POST", Target: "/p", Path: "/p", Host: "a", Minor: 1, ContentLength: 5, Framing: ByLength}},
		{"identical content lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\ncontent-length: 007\r\n\r\n",
			reqSummary{Method: "POST", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: 7, Framing: ByLength}},
		{"zero length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
			reqSummary{Method: "POST", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: 0, Framing: NoBody}},
		{"chunked, any case, trimmed", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\t ChUnKeD \r\n\r\n",
			reqSummary{Method: "POST", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: -1, Chunked: true, Framing: ByChunks}},
		{"absolute-form overrides Host", "GET http://u@example.com:8080/a?b HTTP/1.1\r\nHost: other\r\n\r\n",
			reqSummary{Method: "GET", Target: "http://u@example.com:8080/a?b", Path: "/a?b", Host: "example.com:8080", Minor: 1, ContentLength: -1}},
		{"absolute-form without path", "GET http://example.com?q HTTP/1.1\r\nHost: x\r\n\r\n",
			reqSummary{Method: "GET", Target: "http://example.com?q", Path: "?q", Host: "example.com", Minor: 1, ContentLength: -1}},
		{"absolute-form without host", "GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n",
			reqSummary{Method: "GET", Target: "http:///a", Path: "/a", Host: "x", Minor: 1, ContentLength: -1}},
		{"CONNECT authority-form needs no Host", "CONNECT example.com:443 HTTP/1.1\r\n\r\n",
			reqSummary{Method: "CONNECT", Target: "example.com:443", Path: "example.com:443", Host: "example.com:443", Minor: 1, ContentLength: -1}},
		{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
			reqSummary{Method: "OPTIONS", Target: "*", Path: "*", Host: "a", Minor: 1, ContentLength: -1}},
		{"extension method, lower case", "purge /x HTTP/1.1\r\nHost: a\r\n\r\n",
			reqSummary{Method: "purge", Target: "/x", Path: "/x", Host: "a", Minor: 1, ContentLength: -1}},
		{"HTTP/1.9 is HTTP/1.x", "GET / HTTP/1.9\r\nHost: a\r\n\r\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", Host: "a", Minor: 9, ContentLength: -1}},
		{"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", Minor: 1, ContentLength: -1}},
		{"websocket upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
			reqSummary{Method: "GET", Target: "/ws", Path: "/ws", Host: "a", Minor: 1, ContentLength: -1, Connection: ConnKeepAlive | ConnUpgrade, Upgrade: "websocket"}},
		{"Upgrade without Connection: upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: -1}},
		{"Expect: 100-continue", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
			reqSummary{Method: "PUT", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: 1, Framing: ByLength, ExpectContinue: true}},
		{"other Expect", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continues\r\n\r\n",
			reqSummary{Method: "PUT", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: -1, ExpectOther: true}},
		{"TE: trailers", "GET / HTTP/1.1\r\nHost: a\r\nTE: deflate, trailers\r\n\r\n",
			reqSummary{Method: "GET", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: -1, TETrailers: true}},
		{"Trailer without chunked is ignored", "POST / HTTP/1.1\r\nHost: a\r\nTrailer: Content-Length\r\n\r\n",
			reqSummary{Method: "POST", Target: "/", Path: "/", Host: "a", Minor: 1, ContentLength: -1}},
		{"obs-text in a value", "GET /\x80 HTTP/1.1\r\nHost: a\r\nX: \xff\r\n\r\n",
			reqSummary{Method: "GET", Target: "/\x80", Path: "/\x80", Host: "a", Minor: 1, ContentLength: -1}},
		{"bad escape in the query only", "GET /?%zz HTTP/1.1\r\nHost: a\r\n\r\n",
			reqSummary{Method: "GET", Target: "/?%zz", Path: "/?%zz", Host: "a", Minor: 1, ContentLength: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Parser
			var r Request
			if err := p.ParseRequest(&r, []byte(tt.in)); err != nil {
				t.Fatalf("ParseRequest(%q): %v", tt.in, err)
			}
			want := tt.want
			want.HeadLen = len(tt.in)
			if i := strings.Index(tt.in, "\r\n\r\n"); i >= 0 && tt.want.Method == "POST" {
				want.HeadLen = i + 4 // a body follows
			}
			if got := summarize(&r); got != want {
				t.Errorf("ParseRequest(%q):\ngot  %+v\nwant %+v", tt.in, got, want)
			}
		})
	}
}

func TestParseRequestRejects(t *testing.T) {
	const h = "Host: a\r\n"
	tests := []struct {
		name string
		in   string
		err  *Error
	}{
		// Request line.
		{"one space", "GET /\r\n\r\n", ErrRequestLine},
		{"tab separator", "GET\t/ HTTP/1.1\r\n" + h + "\r\n", ErrRequestLine},
		{"empty line before request", "\r\nGET / HTTP/1.1\r\n" + h + "\r\n", ErrRequestLine},
		{"double space", "GET  / HTTP/1.1\r\n" + h + "\r\n", ErrVersion},
		{"space in target", "GET /a b HTTP/1.1\r\n" + h + "\r\n", ErrVersion},
		{"trailing space", "GET / HTTP/1.1 \r\n" + h + "\r\n", ErrVersion},
		{"CR before CRLF", "GET / HTTP/1.1\r\r\n" + h + "\r\n", ErrVersion},
		{"lower-case version", "GET / http/1.1\r\n" + h + "\r\n", ErrVersion},
		{"two-digit minor", "GET / HTTP/1.10\r\n" + h + "\r\n", ErrVersion},
		{"bad method", "G@T / HTTP/1.1\r\n" + h + "\r\n", ErrMethod},
		{"empty method", " / HTTP/1.1\r\n" + h + "\r\n", ErrMethod},
		{"HTTP/2.0", "GET / HTTP/2.0\r\n" + h + "\r\n", ErrUnsupportedVersion},
		{"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", ErrUnsupportedVersion},
		{"h2c preface", "PRI * HTTP/2.0\r\n\r\n", ErrUnsupportedVersion},
		// Target.
		{"empty target", "GET  HTTP/1.1\r\n" + h + "\r\n", ErrTarget},
		{"bad escape", "GET /%zz HTTP/1.1\r\n" + h + "\r\n", ErrTarget},
		{"short escape", "GET /a%4?x HTTP/1.1\r\n" + h + "\r\n", ErrTarget},
		{"DEL in target", "GET /\x7f HTTP/1.1\r\n" + h + "\r\n", ErrTarget},
		{"NUL in query", "GET /?\x00 HTTP/1.1\r\n" + h + "\r\n", ErrTarget},
		{"relative target", "GET a HTTP/1.1\r\n" + h + "\r\n", ErrTarget},
		{"missing scheme", "GET :a HTTP/1.1\r\n" + h + "\r\n", ErrTarget},
		{"bad port", "GET http://a:b/ HTTP/1.1\r\n" + h + "\r\n", ErrTarget},
		{"escaped ASCII in host", "GET http://a%41/ HTTP/1.1\r\n" + h + "\r\n", ErrTarget},
		// Field lines.
		{"no colon", "GET / HTTP/1.1\r\n" + h + "X-Foo\r\n\r\n", ErrHeaderLine},
		{"CR line", "GET / HTTP/1.1\r\n" + h + "\r\r\n\r\n", ErrHeaderLine},
		{"empty name", "GET / HTTP/1.1\r\n" + h + ": a\r\n\r\n", ErrHeaderName},
		{"space in name", "GET / HTTP/1.1\r\n" + h + "X Foo: a\r\n\r\n", ErrHeaderName},
		{"space before colon", "GET / HTTP/1.1\r\n" + h + "X-Foo : a\r\n\r\n", ErrHeaderName},
		{"tab before colon", "GET / HTTP/1.1\r\n" + h + "X-Foo\t: a\r\n\r\n", ErrHeaderName},
		{"non-ASCII name", "GET / HTTP/1.1\r\n" + h + "X-F\xc3\xb6: a\r\n\r\n", ErrHeaderName},
		{"NUL in value", "GET / HTTP/1.1\r\n" + h + "X: a\x00b\r\n\r\n", ErrHeaderValue},
		{"CR in value", "GET / HTTP/1.1\r\n" + h + "X: a\rb\r\n\r\n", ErrHeaderValue},
		{"CR at end of value", "GET / HTTP/1.1\r\n" + h + "X: a\r\r\n\r\n", ErrHeaderValue},
		{"DEL in value", "GET / HTTP/1.1\r\n" + h + "X: a\x7f\r\n\r\n", ErrHeaderValue},
		{"VT in value", "GET / HTTP/1.1\r\n" + h + "X: a\x0b\r\n\r\n", ErrHeaderValue},
		{"obs-fold", "GET / HTTP/1.1\r\n" + h + "X: a\r\n b\r\n\r\n", ErrObsFold},
		{"white space line", "GET / HTTP/1.1\r\n" + h + "X: a\r\n \r\n\r\n", ErrObsFold},
		{"leading white space", "GET / HTTP/1.1\r\n " + h + "\r\n", ErrObsFold},
		// Host.
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", ErrMissingHost},
		{"Host with space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", ErrHeaderName},
		{"absolute-form still needs Host", "GET http://a/ HTTP/1.1\r\n\r\n", ErrMissingHost},
		{"two Host", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", ErrMultipleHost},
		{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ErrHost},
		{"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ErrHost},
		// Content-Length.
		{"CL conflict", "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", ErrMultipleContentLength},
		{"CL differently written", "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Length: 05\r\n\r\n", ErrMultipleContentLength},
		{"CL list", "POST / HTTP/1.1\r\n" + h + "Content-Length: 5, 5\r\n\r\n", ErrContentLength},
		{"CL sign", "POST / HTTP/1.1\r\n" + h + "Content-Length: +5\r\n\r\n", ErrContentLength},
		{"CL negative", "POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", ErrContentLength},
		{"CL hex", "POST / HTTP/1.1\r\n" + h + "Content-Length: 0x5\r\n\r\n", ErrContentLength},
		{"CL underscore", "POST / HTTP/1.1\r\n" + h + "Content-Length: 1_0\r\n\r\n", ErrContentLength},
		{"CL empty", "POST / HTTP/1.1\r\n" + h + "Content-Length: \r\n\r\n", ErrContentLength},
		{"CL 2^63", "POST / HTTP/1.1\r\n" + h + "Content-Length: 9223372036854775808\r\n\r\n", ErrContentLength},
		// Transfer-Encoding and the smuggling vectors built on it.
		{"CL.TE", "POST / HTTP/1.1\r\n" + h + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", ErrLengthAndChunked},
		{"TE.CL", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", ErrLengthAndChunked},
		{"chunked, identity", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, identity\r\n\r\n", ErrTransferEncoding},
		{"identity, chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: identity, chunked\r\n\r\n", ErrTransferEncoding},
		{"identity", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: identity\r\n\r\n", ErrTransferEncoding},
		{"xchunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n", ErrTransferEncoding},
		{"quoted chunked", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: \"chunked\"\r\n\r\n", ErrTransferEncoding},
		{"empty TE", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n\r\n", ErrTransferEncoding},
		{"two TE fields", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", ErrTransferEncoding},
		{"TE with space before colon", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding : chunked\r\n\r\n", ErrHeaderName},
		{"TE with leading white space", "POST / HTTP/1.1\r\n" + h + " Transfer-Encoding: chunked\r\n\r\n", ErrObsFold},
		{"TE folded", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n chunked\r\n\r\n", ErrObsFold},
		{"TE with VT", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\x0b\r\n\r\n", ErrHeaderValue},
		{"TE after bare CR", "POST / HTTP/1.1\r\n" + h + "X: y\rTransfer-Encoding: chunked\r\n\r\n", ErrHeaderValue},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", ErrTransferEncoding10},
		{"bad trailer key", "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTrailer: X, content-length\r\n\r\n", ErrTrailerField},
		{"non-printable upgrade", "GET / HTTP/1.1\r\n" + h + "Connection: upgrade\r\nUpgrade: web\tsocket\r\n\r\n", ErrUpgrade},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Parser
			var r Request
			if err := p.ParseRequest(&r, []byte(tt.in)); err != tt.err {
				t.Errorf("ParseRequest(%q) = %v, want %v", tt.in, err, tt.err)
			}
		})
	}
}

func TestParseRequestLimits(t *testing.T) {
	var r Request
	head := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: 1\r\n", 10) + "\r\n"

	p := Parser{MaxHeadBytes: len(head)}
	if err := p.ParseRequest(&r, []byte(head)); err != nil {
		t.Errorf("head of exactly MaxHeadBytes: %v", err)
	}
	p = Parser{MaxHeadBytes: len(head) - 1}
	if err := p.ParseRequest(&r, []byte(head)); err != ErrHeadTooLarge {
		t.Errorf("head over MaxHeadBytes: %v, want ErrHeadTooLarge", err)
	}
	if err := p.ParseRequest(&r, []byte(head[:len(head)-1])); err != ErrHeadTooLarge {
		t.Errorf("incomplete head at MaxHeadBytes: %v, want ErrHeadTooLarge", err)
	}
	p = Parser{MaxHeaders: 11}
	if err := p.ParseRequest(&r, []byte(head)); err != nil {
		t.Errorf("11 fields with MaxHeaders 11: %v", err)
	}
	p = Parser{MaxHeaders: 10}
	if err := p.ParseRequest(&r, []byte(head)); err != ErrTooManyHeaders {
		t.Errorf("11 fields with MaxHeaders 10: %v, want ErrTooManyHeaders", err)
	}
	p = Parser{}
	big := "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + strings.Repeat("c", DefaultMaxHeadBytes) + "\r\n\r\n"
	if err := p.ParseRequest(&r, []byte(big)); err != ErrHeadTooLarge {
		t.Errorf("default limit: %v, want ErrHeadTooLarge", err)
	}
	if ErrHeadTooLarge.Status() != 431 || ErrTransferEncoding.Status() != 501 || ErrUnsupportedVersion.Status() != 505 || ErrObsFold.Status() != 400 {
		t.Error("wrong Status codes")
	}
}

// TestParseRequestIncremental feeds a head byte by byte and then a
// pipelined second request.
func TestParseRequestIncremental(t *testing.T) {
	const first = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"
	const second = "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"
	stream := first + "hi" + second
	var p Parser
	var r Request
	buf := make([]byte, 0, len(stream))
	i := 0
	for ; ; i++ {
		buf = append(buf, stream[i])
		err := p.ParseRequest(&r, buf)
		if err == nil {
			break
		}
		if err != ErrNeedMore {
			t.Fatalf("after %d bytes: %v", i+1, err)
		}
	}
	if i+1 != len(first) || r.HeadLen != len(first) || string(r.Target) != "/a" || r.ContentLength != 2 {
		t.Fatalf("first request complete after %d bytes, HeadLen %d, target %q", i+1, r.HeadLen, r.Target)
	}
	rest := []byte(stream[r.HeadLen+int(r.ContentLength):])
	if err := p.ParseRequest(&r, rest); err != nil || string(r.Target) != "/b" || string(r.Host) != "b" {
		t.Fatalf("pipelined request: %v, target %q host %q", err, r.Target, r.Host)
	}
}

func TestHeaders(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret, close\r\nx-secret: 1\r\nKeep-Alive: timeout=5\r\n" +
		"Proxy-Authorization: x\r\nTE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\nProxy-Connection: close\r\nCookie: c=1\r\n" +
		"Accept: */*\r\nAccept:  text/html \r\n\r\n"
	var p Parser
	var r Request
	if err := p.ParseRequest(&r, []byte(in)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range r.Headers {
		got = append(got, fmt.Sprintf("%s=%s/%v", h.Name, h.Value, h.Hop))
	}
	want := []string{"Host=a/false", "Connection=keep-alive, X-Secret, close/true", "x-secret=1/true",
		"Keep-Alive=timeout=5/true", "Proxy-Authorization=x/true", "TE=trailers/true", "Trailer=X-Sum/true",
		"Upgrade=h2c/true", "Proxy-Connection=close/true", "Cookie=c=1/false", "Accept=*/*/false", "Accept=text/html/false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Headers:\ngot  %q\nwant %q", got, want)
	}
	if v, ok := r.Headers.Get("ACCEPT"); !ok || string(v) != "*/*" {
		t.Errorf("Get(ACCEPT) = %q, %v", v, ok)
	}
	if _, ok := r.Headers.Get("Accept-Encoding"); ok {
		t.Error("Get(Accept-Encoding) found a field")
	}
	if r.Connection != ConnKeepAlive|ConnClose|ConnOther || !r.Close || r.Upgrade != nil {
		t.Errorf("Connection %b Close %v Upgrade %q", r.Connection, r.Close, r.Upgrade)
	}
}

func TestLeadingCRLF(t *testing.T) {
	for in, want := range map[string]int{"": 0, "GET": 0, "\r\nGET": 2, "\n\r\n\r\n": 4, "\r\r": 2} {
		if got := LeadingCRLF([]byte(in)); got != want {
			t.Errorf("LeadingCRLF(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	var e *Error
	if !errors.As(error(ErrObsFold), &e) || e.Error() != "httpwire: obsolete line folding" {
		t.Errorf("ErrObsFold = %v", e)
	}
}

// TestRequestRefusedBeforeComplete checks that a request that can never
// become valid is refused as soon as that shows, not when a timeout ends
// the wait for the rest of its head, and that a valid start still waits.
func TestRequestRefusedBeforeComplete(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       error
		at         int // refused after this many bytes; 0: after all of them
	}{
		{"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ErrMethod, 1},
		{"HTTP/0.9", "GET /\r\n", ErrRequestLine, 0},
		{"HTTP/0.9 bare LF", "GET /\n", ErrRequestLine, 0},
		{"empty method", " / HTTP/1.1", ErrMethod, 1},
		{"not HTTP", "GET / SIP/2.0", ErrVersion, 7},
		{"long version", "GET / HTTP/1.10", ErrVersion, 0},
		{"HTTP/2 line", "GET / HTTP/2.0\r\n", ErrUnsupportedVersion, 0},
		{"bad target, complete line", "GET /a\x01b HTTP/1.1\r\n", ErrTarget, 0},
		{"bad target waits for the version", "GET /a\x01b HTTP/1.", ErrNeedMore, 0},
		{"a method so far", "HELLO", ErrNeedMore, 0},
		{"up to the line's CR", "GET / HTTP/1.1\r", ErrNeedMore, 0},
		{"line done, fields to come", "GET / HTTP/1.1\r\nHost: a\r\n", ErrNeedMore, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			var p Parser
			if err := p.ParseRequest(&r, []byte(tc.data)); err != tc.want {
				t.Errorf("whole: %v, want %v", err, tc.want)
			}
			// Byte by byte, the first answer other than ErrNeedMore comes
			// with byte tc.at.
			at := tc.at
			if at == 0 {
				at = len(tc.data)
			}
			p.Reset()
			for i := 1; i <= at; i++ {
				err := p.ParseRequest(&r, []byte(tc.data[:i]))
				if i < at && err != ErrNeedMore {
					t.Fatalf("after %d of %d bytes: %v, want to wait", i, len(tc.data), err)
				}
				if i == at && err != tc.want {
					t.Fatalf("after %d bytes: %v, want %v", i, err, tc.want)
				}
			}
		})
	}
}
