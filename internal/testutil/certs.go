package testutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// KeyType is the kind of key of a test certificate.
type KeyType int

const (
	ECDSA KeyType = iota // P-256
	RSA                  // 2048 bits
)

// SelfSigned makes a self-signed server certificate named cn for names
// (DNS names, or IP addresses), valid from an hour ago for a day.
func SelfSigned(kt KeyType, cn string, names ...string) (tls.Certificate, error) {
	var key crypto.Signer
	var err error
	if kt == RSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// WriteCert writes a SelfSigned certificate to certFile and its key to
// keyFile (PEM), making their directories, each through a temporary file
// and a rename, as a certificate renewal would. It returns the leaf.
func WriteCert(t testing.TB, certFile, keyFile string, kt KeyType, cn string, names ...string) *x509.Certificate {
	t.Helper()
	cert, err := SelfSigned(kt, cn, names...)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	files := []struct {
		name  string
		block *pem.Block
	}{{certFile, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}}, {keyFile, &pem.Block{Type: "PRIVATE KEY", Bytes: kb}}}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.name+".tmp", pem.EncodeToMemory(f.block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.name+".tmp", f.name); err != nil {
			t.Fatal(err)
		}
	}
	return cert.Leaf
}
