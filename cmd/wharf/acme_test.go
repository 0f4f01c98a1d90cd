package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/admin"
	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/pebbletest"
	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
)

// TestAutomaticHTTPS runs wharf against a real ACME CA (pebble, on
// 127.0.0.1) and the real engine, with a container labelled lb.tls=acme
// and one without.
func TestAutomaticHTTPS(t *testing.T) {
	cli := dockertest.Require(t)
	netName := dockertest.Network(t, cli, "acme")
	img := dockertest.WebtestImage(t, cli)
	base := dockertest.UniqueName("acme")
	app := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Name: base + "-app", Network: netName,
		Labels: map[string]string{"lb.enable": "true", "lb.port": "6969", "lb.service": "app",
			"lb.host": "app.wharf.test,*.app.wharf.test", "lb.tls": "acme"}})
	dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Name: base + "-plain", Network: netName,
		Labels: map[string]string{"lb.enable": "true", "lb.port": "6969", "lb.service": "plain", "lb.host": "plain.wharf.test"}})
	certFile, keyFile, static := writeCert(t, t.TempDir(), "static")

	// The labelled service's name gets a certificate, served by SNI on
	// --listen, while the other service's name gets the --tls-cert one;
	// --redirect-http answers the CA's HTTP-01 requests and redirects
	// everything else to HTTPS.
	t.Run("obtained and served", func(t *testing.T) {
		listen, redirect := testutil.FreeAddr(t), testutil.FreeAddr(t)
		_, tlsPort, _ := net.SplitHostPort(listen)
		ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: portOf(t, redirect), TLSPort: portOf(t, listen)})

		start := time.Now()
		in := startWharf(t, "--listen", listen, "--redirect-http", redirect, "--network", netName,
			"--acme-email", "ops@wharf.test", "--acme-ca", ca.URL, "--acme-ca-root", ca.ServerRootFile,
			"--acme-storage", t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile)
		in.logs.Wait(t, 1, 60*time.Second, "info", `"host":"app.wharf.test"`, "certificate obtained")
		t.Logf("certificate for a labelled container %s after wharf started", time.Since(start).Round(time.Millisecond))
		// At --log-level debug certmagic's own lines are in wharf's log.
		if l := in.logs.Lines("debug", `"certmagic_level"`, "app.wharf.test"); len(l) == 0 {
			t.Errorf("no certmagic line at debug level:\n%s", in.logs.String())
		}
		if w := in.logs.Lines("warn", "*.app.wharf.test", "wildcard"); len(w) != 1 {
			t.Errorf("%d warnings about the wildcard, want 1:\n%s", len(w), in.logs.String())
		}

		res := getAnswer(t, httpsClient(&tls.Config{RootCAs: ca.Roots()}, listen), "https://app.wharf.test/webtest?action=get_uuid")
		if res.status != 200 || res.server != app.Name || res.proto != 2 {
			t.Errorf("answer %+v, want 200 over HTTP/2 from %s", res, app.Name)
		}
		if cn := servedCN(t, listen, "plain.wharf.test"); cn != static.Subject.CommonName {
			t.Errorf("plain.wharf.test got certificate %q, want the --tls-cert one", cn)
		}
		if loc := redirected(t, redirect, "app.wharf.test"); loc != "https://app.wharf.test:"+tlsPort+"/webtest?action=get_uuid" {
			t.Errorf("redirected to %q", loc)
		}

		// The admin server shows the certificate, and /metrics its expiry.
		certs := certificates(t, in)
		if len(certs) != 1 || certs[0].Host != "app.wharf.test" || certs[0].NotAfter == nil ||
			!strings.HasPrefix(certs[0].Issuer, "Pebble Intermediate CA") || certs[0].LastError != "" {
			t.Errorf("/api/services certificates %+v, want app.wharf.test's from pebble", certs)
		}
		r, err := http.Get(in.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !strings.Contains(string(metrics), `wharf_certificate_expiry_seconds{host="app.wharf.test"}`) {
			t.Errorf("/metrics has no expiry for app.wharf.test")
		}

		// The dashboard lists it, in Chromium.
		b := startBrowser(t, requireChromium(t))
		b.navigate(t, in.admin+"/")
		var row []string
		shown := func() bool {
			ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
			defer cancel()
			row, _ = chromedp.Run(ctx, chromedp.Evaluate[[]string](`document.getElementById("certs").hidden ? [] :
				[...document.querySelectorAll("#certs-body tr:first-child > *")].map((c) => c.textContent)`))
			return len(row) == 5
		}
		if !testutil.Poll(30*time.Second, shown) {
			t.Fatalf("the dashboard shows no certificate: %q", row)
		}
		if row[0] != "app.wharf.test" || !strings.HasPrefix(row[1], "Pebble Intermediate CA") || !strings.Contains(row[2], " UTC (in ") || row[4] != "" {
			t.Errorf("the dashboard's certificate row %q, want app.wharf.test, its issuer and expiry, no error", row)
		}
	})

	// With the CA unreachable wharf serves: the name gets the --tls-cert
	// certificate meanwhile, the plain listener redirects, one line says
	// when the next attempt comes, and the admin server shows the error.
	t.Run("CA unreachable", func(t *testing.T) {
		listen, redirect := testutil.FreeAddr(t), testutil.FreeAddr(t)
		in := startWharf(t, "--listen", listen, "--redirect-http", redirect, "--network", netName,
			"--acme-email", "ops@wharf.test", "--acme-ca", "https://"+testutil.FreeAddr(t)+"/dir",
			"--acme-storage", t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile)
		in.logs.Wait(t, 1, 30*time.Second, "error", `"host":"app.wharf.test"`, "no certificate for app.wharf.test yet; retrying in 1m0s")
		res := getAnswer(t, httpsClient(&tls.Config{InsecureSkipVerify: true}, listen), "https://app.wharf.test/webtest?action=get_uuid")
		if res.status != 200 || res.server != app.Name {
			t.Errorf("answer %+v while the CA is unreachable, want 200 from %s", res, app.Name)
		}
		if cn := servedCN(t, listen, "app.wharf.test"); cn != static.Subject.CommonName {
			t.Errorf("app.wharf.test got certificate %q while the CA is unreachable, want the --tls-cert one", cn)
		}
		if loc := redirected(t, redirect, "app.wharf.test"); loc == "" {
			t.Error("no redirect while the CA is unreachable")
		}
		if certs := certificates(t, in); len(certs) != 1 || certs[0].NotAfter != nil || !strings.Contains(certs[0].LastError, "connection refused") {
			t.Errorf("/api/services certificates %+v, want app.wharf.test with the CA's error", certs)
		}
		if n := len(in.logs.Lines("error", "no certificate for")); n != 1 {
			t.Errorf("%d error lines, want 1 until the retry", n)
		}
	})

	// Two instances on one storage: the CA issues one certificate, which
	// both serve. The CA validates on the first instance's ports only, as
	// when replicas stand behind one address.
	t.Run("two instances, one storage", func(t *testing.T) {
		listenA, redirectA, listenB, redirectB := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
		ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: portOf(t, redirectA), TLSPort: portOf(t, listenA)})
		storage := t.TempDir()
		args := []string{"--network", netName, "--acme-email", "ops@wharf.test", "--acme-ca", ca.URL,
			"--acme-ca-root", ca.ServerRootFile, "--acme-storage", storage}
		start := time.Now()
		a := startWharf(t, append([]string{"--listen", listenA, "--redirect-http", redirectA}, args...)...)
		b := startWharf(t, append([]string{"--listen", listenB, "--redirect-http", redirectB}, args...)...)
		for _, in := range []*instance{a, b} {
			if !in.logs.Until(60*time.Second, func() bool {
				return len(in.logs.Lines("info", `"host":"app.wharf.test"`, "certificate")) > 0
			}) {
				t.Fatalf("no certificate; log:\n%s", in.logs.String())
			}
		}
		t.Logf("both instances serve a certificate %s after the first started", time.Since(start).Round(time.Millisecond))
		if n := ca.Issued(); n != 1 {
			t.Errorf("the CA issued %d certificates, want 1", n)
		}
		serial := func(addr string) string {
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "app.wharf.test", RootCAs: ca.Roots()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
		}
		if sa, sb := serial(listenA), serial(listenB); sa != sb {
			t.Errorf("the instances serve different certificates: %s and %s", sa, sb)
		}
	})
}

type answer struct {
	status, proto int
	server        string
}

// httpsClient connects to addr whatever the URL's host, with cfg.
func httpsClient(cfg *tls.Config, addr string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg, ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

// getAnswer asks for a webtest answer.
func getAnswer(t *testing.T, c *http.Client, url string) answer {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	var body struct {
		IsSuccess bool
		Server    string
	}
	json.NewDecoder(res.Body).Decode(&body)
	return answer{status: res.StatusCode, proto: res.ProtoMajor, server: body.Server}
}

// servedCN is the common name of the certificate served for sni.
func servedCN(t *testing.T, addr, sni string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// redirected returns where the plain listener at addr sends a request for
// host, or "" when it answers something else than a permanent redirect.
func redirected(t *testing.T, addr, host string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/webtest?action=get_uuid", nil)
	req.Host = host
	res, err := (&http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMovedPermanently {
		return ""
	}
	return res.Header.Get("Location")
}

func certificates(t *testing.T, in *instance) []admin.Certificate {
	t.Helper()
	var doc struct{ Certificates []admin.Certificate }
	r, err := http.Get(in.admin + "/api/services")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.Certificates
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a.Port
}

func TestHTTPSFlags(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--acme-ca", "https://ca.test/dir"}, nil, "--acme-ca needs --acme-email"},
		{nil, map[string]string{"WHARF_ACME_ALL": "true"}, "--acme-all needs --acme-email"},
		{[]string{"--redirect-http", ":80"}, nil, "--redirect-http redirects to https"},
		{[]string{"--acme-email", "ops"}, nil, `--acme-email: acme: "ops" is not an email address`},
		{[]string{"--acme-email", "ops@wharf.test", "--acme-ca", "http://ca.test/dir"}, nil, `--acme-ca: acme: CA directory "http://ca.test/dir" is not an https:// URL`},
		{[]string{"--acme-email", "ops@wharf.test", "--acme-storage", ""}, nil, "--acme-storage: acme: a storage directory is required"},
		{[]string{"--acme-email", "ops@wharf.test", "--acme-ca-root", "/nonexistent/roots.pem"}, nil, `invalid value "/nonexistent/roots.pem" for flag --acme-ca-root`},
	} {
		_, err := parseConfig(append([]string{"--upstream", "127.0.0.1:1"}, tc.args...), env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
	cfg, err := parseConfig([]string{"--upstream", "127.0.0.1:1"}, env(map[string]string{
		"WHARF_ACME_EMAIL": "ops@wharf.test", "WHARF_ACME_ALL": "true", "WHARF_REDIRECT_HTTP": ":80"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.HTTPS; !h.acmeOn() || !h.ACMEAll || h.RedirectHTTP != ":80" || h.ACMECA != "https://acme-v02.api.letsencrypt.org/directory" || h.ACMEStorage != defaultACMEStorage {
		t.Errorf("from the variables: %+v", h)
	}
}

// The names that get certificates: lb.tls=acme services' (all with
// --acme-all), exact DNS names only.
func TestACMEHostsFromTable(t *testing.T) {
	bal := lb.New()
	peer := func(id, svc string, tls lb.TLSMode, hosts ...string) lb.Backend {
		return lb.Backend{ID: id, Name: id, Service: svc, Network: "tcp", Addr: "127.0.0.1:1", Weight: 1,
			Rules: lb.Rules{Hosts: hosts, TLS: tls}}
	}
	bal.Update("test", []lb.Backend{
		peer("a", "api", lb.TLSACME, "api.example.com", "*.api.example.com", "10.0.0.1", "localhost"),
		peer("b", "web", "", "www.example.com"),
	})
	for _, tc := range []struct {
		all  bool
		want string
	}{{false, "api.example.com"}, {true, "api.example.com www.example.com"}} {
		var logs testutil.LogBuffer
		a := newAutoHTTPS(&httpsConfig{ACMEEmail: "ops@example.com", ACMEAll: tc.all}, zerolog.New(&logs))
		a.sync(bal.Table())
		a.sync(bal.Table())
		if got := strings.Join(a.hosts, " "); got != tc.want {
			t.Errorf("--acme-all=%v: hosts %q, want %q", tc.all, got, tc.want)
		}
		if n := len(logs.Lines("warn", "no certificate from the ACME CA")); n != 3 {
			t.Errorf("--acme-all=%v: %d warnings, want one for each of the 3 names skipped:\n%s", tc.all, n, logs.String())
		}
	}
	if a := newAutoHTTPS(&httpsConfig{}, zerolog.Nop()); a != nil {
		t.Error("automatic HTTPS on without --acme-email")
	}
}

// The plain listener sends every request to the same URL on HTTPS, on the
// port of --listen unless it is 443.
func TestRedirectToHTTPS(t *testing.T) {
	for _, tc := range []struct {
		port, host, target string
		status             int
		location           string
	}{
		{"443", "www.example.com", "/a/b?c=d", 301, "https://www.example.com/a/b?c=d"},
		{"443", "www.example.com:80", "/", 301, "https://www.example.com/"},
		{"8443", "www.example.com:8080", "/x", 301, "https://www.example.com:8443/x"},
		{"8443", "[::1]:80", "/", 301, "https://[::1]:8443/"},
		{"443", "", "/", 400, ""},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { serveRedirect(ctx, ln, nil, tc.port, zerolog.Nop()); close(done) }()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET "+tc.target+" HTTP/1.1\r\nHost: "+tc.host+"\r\nConnection: close\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		conn.Close()
		if res.StatusCode != tc.status || res.Header.Get("Location") != tc.location {
			t.Errorf("Host %q, port %s: %d to %q, want %d to %q", tc.host, tc.port, res.StatusCode, res.Header.Get("Location"), tc.status, tc.location)
		}
		cancel()
		<-done
	}
}
