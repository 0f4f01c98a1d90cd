package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
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

// writeCert writes a self-signed certificate for 127.0.0.1 named cn.
func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  nil,
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Write to temporaries and rename, as a certificate renewal would.
	for name, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(name+".tmp", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(name+".tmp", name); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, cert
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
	in.logs.Wait(t, 1, 5*time.Second, "info", "certificate reloaded")
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
	if got := len(in.logs.Lines("info", "certificate reloaded")); got != 1 {
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
