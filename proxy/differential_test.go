package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/lb"
)

// seen is what a peer received, normalized for comparison.
type seen struct {
	Method, Target, Proto, Host string
	Headers                     string // sorted "Name: value" lines
	Body                        string
	ContentLength               int64
	TransferEncoding            []string
}

// TestEnginesAgree sends the same raw requests through both engines and
// compares what the peer received and what the client got.
func TestEnginesAgree(t *testing.T) {
	var mu sync.Mutex
	var last seen
	peer := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var hs []string
		for k, vs := range r.Header {
			hs = append(hs, k+": "+strings.Join(vs, ","))
		}
		sort.Strings(hs)
		mu.Lock()
		last = seen{r.Method, r.RequestURI, r.Proto, r.Host, strings.Join(hs, "\n"), string(body), r.ContentLength, r.TransferEncoding}
		mu.Unlock()
		switch r.URL.Query().Get("answer") {
		case "204":
			w.WriteHeader(204)
		case "304":
			w.WriteHeader(304)
		case "103":
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(103)
			w.Write([]byte("after hints"))
		case "chunked":
			w.Write([]byte("part one,"))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
		case "big":
			w.Header().Set("Content-Type", "text/plain")
			w.Write(bytes.Repeat([]byte("0123456789"), 50000))
		case "headers":
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			w.Header().Set("Connection", "X-Drop")
			w.Header().Set("X-Drop", "1")
			w.Header().Set("X-Keep", "2")
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"method":%q,"len":%d}`, r.Method, len(body))
		}
	})
	longBody := strings.Repeat("z", 100<<10)
	requests := []struct{ name, raw string }{
		{"get", "GET /webtest?action=get_uuid HTTP/1.1\r\nHost: app.test\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"},
		{"head", "HEAD /webtest HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"post length", "POST /form HTTP/1.1\r\nHost: app.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
		{"post chunked", "POST /up HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
		{"post large", "POST /big HTTP/1.1\r\nHost: app.test\r\nContent-Length: " + fmt.Sprint(len(longBody)) + "\r\n\r\n" + longBody},
		{"put empty", "PUT /x HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\n\r\n"},
		{"delete", "DELETE /x/1 HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"options", "OPTIONS /webtest HTTP/1.1\r\nHost: app.test\r\nOrigin: http://o.test\r\n\r\n"},
		{"http/1.0", "GET /old HTTP/1.0\r\nHost: app.test\r\n\r\n"},
		{"http/1.0 keep-alive", "GET /old HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n"},
		{"hop-by-hop", "GET /hop HTTP/1.1\r\nHost: app.test\r\nConnection: X-Secret, close\r\nX-Secret: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\nProxy-Connection: x\r\n\r\n"},
		{"xff chain", "GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 203.0.113.1\r\nX-Forwarded-Proto: https\r\n\r\n"},
		{"duplicate headers", "GET / HTTP/1.1\r\nHost: app.test\r\nAccept: a\r\nAccept: b\r\nCookie: x=1\r\nCookie: y=2\r\n\r\n"},
		{"absolute form", "GET http://app.test/abs?q=1 HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"204", "GET /?answer=204 HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"304", "GET /?answer=304 HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"chunked answer", "GET /?answer=chunked HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"early hints", "GET /?answer=103 HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"chunked answer to 1.0", "GET /?answer=chunked HTTP/1.0\r\nHost: app.test\r\n\r\n"},
		{"big answer", "GET /?answer=big HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"answer headers", "GET /?answer=headers HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"escaped path", "GET /a%2Fb/c%20d?x=%41 HTTP/1.1\r\nHost: app.test\r\n\r\n"},
		{"forged forwarded fields", "GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\nX-Forwarded-Host: evil.test\r\n" +
			"X-Forwarded-Proto: https\r\nForwarded: for=203.0.113.9\r\nX-Real-IP: 203.0.113.9\r\nTrue-Client-IP: 203.0.113.9\r\n\r\n"},
		{"xff fields folded", "GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 198.51.100.7\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n\r\n"},
		{"underscored names", "GET / HTTP/1.1\r\nHost: app.test\r\nX_Forwarded_For: 203.0.113.9\r\nx_real_ip: 203.0.113.9\r\nX-Ok: 1\r\n\r\n"},
		{"connection lists forwarded fields", "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: X-Forwarded-For, X-Real-IP, Forwarded, X-Forwarded-Proto, X-Forwarded-Host\r\n" +
			"X-Forwarded-For: 203.0.113.9\r\nX-Real-IP: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\nX-Forwarded-Proto: https\r\n\r\n"},
		{"expect continue", "POST /e HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"},
	}
	type result struct {
		peer                  seen
		status                int
		body, proto           string
		headers               string
		interimStatuses       []int
		closeAfter, sawAnswer bool
	}
	run := func(t *testing.T, url, raw string) result {
		mu.Lock()
		last = seen{}
		mu.Unlock()
		c, err := dialProxy(url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go io.WriteString(c, raw)
		br := bufio.NewReader(c)
		req, _ := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		var res *http.Response
		var r result
		for {
			res, err = http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("reading answer: %v", err)
			}
			if res.StatusCode >= 200 {
				break
			}
			r.interimStatuses = append(r.interimStatuses, res.StatusCode)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("reading body: %v", err)
		}
		var hs []string
		for k, vs := range res.Header {
			if k == "Date" {
				continue
			}
			hs = append(hs, k+": "+strings.Join(vs, ","))
		}
		sort.Strings(hs)
		mu.Lock()
		r.peer = last
		mu.Unlock()
		r.status, r.body, r.proto, r.headers, r.closeAfter = res.StatusCode, string(b), res.Proto, strings.Join(hs, "\n"), res.Close
		return r
	}
	// Every request is sent by an untrusted client and by a trusted proxy
	// (TrustedProxies), whose forwarded fields are kept.
	for _, trust := range []struct {
		name     string
		prefixes []netip.Prefix
	}{{"untrusted", nil}, {"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}} {
		// Over plain HTTP, and over TLS: the reference engine behind
		// net/http's TLS against the fast path's.
		for _, pair := range []struct {
			name      string
			ref, fast func(t testing.TB, cfg Config, backends ...lb.Backend) (string, *lb.Balancer)
		}{{"plain", engines[0].start, engines[1].start}, {"tls", newProxyTLS, newFastTLSProxy}} {
			refURL, _ := pair.ref(t, Config{TrustedProxies: trust.prefixes}, peer.backend(1))
			fastURL, _ := pair.fast(t, Config{TrustedProxies: trust.prefixes}, peer.backend(1))
			for _, rq := range requests {
				t.Run(pair.name+"/"+trust.name+"/"+rq.name, func(t *testing.T) {
					ref, fast := run(t, refURL, rq.raw), run(t, fastURL, rq.raw)
					// The two engines answer 100 Continue at different moments
					// (net/http when the body is first read, the fast path before
					// reading it); both must send at most one.
					if fmt.Sprint(without100(ref.interimStatuses)) != fmt.Sprint(without100(fast.interimStatuses)) ||
						len(ref.interimStatuses) > 2 || len(fast.interimStatuses) > 2 {
						t.Errorf("interim answers: reference %v fast %v", ref.interimStatuses, fast.interimStatuses)
					}
					if rq.name == "early hints" && fmt.Sprint(without100(fast.interimStatuses)) != "[103]" {
						t.Errorf("103 Early Hints not passed on: %v", fast.interimStatuses)
					}
					ref.interimStatuses, fast.interimStatuses = nil, nil
					// nginx's underscores_in_headers off: no engine forwards
					// a name a WSGI server would read as another.
					for _, l := range strings.Split(fast.peer.Headers, "\n") {
						if name, _, _ := strings.Cut(l, ":"); strings.Contains(name, "_") {
							t.Errorf("%s reached the peer", name)
						}
					}
					if fmt.Sprint(ref) != fmt.Sprint(fast) {
						t.Errorf("engines differ\nreference: %+v\nfast:      %+v", ref, fast)
					}
				})
			}
		}
	}
}

func without100(s []int) []int {
	var out []int
	for _, x := range s {
		if x != 100 {
			out = append(out, x)
		}
	}
	return out
}

// The access log names the request even when its body overwrote the
// buffer its head was parsed in.
func TestFastAccessLogAfterLargeBody(t *testing.T) {
	lines := newEvents[string]()
	log := zerolog.New(lineWriter{lines})
	peer := newBackend(t, "peer", nil)
	url, _ := newFastProxy(t, Config{AccessLog: true, Log: log}, peer.backend(1))
	body := strings.Repeat("b", 200<<10)
	res, err := http.Post(url+"/upload/path?x=1", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	// The line is written just after the answer went out.
	line := lines.await(t, "access log line", func(l string) bool { return strings.Contains(l, `"message":"request"`) })
	if !strings.Contains(line, `"method":"POST"`) || !strings.Contains(line, `"path":"/upload/path"`) || !strings.Contains(line, `"status":200`) {
		t.Fatalf("access log: %s", line)
	}
}

// lineWriter passes each log line (zerolog writes one a call) to events.
type lineWriter struct{ e *events[string] }

func (w lineWriter) Write(p []byte) (int, error) {
	w.e.add(string(p))
	return len(p), nil
}
