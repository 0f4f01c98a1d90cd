package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy/internal/reference"
)

// The proxies under test serve an ECDSA P-256 certificate, or an RSA one,
// and every client of the tests trusts both.
var (
	ecdsaCert, rsaCert = func() (tls.Certificate, tls.Certificate) {
		e, err := testutil.SelfSigned(testutil.ECDSA, "wharf test", "127.0.0.1", "localhost")
		if err != nil {
			panic(err)
		}
		r, err := testutil.SelfSigned(testutil.RSA, "wharf test", "127.0.0.1", "localhost")
		if err != nil {
			panic(err)
		}
		return e, r
	}()
	testRoots = func() *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(ecdsaCert.Leaf)
		p.AddCert(rsaCert.Leaf)
		return p
	}()
)

// testTransport is an HTTP client transport that trusts the proxies'
// certificates and speaks HTTP/1.1 in TLS, the protocol of the fast path.
func testTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: testRoots, NextProtos: []string{"http/1.1"}}
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	registerH2(tr)
	return tr
}

func init() {
	// The tests use the default client, and gorilla's default dialer, for
	// every engine: https:// and wss:// reach the TLS one.
	http.DefaultTransport = testTransport()
	websocket.DefaultDialer.TLSClientConfig = &tls.Config{RootCAs: testRoots, NextProtos: []string{"http/1.1"}}
}

// tlsServerConfig is the proxies' TLS configuration in the tests: TLS 1.2
// and 1.3, the ECDSA certificate unless the client only takes RSA.
func tlsServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ecdsaCert, rsaCert}, MinVersion: tls.VersionTLS12}
}

// newProxyTLS is newProxy over TLS: net/http's server with the reference
// engine, HTTP/1.1 only.
func newProxyTLS(t testing.TB, cfg Config, backends ...lb.Backend) (string, *lb.Balancer) {
	t.Helper()
	bal := lb.New(lb.OnRemove(reference.ClosePeer))
	bal.Update("test", backends)
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = reference.NewServer(reference.New(bal, referenceConfig(cfg)))
	srv.TLS = tlsServerConfig()
	srv.TLS.NextProtos = []string{"http/1.1"}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, bal
}

// startFastTLS serves the fast path over TLS for backends, HTTP/2
// offered by ALPN, and returns its https:// URL.
func startFastTLS(t testing.TB, cfg Config, hooks fastHooks, backends ...lb.Backend) (string, *FastServer, *lb.Balancer) {
	t.Helper()
	return startFastWith(t, tlsServerConfig(), cfg, hooks, backends...)
}

// fastStart starts the fast path, plain or over TLS.
type fastStart func(t testing.TB, cfg Config, hooks fastHooks, backends ...lb.Backend) (string, *FastServer, *lb.Balancer)

// fastStarts are the fast path's client protocols, for the tests of the
// fast path alone.
var fastStarts = []struct {
	name  string
	start fastStart
}{{"plain", startFast}, {"tls", startFastTLS}}

func newFastTLSProxy(t testing.TB, cfg Config, backends ...lb.Backend) (string, *lb.Balancer) {
	t.Helper()
	url, _, bal := startFastTLS(t, cfg, fastHooks{}, backends...)
	return url, bal
}

// dialProxy connects to the proxy at url (http:// or https://) as a raw
// HTTP/1.1 client would, TLS handshake done.
func dialProxy(url string) (net.Conn, error) {
	if addr, ok := strings.CutPrefix(url, "https://"); ok {
		return tls.DialWithDialer(&net.Dialer{Timeout: waitBound}, "tcp", addr,
			&tls.Config{RootCAs: testRoots, NextProtos: []string{"http/1.1"}})
	}
	return net.Dial("tcp", strings.TrimPrefix(url, "http://"))
}

// tcpOf is the TCP connection under c, TLS or not.
func tcpOf(c net.Conn) *net.TCPConn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn().(*net.TCPConn)
	}
	return c.(*net.TCPConn)
}
