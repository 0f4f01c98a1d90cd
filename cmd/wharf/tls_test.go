package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
)

// writeCert writes a self-signed certificate for localhost named cn, as
// dir/cert.pem and dir/key.pem.
func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	return certFile, keyFile, writeCertAs(t, certFile, keyFile, cn, "localhost")
}

// writeCertAs writes a self-signed ECDSA certificate named cn for names.
func writeCertAs(t *testing.T, certFile, keyFile, cn string, names ...string) *x509.Certificate {
	t.Helper()
	return testutil.WriteCert(t, certFile, keyFile, testutil.ECDSA, cn, names...)
}

func TestTLSWithHTTP2AndReloadOnSIGHUP(t *testing.T) {
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s forwarded-proto=%s", r.Proto, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer peer.Close()
	dir := t.TempDir()
	certFile, keyFile, first := writeCert(t, dir, "first")
	in := startWharf(t, "--upstream", strings.TrimPrefix(peer.URL, "http://"), "--tls-cert", certFile, "--tls-key", keyFile)
	url := "https://localhost" + in.url[strings.LastIndex(in.url, ":"):]

	client := func(trust *x509.Certificate) *http.Client {
		pool := x509.NewCertPool()
		pool.AddCert(trust)
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
		}}
	}
	c1 := client(first)
	res, err := c1.Get(url + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Fatalf("client spoke %s, want HTTP/2 by ALPN", res.Proto)
	}
	if string(body) != "proto=HTTP/1.1 forwarded-proto=https" {
		t.Fatalf("peer saw %q", body)
	}

	// Renew the certificate and send SIGHUP: new connections get the new
	// one; the HTTP/2 connection opened before keeps working.
	_, _, second := writeCert(t, dir, "second")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// wharf logs the reload once the new certificate is in place.
	in.logs.Wait(t, 1, 5*time.Second, "info", "certificates reloaded")
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	conn.Close()
	if cn != second.Subject.CommonName {
		t.Fatalf("a new connection got %q after the reload, want %q", cn, second.Subject.CommonName)
	}
	res, err = c1.Get(url + "/y") // reuses the connection made with the first certificate
	if err != nil {
		t.Fatalf("existing connection dropped by the reload: %v", err)
	}
	res.Body.Close()
	if got := len(in.logs.Lines("info", "certificates reloaded")); got != 1 {
		t.Fatalf("%d reload log lines, want 1", got)
	}
}

// TestHandshakeErrorsInTheLog checks that a failed handshake (here a
// plain-HTTP client on the TLS port) becomes a debug line of wharf's JSON
// log naming the client, not free text on stderr.
func TestHandshakeErrorsInTheLog(t *testing.T) {
	peer := testutil.NewBackend(t, "web1", nil)
	certFile, keyFile, _ := writeCert(t, t.TempDir(), "wharf")
	in := startWharf(t, "--upstream", peer.Addr(), "--tls-cert", certFile, "--tls-key", keyFile)
	res, err := http.Get(in.url + "/") // plain HTTP to the TLS port
	if err == nil {
		res.Body.Close()
	}
	var line []testutil.LogLine
	if !testutil.Poll(5*time.Second, func() bool { line = in.logs.Lines("debug", "TLS handshake error"); return len(line) > 0 }) {
		t.Fatalf("no debug line about the handshake; log:\n%s", in.logs.String())
	}
	if client, _ := line[0].Fields["client"].(string); !strings.HasPrefix(client, "127.0.0.1:") {
		t.Errorf("line %s does not name the client", line[0].Raw)
	}
}

// servedName is the subject name of the certificate wharf at addr serves
// to a client asking for serverName.
func servedName(t *testing.T, addr, serverName string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: serverName})
	if err != nil {
		t.Fatalf("handshake for %s: %v", serverName, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestCertificatesBySNI: pairs given as flags and a directory are served
// by the name the client asks for; HTTP/1.1 in TLS reaches the peer; a
// SIGHUP with a bad file keeps them all and logs one error, and a good
// one picks up a new file of the directory.
func TestCertificatesBySNI(t *testing.T) {
	peer := testutil.NewBackend(t, "web1", nil)
	dir, tlsDir := t.TempDir(), t.TempDir()
	aCert, aKey := filepath.Join(dir, "a.pem"), filepath.Join(dir, "a-key.pem")
	bCert, bKey := filepath.Join(dir, "b.pem"), filepath.Join(dir, "b-key.pem")
	writeCertAs(t, aCert, aKey, "a", "a.test", "localhost")
	writeCertAs(t, bCert, bKey, "b", "b.test", "*.b.test")
	writeCertAs(t, filepath.Join(tlsDir, "c.crt"), filepath.Join(tlsDir, "c.key"), "c", "c.test")
	writeCertAs(t, filepath.Join(tlsDir, "d.test", "fullchain.pem"), filepath.Join(tlsDir, "d.test", "privkey.pem"), "d", "d.test")
	in := startWharf(t, "--upstream", peer.Addr(), "--tls-cert", aCert+","+bCert, "--tls-key", aKey, "--tls-key", bKey, "--tls-dir", tlsDir)
	addr := strings.TrimPrefix(in.url, "http://")
	want := map[string]string{"a.test": "a", "b.test": "b", "www.b.test": "b", "c.test": "c", "d.test": "d", "": "a", "other.test": "a"}
	check := func(when string) {
		t.Helper()
		for name, cn := range want {
			if got := servedName(t, addr, name); got != cn {
				t.Errorf("%s: a client asking for %q got certificate %q, want %q", when, name, got, cn)
			}
		}
	}
	check("at start")

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "a.test"}}}
	res, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Proto != "HTTP/1.1" || res.StatusCode != 200 || string(body) != "web1" {
		t.Fatalf("HTTP/1.1 in TLS: %s %d %q", res.Proto, res.StatusCode, body)
	}

	// A key that no longer matches its certificate: nothing changes.
	writeCertAs(t, filepath.Join(dir, "stray.pem"), bKey, "stray", "stray.test")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	lines := in.logs.Wait(t, 1, 5*time.Second, "error", "certificates not reloaded")
	if !strings.Contains(lines[0].Raw, bCert) {
		t.Errorf("the error %s does not name %s", lines[0].Raw, bCert)
	}
	check("after a bad reload")

	// Fixed, and a new file in the directory: both in force.
	writeCertAs(t, bCert, bKey, "b", "b.test", "*.b.test")
	writeCertAs(t, filepath.Join(tlsDir, "e.crt"), filepath.Join(tlsDir, "e.key"), "e", "e.test")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	in.logs.Wait(t, 1, 5*time.Second, "info", "certificates reloaded")
	want["e.test"] = "e"
	check("after a good reload")
	if n := len(in.logs.Lines("error", "certificates not reloaded")); n != 1 {
		t.Errorf("%d error lines about the bad reload, want 1", n)
	}
}

// TestRedirectHTTP: --redirect-http answers on a plain listener with a
// permanent redirect to --listen's port over https.
func TestRedirectHTTP(t *testing.T) {
	peer := testutil.NewBackend(t, "web1", nil)
	certFile, keyFile, _ := writeCert(t, t.TempDir(), "wharf")
	redirect := testutil.FreeAddr(t)
	in := startWharf(t, "--upstream", peer.Addr(), "--tls-cert", certFile, "--tls-key", keyFile, "--redirect-http", redirect)
	port := in.url[strings.LastIndex(in.url, ":")+1:]
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for method, code := range map[string]int{"GET": 301, "POST": 308} {
		req, _ := http.NewRequest(method, "http://"+redirect+"/a/b?c=d", strings.NewReader("x"))
		req.Host = "shop.example:8080"
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if loc := res.Header.Get("Location"); res.StatusCode != code || loc != "https://shop.example:"+port+"/a/b?c=d" {
			t.Errorf("%s: %d %q, want %d to https on port %s", method, res.StatusCode, loc, code, port)
		}
	}
}

// TestSessionTicketsFlag: a returning client resumes its TLS session by
// default, and makes a full handshake with --tls-session-tickets=false.
func TestSessionTicketsFlag(t *testing.T) {
	peer := testutil.NewBackend(t, "web1", nil)
	certFile, keyFile, _ := writeCert(t, t.TempDir(), "wharf")
	for _, tickets := range []bool{true, false} {
		in := startWharf(t, "--upstream", peer.Addr(), "--tls-cert", certFile, "--tls-key", keyFile, fmt.Sprintf("--tls-session-tickets=%v", tickets))
		addr := strings.TrimPrefix(in.url, "http://")
		cache := tls.NewLRUClientSessionCache(4)
		resumed := false
		for range 2 {
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ClientSessionCache: cache}}}
			res, err := client.Get("https://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body) // a TLS 1.3 ticket comes after the handshake
			res.Body.Close()
			resumed = res.TLS.DidResume
			client.CloseIdleConnections()
		}
		if resumed != tickets {
			t.Errorf("--tls-session-tickets=%v: the second connection resumed: %v", tickets, resumed)
		}
	}
}
