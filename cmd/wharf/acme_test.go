package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/admin"
	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/pebbletest"
	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
)

// TestAutomaticHTTPS runs wharf against a real ACME CA (pebble, on
// 127.0.0.1) and the real engine: a container labelled lb.tls=acme gets a
// certificate for its lb.host, served by SNI on --listen, while another
// service's name gets the --tls-cert certificate; --redirect-http answers
// the CA's HTTP-01 requests and redirects everything else to HTTPS.
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

	listen, redirect := testutil.FreeAddr(t), testutil.FreeAddr(t)
	_, tlsPort, _ := net.SplitHostPort(listen)
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: portOf(t, redirect), TLSPort: portOf(t, listen)})
	certFile, keyFile, static := writeCert(t, t.TempDir(), "static")

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

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Roots()}, ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, listen)
		},
	}}
	res, err := client.Get("https://app.wharf.test/webtest?action=get_uuid")
	if err != nil {
		t.Fatalf("HTTPS with the ACME certificate: %v", err)
	}
	var answer struct {
		IsSuccess bool
		Server    string
	}
	json.NewDecoder(res.Body).Decode(&answer)
	res.Body.Close()
	if res.StatusCode != 200 || !answer.IsSuccess || answer.Server != app.Name || res.ProtoMajor != 2 {
		t.Errorf("answer %s %s %+v, want 200 over HTTP/2 from %s", res.Proto, res.Status, answer, app.Name)
	}

	// Another service's name gets the --tls-cert certificate.
	conn, err := tls.Dial("tcp", listen, &tls.Config{ServerName: "plain.wharf.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != static.Subject.CommonName {
		t.Errorf("plain.wharf.test got certificate %q, want the --tls-cert one", cn)
	}
	conn.Close()

	// The plain listener redirects to the same URL on --listen.
	req, _ := http.NewRequest("GET", "http://"+redirect+"/webtest?action=get_uuid", nil)
	req.Host = "app.wharf.test"
	res, err = (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if want := "https://app.wharf.test:" + tlsPort + "/webtest?action=get_uuid"; res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != want {
		t.Errorf("redirect: %s to %q, want 308 to %q", res.Status, res.Header.Get("Location"), want)
	}

	// The admin server shows the certificate, and /metrics its expiry.
	var doc struct{ Certificates []admin.Certificate }
	r, err := http.Get(in.admin + "/api/services")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(r.Body).Decode(&doc)
	r.Body.Close()
	if len(doc.Certificates) != 1 || doc.Certificates[0].Host != "app.wharf.test" || doc.Certificates[0].NotAfter == nil ||
		!strings.HasPrefix(doc.Certificates[0].Issuer, "Pebble Intermediate CA") || doc.Certificates[0].LastError != "" {
		t.Errorf("/api/services certificates %+v, want app.wharf.test's from pebble", doc.Certificates)
	}
	r, err = http.Get(in.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(metrics), `wharf_certificate_expiry_seconds{host="app.wharf.test"}`) {
		t.Errorf("/metrics has no expiry for app.wharf.test")
	}
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
		{[]string{"--redirect-http", ":80"}, nil, "--redirect-http needs TLS on --listen"},
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
