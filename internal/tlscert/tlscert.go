// Package tlscert loads the entry point's certificates, from pairs of
// files and from a directory, and picks one for each TLS handshake by the
// name the client asked for (SNI). A reload replaces the whole set, or
// keeps the one in force when any file is bad.
package tlscert

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// Pair is a certificate file (PEM, the chain after the leaf) and its
// private key file.
type Pair struct{ Cert, Key string }

// Source is where the certificates are read from: Pairs in order, then
// Dir (when not empty), which holds NAME.crt with NAME.key, and
// subdirectories NAME holding fullchain.pem with privkey.pem (certbot's
// live/ layout), taken in the order of their names.
type Source struct {
	Pairs []Pair
	Dir   string
}

// Set is a loaded set of certificates.
type Set struct {
	certs  []*tls.Certificate
	byName map[string][]*tls.Certificate // by DNS name in lower case, wildcards as "*.example.com"
}

// Load reads every certificate of src. Any unreadable or mismatched file
// fails the whole load, naming the file; so does a Source with none.
func Load(src Source) (*Set, error) {
	pairs := slices.Clone(src.Pairs)
	if src.Dir != "" {
		found, err := scanDir(src.Dir)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, found...)
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("no certificate: %s holds no NAME.crt with NAME.key and no NAME/fullchain.pem with NAME/privkey.pem", src.Dir)
	}
	s := &Set{byName: map[string][]*tls.Certificate{}}
	for _, p := range pairs {
		cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("certificate %s with key %s: %w", p.Cert, p.Key, err)
		}
		c := &cert
		s.certs = append(s.certs, c)
		for _, name := range c.Leaf.DNSNames {
			name = strings.ToLower(name)
			s.byName[name] = append(s.byName[name], c)
		}
	}
	return s, nil
}

// scanDir lists the pairs of dir, in the order of their names.
func scanDir(dir string) ([]Pair, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var pairs []Pair
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case e.IsDir() || e.Type()&os.ModeSymlink != 0 && isDir(path):
			chain, key := filepath.Join(path, "fullchain.pem"), filepath.Join(path, "privkey.pem")
			if exists(chain) || exists(key) {
				pairs = append(pairs, Pair{chain, key})
			}
		case strings.HasSuffix(name, ".crt"):
			pairs = append(pairs, Pair{path, strings.TrimSuffix(path, ".crt") + ".key"})
		}
	}
	return pairs, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}

// Len is the number of certificates.
func (s *Set) Len() int { return len(s.certs) }

// Get picks the certificate for a handshake: one whose names hold the
// name the client asked for, exactly or by a wildcard, and of those the
// first the client can use (an ECDSA certificate before an RSA one when
// it was loaded first and the client takes both). A client that asked for
// no name, or a name no certificate has, gets the first certificate it
// can use, and the first loaded when it can use none: the handshake then
// fails on the client's side, as it would with any certificate.
func (s *Set) Get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		if c := pick(hello, s.byName[name]); c != nil {
			return c, nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c := pick(hello, s.byName["*"+name[i:]]); c != nil {
				return c, nil
			}
		}
	}
	// Asked for no name these certificates hold: which the client can use
	// depends on their keys alone.
	anyName := *hello
	anyName.ServerName = ""
	for _, c := range s.certs {
		if anyName.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	return s.certs[0], nil
}

// pick returns the first of cands the client can use, or the first of
// them when it can use none (nil when there are none).
func pick(hello *tls.ClientHelloInfo, cands []*tls.Certificate) *tls.Certificate {
	for _, c := range cands {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	if len(cands) > 0 {
		return cands[0]
	}
	return nil
}

// Store holds the set in force for the handshakes.
type Store struct {
	src Source
	cur atomic.Pointer[Set]
}

// NewStore loads src.
func NewStore(src Source) (*Store, error) {
	st := &Store{src: src}
	if _, err := st.Reload(); err != nil {
		return nil, err
	}
	return st, nil
}

// Reload loads src again and puts the new set in force, returning it; on
// an error the set in force stays. Handshakes under way keep the
// certificate they got; open connections are not touched.
func (st *Store) Reload() (*Set, error) {
	s, err := Load(st.src)
	if err != nil {
		return nil, err
	}
	st.cur.Store(s)
	return s, nil
}

// GetCertificate is tls.Config's GetCertificate.
func (st *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return st.cur.Load().Get(hello)
}
