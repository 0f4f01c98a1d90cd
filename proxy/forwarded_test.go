package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestForwardedTrust holds every engine to the trust model of the
// forwarded fields: what a client outside TrustedProxies sends in them is
// replaced, a trusted one's chain is kept and walked for X-Real-IP, names
// with "_" never reach a peer, and a Connection field cannot strip what
// wharf sets.
func TestForwardedTrust(t *testing.T) {
	local := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	forged := "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\n" +
		"Forwarded: for=203.0.113.9\r\nX-Real-IP: 203.0.113.9\r\nTrue-Client-IP: 203.0.113.9\r\n"
	tests := []struct {
		name    string
		trusted []netip.Prefix
		fields  string
		want    map[string]string // "" for absent
	}{
		{"untrusted client's fields replaced", nil, forged, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Forwarded-Host": "app.test",
			"X-Forwarded-Proto": "http", "Forwarded": "", "True-Client-Ip": ""}},
		{"client outside the trusted prefixes", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, forged, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Forwarded-Host": "app.test",
			"X-Forwarded-Proto": "http", "Forwarded": "", "True-Client-Ip": ""}},
		{"trusted chain kept, real IP recursive", local,
			"X-Forwarded-For: 198.51.100.7, 203.0.113.9\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Host: front.test\r\nX-Forwarded-Proto: https\r\n" +
				"Forwarded: for=203.0.113.9\r\nX-Real-IP: 192.0.2.1\r\nTrue-Client-IP: 203.0.113.9\r\n",
			map[string]string{
				"X-Forwarded-For": "198.51.100.7, 203.0.113.9, 10.0.0.1, 127.0.0.1", "X-Real-Ip": "203.0.113.9",
				"X-Forwarded-Host": "front.test", "X-Forwarded-Proto": "https", "Forwarded": "for=203.0.113.9", "True-Client-Ip": "203.0.113.9"}},
		{"trusted client without fields", local, "", map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Forwarded-Host": "app.test", "X-Forwarded-Proto": "http"}},
		{"underscored names dropped", nil, "X_Forwarded_For: 203.0.113.9\r\nX_Real_IP: 203.0.113.9\r\nX-Ok: 1\r\n", map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X_forwarded_for": "", "X_real_ip": "", "X-Ok": "1"}},
		{"underscored names dropped from a trusted client", local, "X_Forwarded_For: 203.0.113.9\r\n", map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X_forwarded_for": ""}},
		{"Connection cannot strip what wharf sets", nil,
			"Connection: X-Forwarded-For, X-Real-IP, X-Forwarded-Host, X-Forwarded-Proto\r\n" + forged, map[string]string{
				"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "X-Forwarded-Host": "app.test",
				"X-Forwarded-Proto": "http", "Forwarded": "", "True-Client-Ip": ""}},
		{"Connection cannot strip a trusted chain", local,
			"Connection: X-Forwarded-For, Forwarded, X-Forwarded-Proto\r\nX-Forwarded-For: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\nX-Forwarded-Proto: https\r\n",
			map[string]string{
				"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Real-Ip": "203.0.113.9", "Forwarded": "for=203.0.113.9",
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.test"}},
	}
	check := func(t *testing.T, h http.Header, wants map[string]string, proto string) {
		t.Helper()
		for name, want := range wants {
			if name == "X-Forwarded-Proto" && want == "http" {
				want = proto // what wharf sets: http, or https over TLS
			}
			if got := strings.Join(h.Values(name), ", "); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		for name := range h {
			if strings.Contains(name, "_") {
				t.Errorf("%s reached the peer", name)
			}
		}
	}
	forEachH1Engine(t, func(t *testing.T, e engine) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				seen := make(chan http.Header, 1)
				peer := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() })
				url, _ := e.start(t, Config{TrustedProxies: tt.trusted}, peer.backend(1))
				rawExchange(t, url, "GET /f HTTP/1.1\r\nHost: app.test\r\n"+tt.fields+"\r\n")
				check(t, await(t, seen, "the peer's request"), tt.want, url[:strings.Index(url, ":")])
			})
		}
	})
	// The same fields from Go's HTTP/2 client, but for the cases of a
	// Connection field: HTTP/2 has none, and a request with one is
	// malformed (TestH2spec).
	forEachH2Engine(t, func(t *testing.T, e engine) {
		for _, tt := range tests {
			if strings.Contains(tt.fields, "Connection:") {
				continue
			}
			t.Run(tt.name, func(t *testing.T) {
				seen := make(chan http.Header, 1)
				peer := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() })
				url, _ := e.start(t, Config{TrustedProxies: tt.trusted}, peer.backend(1))
				req, _ := http.NewRequest("GET", url+"/f", nil)
				req.Host = "app.test"
				for _, line := range strings.Split(tt.fields, "\r\n") {
					if name, value, ok := strings.Cut(line, ": "); ok {
						req.Header.Add(name, value)
					}
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.ProtoMajor != 2 || res.StatusCode != 200 {
					t.Fatalf("%s %d", res.Proto, res.StatusCode)
				}
				proto := "http"
				if strings.HasPrefix(url, schemeH2TLS+":") {
					proto = "https"
				}
				check(t, await(t, seen, "the peer's request"), tt.want, proto)
			})
		}
	})
}

// rawExchange sends raw to the proxy at url and reads one answer.
func rawExchange(t *testing.T, url, raw string) *http.Response {
	t.Helper()
	c, err := dialProxy(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}
