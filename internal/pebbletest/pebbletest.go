// Package pebbletest runs Let's Encrypt's test CA, pebble, inside a test:
// a real ACME server (RFC 8555) on 127.0.0.1 that validates HTTP-01 and
// TLS-ALPN-01 challenges by connecting to the ports it is given, with a
// DNS server of its own that resolves every name to 127.0.0.1. Nothing
// leaves the machine.
package pebbletest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// Options say where the CA listens and how it validates.
type Options struct {
	// Listener serves the ACME directory; nil listens on 127.0.0.1:0. A
	// test that starts the CA late reserves its address with a listener
	// it hands over.
	Listener net.Listener

	// HTTPPort and TLSPort are where the CA connects on 127.0.0.1 to
	// validate HTTP-01 and TLS-ALPN-01 challenges (port 80 and 443 for a
	// real CA).
	HTTPPort, TLSPort int

	// ServerRoot is the root of the CA's own HTTPS certificate; nil makes
	// one. A test that configures a client before the CA starts makes it
	// first with NewServerRoot.
	ServerRoot *ServerRoot

	// Validity is the lifetime of the certificates it issues, at least a
	// second; 0 is pebble's default (90 days).
	Validity time.Duration
}

// CA is a running pebble.
type CA struct {
	// URL is the ACME directory.
	URL string

	// ServerRootFile is a PEM file of the root of the CA's own HTTPS
	// certificate, for --acme-ca-root.
	ServerRootFile string
	ServerRoots    *x509.CertPool

	db  *db.MemoryStore
	ca  *ca.CAImpl
	log *lines
	srv *http.Server
}

// Start runs pebble until the test ends.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	// Read by pebble when it starts: validate at once (no random sleep of
	// up to 15 s), reject no nonce at random, and validate every order
	// afresh rather than reusing an earlier authorization.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")

	dnsAddr := startDNS(t)
	lg := &lines{}
	logger := log.New(lg, "pebble ", log.Lmicroseconds)

	profile := ca.Profile{Description: "test"}
	if o.Validity > 0 {
		profile.ValidityPeriod = uint64(max(o.Validity, time.Second) / time.Second)
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": profile})
	validator := va.New(logger, o.HTTPPort, o.TLSPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	root := o.ServerRoot
	if root == nil {
		root = NewServerRoot(t)
	}
	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	c := &CA{URL: "https://" + ln.Addr().String() + wfe.DirectoryPath, db: store, ca: authority, log: lg,
		ServerRootFile: root.File, ServerRoots: root.Pool}
	c.srv = &http.Server{Handler: front.Handler(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{root.cert}},
		ErrorLog: log.New(lg, "pebble http ", 0)}
	go c.srv.ServeTLS(ln, "", "")
	t.Cleanup(c.Close)
	return c
}

// Close stops the CA.
func (c *CA) Close() { c.srv.Close() }

// Roots returns the pool of the CA's root, which the certificates it
// issues chain to.
func (c *CA) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.ca.GetRootCert(0).Cert)
	return p
}

// Block makes the CA refuse names under domain, as a real CA refuses a
// name its policy forbids.
func (c *CA) Block(domain string) error { return c.db.AddBlockedDomain(domain) }

// Issued counts the certificates issued so far.
func (c *CA) Issued() int { return c.log.count("Issued certificate serial") }

// Log returns what the CA logged, for a failure message.
func (c *CA) Log() string { return c.log.String() }

// lines collects the CA's log.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *lines) count(words ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			n++
		}
	}
	return n
}

// startDNS serves DNS over TCP (as pebble asks) on 127.0.0.1, answering
// every A question with 127.0.0.1 and every other one with no record.
func startDNS(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() {
		if err := srv.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Logf("pebbletest DNS server: %v", err)
		}
	}()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// ServerRoot is the CA's own HTTPS identity, as a private CA has one: a
// root, and a certificate for 127.0.0.1 it signed.
type ServerRoot struct {
	Pool *x509.CertPool // the root
	File string         // the root as a PEM file, for --acme-ca-root
	cert tls.Certificate
}

// NewServerRoot makes a ServerRoot.
func NewServerRoot(t testing.TB) *ServerRoot {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebbletest server root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	r := &ServerRoot{Pool: x509.NewCertPool(), File: filepath.Join(t.TempDir(), "ca-server-root.pem"),
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
	r.Pool.AddCert(root)
	if err := os.WriteFile(r.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}
