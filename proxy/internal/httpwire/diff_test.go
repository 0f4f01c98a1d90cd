package httpwire

// Differential checks: the same bytes go to this package and to net/http,
// and both must accept or both reject. Where this package is deliberately
// stricter, the check confirms that the input has the property the
// stricter rule is about.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
)

// diffParser has limits high enough that only net/http's rules apply.
func diffParser() *Parser { return &Parser{MaxHeadBytes: 1 << 30, MaxHeaders: 1 << 30} }

// netHTTPRequest reads data as net/http's server does: http.ReadRequest,
// then the checks conn.readRequest makes (server.go). It returns the
// request, its header fields before ReadRequest removed Host, and the
// length of the head.
func netHTTPRequest(data []byte) (*http.Request, textproto.MIMEHeader, int, error) {
	rd := bytes.NewReader(data)
	br := bufio.NewReader(rd)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, 0, err
	}
	n := len(data) - br.Buffered() - rd.Len()
	// The same textproto code, to see the fields ReadRequest keeps to itself.
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
	tp.ReadLine()
	raw, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, nil, 0, err
	}
	// server.go: http1ServerSupportsRequest.
	if req.ProtoMajor != 1 && !(req.ProtoMajor == 2 && req.ProtoMinor == 0 && req.Method == "PRI" && req.RequestURI == "*") {
		return req, raw, n, errors.New("505 unsupported protocol version")
	}
	// server.go: Host requirement, ValidHostHeader, field names and values.
	hosts, haveHost := raw["Host"]
	isH2Upgrade := req.Method == "PRI" && len(raw) == 0 && req.URL.Path == "*" && req.Proto == "HTTP/2.0"
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && !isH2Upgrade && req.Method != "CONNECT" {
		return req, raw, n, errors.New("missing required Host header")
	}
	if len(hosts) == 1 && !goValidHost(hosts[0]) {
		return req, raw, n, errors.New("malformed Host header")
	}
	for k, vv := range raw {
		if !goToken(k) {
			return req, raw, n, errors.New("invalid header name")
		}
		for _, v := range vv {
			if !goValidValue(v) {
				return req, raw, n, errors.New("invalid header value")
			}
		}
	}
	return req, raw, n, nil
}

// The helpers below restate httpguts and net/http functions that are not
// exported, written independently of the package under test.

func goToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func goValidValue(s string) bool {
	for _, c := range []byte(s) {
		if (c < ' ' || c == 0x7f) && c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func goValidHost(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("!$%&()*+,-.:;=['_~]", c) >= 0) {
			return false
		}
	}
	return true
}

func goHasToken(v, token string) bool {
	if len(token) > len(v) || token == "" {
		return false
	}
	if v == token {
		return true
	}
	isB := func(b byte) bool { return b == ' ' || b == ',' || b == '\t' }
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if sp > 0 && !isB(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !isB(v[end]) {
			continue
		}
		if strings.EqualFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func goValuesContainToken(vv []string, token string) bool {
	for _, v := range vv {
		for _, e := range strings.Split(v, ",") {
			if strings.EqualFold(strings.Trim(e, " \t"), token) && isASCII(e) {
				return true
			}
		}
	}
	return false
}

func isASCII(s string) bool {
	for _, c := range []byte(s) {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// hasContinuation reports a field line starting with SP or HTAB in head.
func hasContinuation(head []byte) bool {
	return bytes.Contains(head, []byte("\n ")) || bytes.Contains(head, []byte("\n\t"))
}

// headerMap turns parsed fields into the map net/http builds.
func headerMap(hs Headers) http.Header {
	m := http.Header{}
	for _, h := range hs {
		k := textproto.CanonicalMIMEHeaderKey(string(h.Name))
		m[k] = append(m[k], string(h.Value))
	}
	if cl := m["Content-Length"]; len(cl) > 1 {
		m["Content-Length"] = cl[:1] // identical, or the message was rejected
	}
	return m
}

func fixPragma(m http.Header) {
	if hp := m["Pragma"]; len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := m["Cache-Control"]; !ok {
			m["Cache-Control"] = []string{"no-cache"}
		}
	}
}

// checkRequest compares ParseRequest with net/http on data.
func checkRequest(t *testing.T, data []byte) {
	t.Helper()
	var r Request
	err := diffParser().ParseRequest(&r, data)
	greq, raw, gn, gerr := netHTTPRequest(data)

	if err == ErrNeedMore {
		if gerr == nil {
			t.Fatalf("%q: need more, net/http accepts", data)
		}
		return
	}
	if gerr != nil {
		if err == nil {
			t.Fatalf("%q: accepted, net/http rejects: %v", data, gerr)
		}
		return
	}
	if err != nil {
		var ok bool
		switch err {
		case ErrObsFold:
			ok = hasContinuation(data[:gn])
		case ErrLengthAndChunked:
			ok = len(greq.TransferEncoding) > 0 && len(raw["Content-Length"]) > 0
		case ErrTransferEncoding10:
			ok = greq.ProtoMinor == 0 && len(raw["Transfer-Encoding"]) > 0
		case ErrUnsupportedVersion:
			ok = greq.ProtoMajor != 1
		case ErrUpgrade:
			ok = goValuesContainToken(raw["Connection"], "upgrade") && !asciiPrint(raw.Get("Upgrade"))
		}
		if !ok {
			t.Fatalf("%q: rejected (%v), net/http accepts", data, err)
		}
		return
	}

	if r.HeadLen != gn {
		t.Errorf("%q: HeadLen %d, net/http read %d", data, r.HeadLen, gn)
	}
	if string(r.Method) != greq.Method || string(r.Target) != greq.RequestURI || greq.ProtoMajor != 1 || r.Minor != greq.ProtoMinor {
		t.Errorf("%q: request line %q %q 1.%d, net/http %q %q %d.%d", data, r.Method, r.Target, r.Minor, greq.Method, greq.RequestURI, greq.ProtoMajor, greq.ProtoMinor)
	}
	if !bytes.Contains(r.Host, []byte("%")) && string(r.Host) != greq.Host {
		t.Errorf("%q: Host %q, net/http %q", data, r.Host, greq.Host)
	}
	cl := map[Framing]int64{NoBody: 0, ByLength: r.ContentLength, ByChunks: -1}[r.Framing]
	if cl != greq.ContentLength || r.Chunked != (len(greq.TransferEncoding) > 0) {
		t.Errorf("%q: length %d chunked %v, net/http %d %v", data, cl, r.Chunked, greq.ContentLength, greq.TransferEncoding)
	}
	if want := greq.Close || goHasToken(greq.Header.Get("Connection"), "close"); r.Close != want {
		t.Errorf("%q: Close %v, net/http %v", data, r.Close, want)
	}
	if want := goHasToken(greq.Header.Get("Expect"), "100-continue"); r.ExpectContinue != want || r.ExpectOther != (!want && greq.Header.Get("Expect") != "") {
		t.Errorf("%q: Expect continue %v other %v, net/http %q", data, r.ExpectContinue, r.ExpectOther, greq.Header.Get("Expect"))
	}
	if want := goValuesContainToken(raw["Te"], "trailers"); r.TETrailers != want {
		t.Errorf("%q: TETrailers %v, net/http %v", data, r.TETrailers, want)
	}
	want := ""
	if goValuesContainToken(raw["Connection"], "upgrade") {
		want = raw.Get("Upgrade")
	}
	if string(r.Upgrade) != want {
		t.Errorf("%q: Upgrade %q, httputil %q", data, r.Upgrade, want)
	}
	m := headerMap(r.Headers)
	delete(m, "Host")
	delete(m, "Transfer-Encoding")
	if r.Chunked {
		delete(m, "Trailer")
	}
	fixPragma(m)
	if !reflect.DeepEqual(m, greq.Header) {
		t.Errorf("%q: fields\n%v\nnet/http\n%v", data, m, greq.Header)
	}
}

func asciiPrint(s string) bool {
	for _, c := range []byte(s) {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

// checkResponse compares ParseResponse with http.ReadResponse on data.
func checkResponse(t *testing.T, data []byte, head bool) {
	t.Helper()
	var r Response
	err := diffParser().ParseResponse(&r, data, head)
	method := "GET"
	if head {
		method = "HEAD"
	}
	rd := bytes.NewReader(data)
	br := bufio.NewReader(rd)
	gres, gerr := http.ReadResponse(br, &http.Request{Method: method})
	gn := len(data) - br.Buffered() - rd.Len()

	if err == ErrNeedMore {
		if gerr == nil {
			t.Fatalf("%q: need more, net/http accepts", data)
		}
		return
	}
	if gerr != nil {
		if err == nil {
			t.Fatalf("%q (head %v): accepted, net/http rejects: %v", data, head, gerr)
		}
		return
	}
	if err != nil {
		var ok bool
		switch err {
		case ErrObsFold:
			ok = hasContinuation(data[:gn])
		case ErrHeaderName:
			for k := range gres.Header {
				ok = ok || !goToken(k)
			}
		case ErrStatusCode:
			ok = gres.StatusCode < 100 || strings.HasPrefix(gres.Status, "+")
		case ErrReason:
			_, reason, _ := strings.Cut(gres.Status, " ")
			ok = !goValidValue(reason)
		case ErrUnsupportedVersion:
			ok = gres.ProtoMajor != 1
		}
		if !ok {
			t.Fatalf("%q (head %v): rejected (%v), net/http accepts", data, head, err)
		}
		return
	}

	if r.HeadLen != gn {
		t.Errorf("%q: HeadLen %d, net/http read %d", data, r.HeadLen, gn)
	}
	_, reason, _ := strings.Cut(gres.Status, " ")
	if r.Status != gres.StatusCode || gres.ProtoMajor != 1 || r.Minor != gres.ProtoMinor || string(r.Reason) != reason {
		t.Errorf("%q: status %d %q 1.%d, net/http %q %d.%d", data, r.Status, r.Reason, r.Minor, gres.Status, gres.ProtoMajor, gres.ProtoMinor)
	}
	var cl int64
	switch {
	case head:
		cl = r.ContentLength
	case !bodyAllowedForStatus(r.Status):
		cl = 0
	case r.Chunked:
		cl = -1
	default:
		cl = r.ContentLength
	}
	if cl != gres.ContentLength || r.Chunked != (len(gres.TransferEncoding) > 0) || r.Close != gres.Close ||
		(r.Framing == NoBody) != (gres.Body == http.NoBody) {
		t.Errorf("%q (head %v): length %d chunked %v close %v framing %d, net/http %d %v %v nobody %v",
			data, head, cl, r.Chunked, r.Close, r.Framing, gres.ContentLength, gres.TransferEncoding, gres.Close, gres.Body == http.NoBody)
	}
	switchProto := gres.StatusCode == 101 && gres.Header.Get("Upgrade") != "" && goValuesContainToken(gres.Header["Connection"], "upgrade")
	if (r.Upgrade != nil) != switchProto || switchProto && string(r.Upgrade) != gres.Header.Get("Upgrade") {
		t.Errorf("%q: Upgrade %q, net/http protocol switch %v", data, r.Upgrade, switchProto)
	}
	m := headerMap(r.Headers)
	delete(m, "Transfer-Encoding")
	if r.Chunked && !head && bodyAllowedForStatus(r.Status) {
		delete(m, "Content-Length")
	}
	if r.Chunked {
		delete(m, "Trailer")
	}
	if r.Minor >= 1 && r.Connection&ConnClose != 0 {
		delete(m, "Connection")
	}
	fixPragma(m)
	if !reflect.DeepEqual(m, gres.Header) {
		t.Errorf("%q: fields\n%v\nnet/http\n%v", data, m, gres.Header)
	}
}

// checkIncremental feeds data to a Parser a piece at a time, as a
// connection would, and expects the result of parsing it at once.
func checkIncremental(t *testing.T, data []byte, parse func(p *Parser, buf []byte) error) {
	t.Helper()
	if len(data) > 4096 {
		return
	}
	want := parse(diffParser(), data)
	p := diffParser()
	for i := 0; i <= len(data); i++ {
		err := parse(p, data[:i])
		if i < len(data) && err != ErrNeedMore {
			// A request may be refused before it is complete, as soon as
			// no continuation can make it valid, with the error of the
			// complete request; only a bad method byte is named before
			// it is known whether the line has its second space.
			if err != want && !(err == ErrMethod && want == ErrRequestLine) {
				t.Fatalf("%q: prefix %d: %v, whole: %v", data, i, err, want)
			}
			return
		}
		if i == len(data) && err != want {
			t.Fatalf("%q: piecewise %v, whole %v", data, err, want)
		}
	}
}

const chunkedHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

// checkChunked compares Chunked with net/http reading the chunked body of
// a request: the outcome, the decoded data and where the message ends.
func checkChunked(t *testing.T, data []byte) {
	t.Helper()
	in := append([]byte(chunkedHead), data...)
	rd := bytes.NewReader(in)
	br := bufio.NewReader(rd)
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Fatal(err)
	}
	body, gerr := io.ReadAll(req.Body)
	gend := len(in) - br.Buffered() - rd.Len() - len(chunkedHead)

	var c Chunked
	n, done, err := c.Scan(data)
	// Decoding yields the same outcome, and the data.
	var d Chunked
	var dec []byte
	var dn int
	var ddone bool
	var derr error
	for dn < len(data) && !ddone && derr == nil {
		k, p, fin, e := d.Decode(data[dn:])
		dn += k
		dec = append(dec, p...)
		ddone, derr = fin, e
	}
	if dn != n || ddone != done || derr != err {
		t.Fatalf("%q: Decode %d %v %v, Scan %d %v %v", data, dn, ddone, derr, n, done, err)
	}
	// So does feeding one byte at a time.
	var s Chunked
	var sn int
	var sdone bool
	var serr error
	for sn < len(data) && !sdone && serr == nil {
		k, fin, e := s.Scan(data[sn : sn+1])
		sn += k
		sdone, serr = fin, e
	}
	if sn != n || sdone != done || serr != err {
		t.Fatalf("%q: bytewise %d %v %v, whole %d %v %v", data, sn, sdone, serr, n, done, err)
	}

	switch {
	case gerr == nil && err == nil:
		if !done || n != gend || !bytes.Equal(dec, body) {
			t.Fatalf("%q: done %v end %d data %q; net/http end %d data %q", data, done, n, dec, gend, body)
		}
	case gerr == nil:
		// Stricter trailer rules only: bare LF, folding, space in a name.
		ok := err == ErrTrailer && n < len(data)
		if ok {
			b := data[n]
			ls := bytes.LastIndexByte(data[:n], '\n') + 1
			name := !bytes.Contains(data[ls:n], []byte(":"))
			ok = b == '\n' && n > 0 && data[n-1] != '\r' ||
				n == ls && (b == ' ' || b == '\t') ||
				name && b == ' '
		}
		if !ok {
			t.Fatalf("%q: rejected at %d (%v), net/http accepts", data, n, err)
		}
	case done:
		t.Fatalf("%q: accepted, net/http rejects: %v", data, gerr)
	case err == nil:
		// Incomplete: net/http must have failed for lack of input.
		msg := gerr.Error()
		if !errors.Is(gerr, io.ErrUnexpectedEOF) && !strings.Contains(msg, "unexpected EOF") &&
			!(strings.Contains(msg, "suspiciously long trailer") && c.trailer < maxTrailer) {
			t.Fatalf("%q: incomplete, net/http rejects: %v", data, gerr)
		}
	}
}

func FuzzRequestHead(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRequest(t, data)
		checkIncremental(t, data, func(p *Parser, b []byte) error {
			var r Request
			return p.ParseRequest(&r, b)
		})
	})
}

func FuzzResponseHead(f *testing.F) {
	for _, s := range responseSeeds() {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		checkResponse(t, data, head)
		checkIncremental(t, data, func(p *Parser, b []byte) error {
			var r Response
			return p.ParseResponse(&r, b, head)
		})
	})
}

func FuzzChunked(f *testing.F) {
	for _, s := range chunkedSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkChunked(t, data)
	})
}

func TestDifferentialSeeds(t *testing.T) {
	for _, s := range requestSeeds() {
		checkRequest(t, []byte(s))
	}
	for _, s := range responseSeeds() {
		checkResponse(t, []byte(s), false)
		checkResponse(t, []byte(s), true)
	}
	for _, s := range chunkedSeeds() {
		checkChunked(t, []byte(s))
	}
}
