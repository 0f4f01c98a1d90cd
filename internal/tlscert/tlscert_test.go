package tlscert

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
)

// writePair writes a self-signed certificate for names, with an ECDSA key
// or an RSA one, named after the first name and its key type.
func writePair(t *testing.T, certFile, keyFile string, rsaKey bool, names ...string) {
	t.Helper()
	kt, cn := testutil.ECDSA, names[0]+" ecdsa"
	if rsaKey {
		kt, cn = testutil.RSA, names[0]+" rsa"
	}
	testutil.WriteCert(t, certFile, keyFile, kt, cn, names...)
}

// served runs a handshake against st as a client asking for serverName
// (empty: none), with only RSA certificates acceptable when rsaOnly, and
// returns the subject name of the certificate it got.
func served(t *testing.T, st *Store, serverName string, rsaOnly bool) string {
	t.Helper()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	srv := tls.Server(sc, &tls.Config{GetCertificate: st.GetCertificate})
	go srv.Handshake()
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: serverName}
	if rsaOnly {
		// In TLS 1.2 the suite decides the key type.
		cfg.MaxVersion = tls.VersionTLS12
		cfg.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	}
	c := tls.Client(cc, cfg)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake for %q: %v", serverName, err)
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestChosenByName(t *testing.T) {
	dir := t.TempDir()
	pair := func(name string) Pair {
		return Pair{filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")}
	}
	first, second, wild, rsaSecond := pair("first"), pair("second"), pair("wild"), pair("second-rsa")
	writePair(t, first.Cert, first.Key, false, "first.example")
	writePair(t, second.Cert, second.Key, false, "second.example", "www.second.example")
	writePair(t, wild.Cert, wild.Key, false, "*.wild.example")
	writePair(t, rsaSecond.Cert, rsaSecond.Key, true, "second.example")
	// A directory in both layouts.
	tlsDir := filepath.Join(t.TempDir(), "certs")
	writePair(t, filepath.Join(tlsDir, "flat.crt"), filepath.Join(tlsDir, "flat.key"), false, "flat.example")
	writePair(t, filepath.Join(tlsDir, "live.example", "fullchain.pem"), filepath.Join(tlsDir, "live.example", "privkey.pem"), false, "live.example")
	os.WriteFile(filepath.Join(tlsDir, "README"), []byte("not a certificate"), 0o600)

	st, err := NewStore(Source{Pairs: []Pair{first, second, wild, rsaSecond}, Dir: tlsDir})
	if err != nil {
		t.Fatal(err)
	}
	if n := st.cur.Load().Len(); n != 6 {
		t.Fatalf("%d certificates loaded, want 6", n)
	}
	for _, tt := range []struct {
		name    string
		rsaOnly bool
		want    string
	}{
		{"first.example", false, "first.example ecdsa"},
		{"SECOND.example.", false, "second.example ecdsa"},
		{"www.second.example", false, "second.example ecdsa"},
		{"second.example", true, "second.example rsa"},
		{"a.wild.example", false, "*.wild.example ecdsa"},
		{"a.b.wild.example", false, "first.example ecdsa"}, // a wildcard covers one label
		{"flat.example", false, "flat.example ecdsa"},
		{"live.example", false, "live.example ecdsa"},
		{"", false, "first.example ecdsa"},              // no SNI: the first loaded
		{"unknown.example", true, "second.example rsa"}, // the first the client can use
	} {
		if got := served(t, st, tt.name, tt.rsaOnly); got != tt.want {
			t.Errorf("%q (RSA only %v): served %q, want %q", tt.name, tt.rsaOnly, got, tt.want)
		}
	}
}

func TestReloadKeepsSetOnError(t *testing.T) {
	dir := t.TempDir()
	a := Pair{filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")}
	b := Pair{filepath.Join(dir, "b.crt"), filepath.Join(dir, "b.key")}
	writePair(t, a.Cert, a.Key, false, "a.example")
	writePair(t, b.Cert, b.Key, false, "b.example")
	st, err := NewStore(Source{Pairs: []Pair{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	// b's key replaced by another: the pair no longer matches.
	writePair(t, filepath.Join(dir, "other.crt"), b.Key, false, "other.example")
	if _, err := st.Reload(); err == nil || !strings.Contains(err.Error(), b.Cert) {
		t.Fatalf("reload with a mismatched pair: %v, want an error naming %s", err, b.Cert)
	}
	if got := served(t, st, "b.example", false); got != "b.example ecdsa" {
		t.Fatalf("after a failed reload: %q, want the previous set", got)
	}
	writePair(t, b.Cert, b.Key, false, "b.example", "new.example")
	if _, err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(t, st, "new.example", false); got != "b.example ecdsa" {
		t.Fatalf("after a good reload: %q", got)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	writePair(t, filepath.Join(dir, "lone.crt"), filepath.Join(t.TempDir(), "elsewhere.key"), false, "lone.example")
	for _, tt := range []struct {
		src  Source
		want string
	}{
		{Source{Pairs: []Pair{{"/nonexistent.pem", "/nonexistent.key"}}}, "/nonexistent.pem"},
		{Source{Dir: filepath.Join(dir, "missing")}, "missing"},
		{Source{Dir: dir}, filepath.Join(dir, "lone.key")},
		{Source{Dir: t.TempDir()}, "no certificate"},
	} {
		if _, err := Load(tt.src); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%+v): %v, want an error with %q", tt.src, err, tt.want)
		}
	}
}
