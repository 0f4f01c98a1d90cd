package acme

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/internal/pebbletest"
	"github.com/wharflb/wharf/internal/testutil"
)

// site is what a load balancer puts around a Manager: a TLS listener that
// takes its certificates from it and a plain HTTP listener that answers
// HTTP-01 challenges through it, both on 127.0.0.1.
type site struct {
	tlsLn, httpLn net.Listener
	alpnHellos    atomic.Int64 // TLS-ALPN-01 handshakes
	httpChecks    atomic.Int64 // HTTP-01 requests answered
	plain         atomic.Int64 // other plain HTTP requests
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func newSite(t *testing.T) *site {
	return &site{tlsLn: listen(t), httpLn: listen(t)}
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// serve starts both listeners with m.
func (s *site) serve(t *testing.T, m *Manager) {
	t.Helper()
	tlsCfg := &tls.Config{
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if len(h.SupportedProtos) == 1 && h.SupportedProtos[0] == ALPNProto {
				s.alpnHellos.Add(1)
			}
			return m.GetCertificate(h)
		},
		NextProtos: []string{"http/1.1", ALPNProto},
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.Host)
	}), ErrorLog: quietLog()}
	go hs.Serve(tls.NewListener(s.tlsLn, tlsCfg))
	t.Cleanup(func() { hs.Close() })

	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.plain.Add(1)
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	challenge := m.HTTPChallengeHandler(plain)
	ps := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			s.httpChecks.Add(1)
		}
		challenge.ServeHTTP(w, r)
	}), ErrorLog: quietLog()}
	go ps.Serve(s.httpLn)
	t.Cleanup(func() { ps.Close() })
}

type managerOpts struct {
	http, tls bool
	storage   string
	ca        *pebbletest.CA
	caURL     string         // without ca: the CA's directory
	caRoots   *x509.CertPool // without ca: its HTTPS roots
}

func newManager(t *testing.T, s *site, o managerOpts, logs *testutil.LogBuffer) *Manager {
	t.Helper()
	cfg := Config{Email: "ops@wharf.test", CA: o.caURL, CARoots: o.caRoots, Storage: o.storage,
		RetryFirst: 100 * time.Millisecond, RetryMax: time.Second, RenewCheckInterval: 500 * time.Millisecond,
		Log: zerolog.New(logs).Level(zerolog.InfoLevel)}
	if o.ca != nil {
		cfg.CA, cfg.CARoots = o.ca.URL, o.ca.ServerRoots
	}
	if o.storage == "" {
		cfg.Storage = t.TempDir()
	}
	if o.http {
		cfg.HTTPAddr = s.httpLn.Addr().String()
	}
	if o.tls {
		cfg.TLSAddr = s.tlsLn.Addr().String()
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// leaf does a TLS handshake with host as SNI, verifying the chain against
// the CA's root, and returns the certificate served.
func leaf(t *testing.T, ca *pebbletest.CA, addr, host string) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: host, RootCAs: ca.Roots()})
	if err != nil {
		t.Fatalf("TLS to %s as %s: %v", addr, host, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func waitObtained(t *testing.T, logs *testutil.LogBuffer, host string) {
	t.Helper()
	logs.Wait(t, 1, 60*time.Second, "info", `"host":"`+host+`"`, "certificate obtained")
}

// A host gets a certificate through either challenge, alone enabled, and
// a handshake with its name gets a chain that verifies against the CA's
// root.
func TestObtains(t *testing.T) {
	for _, tc := range []struct {
		challenge string
		opts      managerOpts
		used      func(*site) int64 // challenge requests answered
		other     func(*site) int64 // those of the other challenge
	}{
		{"tls-alpn-01", managerOpts{tls: true}, func(s *site) int64 { return s.alpnHellos.Load() }, func(s *site) int64 { return s.httpChecks.Load() }},
		{"http-01", managerOpts{http: true}, func(s *site) int64 { return s.httpChecks.Load() }, func(s *site) int64 { return s.alpnHellos.Load() }},
	} {
		t.Run(tc.challenge, func(t *testing.T) {
			s := newSite(t)
			ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(s.httpLn), TLSPort: port(s.tlsLn)})
			var logs testutil.LogBuffer
			tc.opts.ca = ca
			m := newManager(t, s, tc.opts, &logs)
			host := tc.challenge + ".wharf.test"

			start := time.Now()
			m.SetHosts([]string{host})
			waitObtained(t, &logs, host)
			t.Logf("certificate through %s in %s", tc.challenge, time.Since(start).Round(time.Millisecond))

			cert := leaf(t, ca, s.tlsLn.Addr().String(), host)
			if len(cert.DNSNames) != 1 || cert.DNSNames[0] != host {
				t.Errorf("certificate names %v, want [%s]", cert.DNSNames, host)
			}
			if tc.used(s) == 0 || tc.other(s) != 0 {
				t.Errorf("%d %s requests and %d of the other challenge; want %s only", tc.used(s), tc.challenge, tc.other(s), tc.challenge)
			}
			st := m.Status()
			if len(st) != 1 || st[0].Host != host || !strings.HasPrefix(st[0].Issuer, "Pebble Intermediate CA") ||
				!st[0].NotAfter.Equal(cert.NotAfter) || st[0].LastError != "" || st[0].LastAttempt.Before(start) {
				t.Errorf("Status() = %+v; want the certificate served (issuer %q, not after %s)", st, cert.Issuer.CommonName, cert.NotAfter)
			}
			// At info, certmagic's own step-by-step lines stay out of the log.
			if l := logs.Lines("", `"certmagic_level"`); len(l) != 0 {
				t.Errorf("certmagic's lines logged at info level:\n%s", testutil.Raws(l))
			}
			// A name that is not the Manager's gets no certificate from it.
			if c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.wharf.test"}); c != nil || err != nil {
				t.Errorf("GetCertificate(other) = %v, %v; want nil, nil", c, err)
			}
			// Everything else on the plain listener goes to the handler behind.
			res, err := noRedirects.Get("http://" + s.httpLn.Addr().String() + "/x?y=1")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusPermanentRedirect || s.plain.Load() != 1 {
				t.Errorf("plain request: %s, %d passed on; want 308, 1", res.Status, s.plain.Load())
			}
		})
	}
}

// validity is the lifetime of the certificates of the renewal tests.
const validity = 12 * time.Second

// shortLived runs a site whose CA issues certificates for validity, and
// waits until host has one.
func shortLived(t *testing.T, host string) (*site, *pebbletest.CA, *Manager, *testutil.LogBuffer) {
	t.Helper()
	s := newSite(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(s.httpLn), TLSPort: port(s.tlsLn), Validity: validity})
	logs := &testutil.LogBuffer{}
	m := newManager(t, s, managerOpts{tls: true, http: true, ca: ca}, logs)
	m.SetHosts([]string{host})
	waitObtained(t, logs, host)
	return s, ca, m, logs
}

// A certificate is renewed before it expires, and the renewed one is
// served to new connections while a keep-alive client that connected
// before keeps being answered on its connection, without a failure.
func TestRenewsBeforeExpiry(t *testing.T) {
	const host = "renew.wharf.test"
	s, ca, m, logs := shortLived(t, host)
	obtained := time.Now()

	// A keep-alive client on one connection, made with the first
	// certificate, asking until the test ends.
	kc, err := tls.Dial("tcp", s.tlsLn.Addr().String(), &tls.Config{ServerName: host, RootCAs: ca.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	first := kc.ConnectionState().PeerCertificates[0]
	var answered atomic.Int64
	var failure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// New connections meanwhile: each handshake gets a certificate that
	// verifies, the old one until the new one is in place.
	var handshakes atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := tls.Dial("tcp", s.tlsLn.Addr().String(), &tls.Config{ServerName: host, RootCAs: ca.Roots()})
			if err != nil {
				failure.Store("new connection: " + err.Error())
				return
			}
			c.Close()
			handshakes.Add(1)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		br := bufio.NewReader(kc)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := io.WriteString(kc, "GET / HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
				failure.Store("keep-alive connection: " + err.Error())
				return
			}
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				failure.Store("keep-alive connection: " + err.Error())
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				failure.Store(res.Status)
				return
			}
			answered.Add(1)
		}
	}()

	logs.Wait(t, 1, 2*validity, "info", `"host":"`+host+`"`, "certificate renewed")
	renewedAfter := time.Since(obtained)
	var second *x509.Certificate
	testutil.Eventually(t, validity, "the renewed certificate served", func() bool {
		second = leaf(t, ca, s.tlsLn.Addr().String(), host)
		return second.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	before := answered.Load()
	testutil.Eventually(t, 5*time.Second, "the keep-alive client answered after the renewal", func() bool {
		return answered.Load() > before+10
	})
	close(stop)
	wg.Wait()
	t.Logf("renewed %s after the first certificate (lifetime %s); the keep-alive client had %d answers on its connection, and %d new connections verified",
		renewedAfter.Round(time.Millisecond), validity, answered.Load(), handshakes.Load())
	if f := failure.Load(); f != nil {
		t.Fatalf("%v", f)
	}
	if !second.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %s, the first %s", second.NotAfter, first.NotAfter)
	}
	if !obtained.Add(renewedAfter).Before(first.NotAfter) {
		t.Errorf("renewed %s after it was obtained, when the first certificate had expired (%s)", renewedAfter, first.NotAfter)
	}
	if st := m.Status(); len(st) != 1 || !st[0].NotAfter.Equal(second.NotAfter) {
		t.Errorf("Status() = %+v, want the renewed certificate's expiry %s", st, second.NotAfter)
	}
}

// A renewal the CA refuses is one error line and shows in the status,
// and the current certificate is served meanwhile.
func TestRenewalRefused(t *testing.T) {
	// certmagic keeps a failed renewal's backoff per name for the
	// process: a name of its own for each run.
	host := fmt.Sprintf("stuck-%d.wharf.test", runs.Add(1))
	s, ca, m, logs := shortLived(t, host)
	first := leaf(t, ca, s.tlsLn.Addr().String(), host)
	if err := ca.Block(host); err != nil {
		t.Fatal(err)
	}
	lines := logs.Wait(t, 1, 2*validity, "error", `"host":"`+host+`"`, "not renewed")
	if !strings.Contains(lines[0].Raw, "rejectedIdentifier") {
		t.Errorf("the error line does not give the CA's reason: %s", lines[0].Raw)
	}
	if time.Now().Before(first.NotAfter) {
		if got := leaf(t, ca, s.tlsLn.Addr().String(), host); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Errorf("serving certificate %s after a failed renewal, want the current one %s", got.SerialNumber, first.SerialNumber)
		}
	}
	st := m.Status()
	if len(st) != 1 || !strings.Contains(st[0].LastError, "rejectedIdentifier") || !st[0].NotAfter.Equal(first.NotAfter) {
		t.Errorf("Status() = %+v, want the refusal and the current certificate's expiry %s", st, first.NotAfter)
	}
	if n := len(logs.Lines("error", "not renewed")); n != 1 {
		t.Errorf("%d error lines for one failed renewal, want 1:\n%s", n, logs.String())
	}
}

// With the CA down at start the site keeps serving plain HTTP, each failed
// attempt is one log line, and the certificate comes once the CA is up.
func TestCADownAtStart(t *testing.T) {
	s := newSite(t)
	caAddr := testutil.FreeAddr(t)
	var logs testutil.LogBuffer
	// The CA's address and HTTPS root are chosen now; it starts later.
	caURL := "https://" + caAddr + "/dir"
	root := pebbletest.NewServerRoot(t)
	m := newManager(t, s, managerOpts{http: true, tls: true, caURL: caURL, caRoots: root.Pool}, &logs)
	const host = "late.wharf.test"
	start := time.Now()
	m.SetHosts([]string{host})
	lines := logs.Wait(t, 2, 30*time.Second, "error", `"host":"`+host+`"`, "no certificate for")
	for i, l := range lines[:2] {
		if got := l.Fields["attempt"]; got != float64(i+1) {
			t.Errorf("error line %d has attempt %v: %s", i, got, l.Raw)
		}
	}
	if st := m.Status(); len(st) != 1 || st[0].LastError == "" || !st[0].NotAfter.IsZero() {
		t.Errorf("Status() while the CA is down = %+v, want a last error and no certificate", st)
	}
	res, err := noRedirects.Get("http://" + s.httpLn.Addr().String() + "/")
	if err != nil {
		t.Fatalf("plain HTTP while the CA is down: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("plain HTTP while the CA is down: %s, want 308", res.Status)
	}

	ln, err := net.Listen("tcp", caAddr)
	if err != nil {
		t.Fatalf("the CA's address was taken meanwhile: %v", err)
	}
	up := time.Now()
	ca := pebbletest.Start(t, pebbletest.Options{Listener: ln, HTTPPort: port(s.httpLn), TLSPort: port(s.tlsLn), ServerRoot: root})
	if ca.URL != "https://"+caAddr+"/dir" {
		t.Fatalf("CA at %s, want %s", ca.URL, caURL)
	}
	waitObtained(t, &logs, host)
	t.Logf("%d failed attempts in %s while the CA was down; certificate %s after it came up",
		len(logs.Lines("error", "no certificate for")), up.Sub(start).Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
	leaf(t, ca, s.tlsLn.Addr().String(), host)
	if st := m.Status(); len(st) != 1 || st[0].LastError != "" || st[0].NotAfter.IsZero() {
		t.Errorf("Status() after the CA came up = %+v, want a certificate and no error", st)
	}
}

// Two instances sharing one storage order one certificate, and both serve
// it. The CA validates on the first one's ports only, as when several
// replicas stand behind one address: the first answers the second's
// challenges from the shared storage.
func TestTwoInstancesOneStorage(t *testing.T) {
	a, b := newSite(t), newSite(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(a.httpLn), TLSPort: port(a.tlsLn)})
	storage := t.TempDir()
	var logsA, logsB testutil.LogBuffer
	ma := newManager(t, a, managerOpts{http: true, tls: true, ca: ca, storage: storage}, &logsA)
	mb := newManager(t, b, managerOpts{http: true, tls: true, ca: ca, storage: storage}, &logsB)
	const host = "shared.wharf.test"
	start := time.Now()
	ma.SetHosts([]string{host})
	mb.SetHosts([]string{host})
	for _, l := range []*testutil.LogBuffer{&logsA, &logsB} {
		if !l.Until(60*time.Second, func() bool { return len(l.Lines("info", `"host":"`+host+`"`, "certificate")) > 0 }) {
			t.Fatalf("no certificate; logs:\n%s\n%s\nCA:\n%s", logsA.String(), logsB.String(), ca.Log())
		}
	}
	t.Logf("both instances serve a certificate after %s", time.Since(start).Round(time.Millisecond))
	if n := ca.Issued(); n != 1 {
		t.Errorf("the CA issued %d certificates, want 1", n)
	}
	ca1, cb := leaf(t, ca, a.tlsLn.Addr().String(), host), leaf(t, ca, b.tlsLn.Addr().String(), host)
	if ca1.SerialNumber.Cmp(cb.SerialNumber) != 0 {
		t.Errorf("the instances serve different certificates: %s and %s", ca1.SerialNumber, cb.SerialNumber)
	}
	obtained := len(logsA.Lines("info", "certificate obtained")) + len(logsB.Lines("info", "certificate obtained"))
	loaded := len(logsA.Lines("info", "certificate loaded from storage")) + len(logsB.Lines("info", "certificate loaded from storage"))
	if obtained != 1 || loaded != 1 {
		t.Errorf("%d instances obtained and %d loaded the certificate, want 1 and 1", obtained, loaded)
	}

	// A name only the second instance wants: the CA still validates on
	// the first one's ports, which answers from the shared storage.
	challenges := a.httpChecks.Load() + a.alpnHellos.Load()
	mb.SetHosts([]string{host, "only-b.wharf.test"})
	waitObtained(t, &logsB, "only-b.wharf.test")
	if a.httpChecks.Load()+a.alpnHellos.Load() == challenges || b.httpChecks.Load()+b.alpnHellos.Load() != 0 {
		t.Errorf("challenge requests: %d HTTP-01 and %d TLS-ALPN-01 at the first instance, %d and %d at the second; want them at the first only",
			a.httpChecks.Load(), a.alpnHellos.Load(), b.httpChecks.Load(), b.alpnHellos.Load())
	}
	leaf(t, ca, b.tlsLn.Addr().String(), "only-b.wharf.test")
}

// A host the CA refuses is retried with backoff, one log line each time,
// and does not keep the others from their certificates.
func TestRefusedHost(t *testing.T) {
	s := newSite(t)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(s.httpLn), TLSPort: port(s.tlsLn)})
	if err := ca.Block("refused.wharf.test"); err != nil {
		t.Fatal(err)
	}
	var logs testutil.LogBuffer
	m := newManager(t, s, managerOpts{http: true, tls: true, ca: ca}, &logs)
	m.SetHosts([]string{"refused.wharf.test", "fine.wharf.test"})
	waitObtained(t, &logs, "fine.wharf.test")
	lines := logs.Wait(t, 3, 30*time.Second, "error", `"host":"refused.wharf.test"`)
	var prev time.Duration
	for i, l := range lines[:3] {
		if l.Fields["attempt"] != float64(i+1) || !strings.Contains(l.Raw, "rejectedIdentifier") {
			t.Errorf("error line %d: %s; want attempt %d and the CA's reason", i, l.Raw, i+1)
		}
		d, _ := time.ParseDuration(fmt.Sprint(l.Fields["retry_in"]) + "ms")
		if i > 0 && d <= prev && d < time.Second {
			t.Errorf("retry_in %s after %s: want a growing backoff", d, prev)
		}
		prev = d
	}
	st := m.Status()
	if len(st) != 2 || st[1].Host != "refused.wharf.test" || !strings.Contains(st[1].LastError, "rejectedIdentifier") || !st[1].NotAfter.IsZero() {
		t.Errorf("Status() = %+v, want refused.wharf.test with the CA's reason", st)
	}
	leaf(t, ca, s.tlsLn.Addr().String(), "fine.wharf.test")

	// A host no longer wanted is no longer tried.
	m.SetHosts([]string{"fine.wharf.test"})
	if st := m.Status(); len(st) != 1 || st[0].Host != "fine.wharf.test" {
		t.Errorf("Status() after dropping a host = %+v", st)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	ok := Config{Email: "a@b.test", Storage: "/tmp/x", TLSAddr: "127.0.0.1:443"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no email", func(c *Config) { c.Email = "" }, "email address is required"},
		{"bad email", func(c *Config) { c.Email = "ops" }, `"ops" is not an email address`},
		{"no storage", func(c *Config) { c.Storage = "" }, "storage directory is required"},
		{"plain CA", func(c *Config) { c.CA = "http://ca.test/dir" }, "is not an https:// URL"},
		{"no listener", func(c *Config) { c.TLSAddr = "" }, "no listener for a challenge"},
		{"no port", func(c *Config) { c.HTTPAddr = "localhost" }, "has no port"},
	} {
		c := ok
		tc.edit(&c)
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	m, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	defer m.cache.Stop() // Run would stop it
	if m.cfg.CA != LetsEncrypt {
		t.Errorf("default CA %q, want Let's Encrypt's", m.cfg.CA)
	}
}

func TestBackoff(t *testing.T) {
	m := &Manager{cfg: Config{RetryFirst: time.Minute, RetryMax: time.Hour}}
	var got []string
	for n := 1; n <= 8; n++ {
		got = append(got, m.backoff(n).String())
	}
	if want := "1m0s 2m0s 4m0s 8m0s 16m0s 32m0s 1h0m0s 1h0m0s"; strings.Join(got, " ") != want {
		t.Errorf("backoff = %s, want %s", strings.Join(got, " "), want)
	}
}

// runs numbers the runs of a test in this process.
var runs atomic.Int64

var noRedirects = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
