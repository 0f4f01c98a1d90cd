package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"

	"github.com/wharflb/wharf/lb"
)

// The HTTP/2 engines of the tests: the fast path's HTTP/2 front end over
// TLS (ALPN h2) and as h2c with prior knowledge on a plain listener.
// Their URLs have the schemes h2s:// and h2c://, which the tests' default
// client sends through Go's HTTP/2 client, so that a test written with
// http.Get runs over HTTP/2 unchanged.
const (
	schemeH2TLS = "h2s"
	schemeH2C   = "h2c"
)

// h2RoundTripper sends requests of the h2s and h2c schemes over HTTP/2.
type h2RoundTripper struct{ tls, plain *http2.Transport }

func newH2RoundTripper() *h2RoundTripper {
	// They do not ask for gzip on their own, so that what a test sends
	// is what the proxy gets.
	return &h2RoundTripper{
		tls: &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: testRoots}, DisableCompression: true},
		plain: &http2.Transport{AllowHTTP: true, DisableCompression: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}},
	}
}

func (rt *h2RoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	u := *req.URL
	r.URL = &u
	if u.Scheme == schemeH2C {
		u.Scheme = "http"
		return rt.plain.RoundTrip(r)
	}
	u.Scheme = "https"
	return rt.tls.RoundTrip(r)
}

func (rt *h2RoundTripper) CloseIdleConnections() {
	rt.tls.CloseIdleConnections()
	rt.plain.CloseIdleConnections()
}

var h2Tests = newH2RoundTripper()

// registerH2 lets tr send requests of the h2s and h2c schemes.
func registerH2(tr *http.Transport) {
	tr.RegisterProtocol(schemeH2TLS, h2Tests)
	tr.RegisterProtocol(schemeH2C, h2Tests)
}

// isH2 reports whether url is of an HTTP/2 engine.
func isH2(url string) bool {
	return strings.HasPrefix(url, schemeH2TLS+"://") || strings.HasPrefix(url, schemeH2C+"://")
}

func newFastH2Proxy(t testing.TB, cfg Config, backends ...lb.Backend) (string, *lb.Balancer) {
	t.Helper()
	url, _, bal := startFastTLS(t, cfg, fastHooks{}, backends...)
	t.Cleanup(h2Tests.CloseIdleConnections)
	return schemeH2TLS + strings.TrimPrefix(url, "https"), bal
}

func newFastH2CProxy(t testing.TB, cfg Config, backends ...lb.Backend) (string, *lb.Balancer) {
	t.Helper()
	url, _, bal := startFast(t, cfg, fastHooks{}, backends...)
	t.Cleanup(h2Tests.CloseIdleConnections)
	return schemeH2C + strings.TrimPrefix(url, "http"), bal
}

// BenchmarkProxyPathHTTP2 is eight streams at a time on one HTTP/2
// connection over TLS: ns/op is the time per request, client included,
// and allocs/op the whole process's allocations per request.
func BenchmarkProxyPathHTTP2(b *testing.B) {
	url, _, _ := startFastTLS(b, Config{}, fastHooks{}, rawBackend(b))
	client := h2Client(b)
	b.SetParallelism(4) // 4 × GOMAXPROCS streams
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Get(url + "/")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}
