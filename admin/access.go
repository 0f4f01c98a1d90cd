package admin

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Access decides who may use the admin server. Two questions, in order:
//
//   - By which name was the server asked? Without credentials configured,
//     only a loopback name, an IP address or the name the server listens
//     on is accepted in Host. A web page that makes its own domain resolve
//     to 127.0.0.1 (DNS rebinding) sends that domain as Host and is turned
//     away, so a browser on the same machine cannot be used to read the
//     API or hold its event streams. An IP address cannot be rebound.
//   - With credentials configured (Auth), is the request authenticated?
//     Then any Host is accepted: a rebinding page has no credentials.
//
// /healthz answers without credentials, so that the image's HEALTHCHECK
// and orchestrators' probes need none; it tells only whether wharf has
// synced.
type Access struct {
	// Auth checks a request's credentials; nil admits every request that
	// passes the Host check.
	Auth Authenticator
	// ListenHost is the host part of the admin listen address, accepted
	// in Host beside loopback names and IP addresses.
	ListenHost string
}

// Authenticator checks the credentials of one request. Implementations
// are safe for concurrent use.
type Authenticator interface {
	// Authenticate reports whether r carries valid credentials.
	Authenticate(r *http.Request) bool
	// Challenge is the WWW-Authenticate value of a 401 answer.
	Challenge() string
}

// ParseAuth reads an --admin-auth value: "basic:FILE", FILE in htpasswd
// format with bcrypt hashes (htpasswd -B), or "bearer:FILE", FILE holding
// one token. Errors name the file and the line.
func ParseAuth(spec string) (Authenticator, error) {
	kind, file, ok := strings.Cut(spec, ":")
	if !ok || file == "" || (kind != "basic" && kind != "bearer") {
		return nil, fmt.Errorf("%q: want basic:FILE (htpasswd, bcrypt) or bearer:FILE (a token)", spec)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if kind == "bearer" {
		return newBearer(file, data)
	}
	return newBasic(file, data)
}

// minTokenLen keeps tokens out of guessing range: 32 characters of
// base64 or hex are 128 bits and more.
const minTokenLen = 32

// bearer admits requests with "Authorization: Bearer <token>".
type bearer struct{ token []byte }

func newBearer(file string, data []byte) (*bearer, error) {
	token := strings.TrimSpace(string(data))
	if len(token) < minTokenLen || strings.ContainsAny(token, " \t\r\n") {
		return nil, fmt.Errorf("%s: want one token of at least %d characters (e.g. openssl rand -hex 32)", file, minTokenLen)
	}
	return &bearer{token: []byte(token)}, nil
}

func (b *bearer) Authenticate(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), b.token) == 1
}

func (b *bearer) Challenge() string { return `Bearer realm="wharf admin"` }

// basic admits requests whose basic-auth user and password match an
// htpasswd line with a bcrypt hash.
//
// bcrypt is slow on purpose (tens of milliseconds a check), which would let
// anyone who reaches the port burn wharf's CPU with wrong passwords. So a
// password that passed is remembered (by its SHA-256, never in clear) and
// checked again without bcrypt, and at most one bcrypt check runs at a
// time: a request that finds one running is refused at once.
type basic struct {
	users map[string][]byte // user → bcrypt hash

	checking sync.Mutex
	mu       sync.Mutex
	passed   map[[sha256.Size]byte]bool // sha256(user \x00 password) that passed bcrypt
}

// maxRemembered bounds the remembered passwords: they can only be ones
// that passed, so the bound is generous and only guards against a file
// with very many users.
const maxRemembered = 1024

func newBasic(file string, data []byte) (*basic, error) {
	b := &basic{users: map[string][]byte{}, passed: map[[sha256.Size]byte]bool{}}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: want user:hash", file, n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s:%d: user %s: not a bcrypt hash (create the file with htpasswd -B): %w", file, n, user, err)
		}
		b.users[user] = []byte(hash)
	}
	if len(b.users) == 0 {
		return nil, fmt.Errorf("%s: no user (create it with htpasswd -B -c %s USER)", file, file)
	}
	return b, nil
}

func (b *basic) Authenticate(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	hash, known := b.users[user]
	if !known {
		return false
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	b.mu.Lock()
	passed := b.passed[key]
	b.mu.Unlock()
	if passed {
		return true
	}
	if !b.checking.TryLock() {
		return false
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	b.checking.Unlock()
	if err != nil {
		return false
	}
	b.mu.Lock()
	if len(b.passed) < maxRemembered {
		b.passed[key] = true
	}
	b.mu.Unlock()
	return true
}

func (b *basic) Challenge() string { return `Basic realm="wharf admin", charset="UTF-8"` }

// hostAllowed reports whether a request that names host in its Host field
// may be served without credentials.
func (a *Access) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	switch {
	case host == "":
		return false // HTTP/1.1 requires Host; a client without one is not a browser on a page
	case strings.EqualFold(host, "localhost"), strings.HasSuffix(strings.ToLower(host), ".localhost"):
		return true // RFC 6761: always loopback, never resolved elsewhere
	case net.ParseIP(host) != nil:
		return true
	}
	return a.ListenHost != "" && strings.EqualFold(host, a.ListenHost)
}

// guard wraps next with the access rules.
func (a *Access) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Auth == nil && !a.hostAllowed(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf(
				"the admin server answers to localhost or an IP address, not %q; use one of those, or set --admin-auth to serve any name", r.Host))
			return
		}
		if a.Auth != nil && r.URL.Path != "/healthz" && !a.Auth.Authenticate(r) {
			w.Header().Set("WWW-Authenticate", a.Auth.Challenge())
			writeError(w, http.StatusUnauthorized, "credentials required (--admin-auth)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeError answers status with wharf's JSON error body.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
