// Package acme obtains and renews TLS certificates for a set of host names
// from an ACME certificate authority (RFC 8555: Let's Encrypt, its staging
// environment, or a private CA), and serves them by SNI.
//
// It is a thin layer over github.com/caddyserver/certmagic, which does the
// protocol, the HTTP-01 and TLS-ALPN-01 challenges, the storage (with locks,
// so that several instances sharing one directory order a certificate
// once), renewal before expiry (keeping the old certificate in use until
// the new one is in place) and OCSP stapling. What this package adds is
// what a load balancer needs around it: the set of names changes with the
// services, a first certificate that cannot be obtained is retried with
// backoff without holding anything up, each failure is one log line, and
// each host's certificate has a status for the admin API and metrics.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/rs/zerolog"
)

// LetsEncrypt is the directory of Let's Encrypt's production CA, the
// default; LetsEncryptStaging is its staging CA, for trying a set-up
// without its rate limits (its certificates are not trusted by browsers).
const (
	LetsEncrypt        = certmagic.LetsEncryptProductionCA
	LetsEncryptStaging = certmagic.LetsEncryptStagingCA
)

// ALPNProto is the protocol of the TLS-ALPN-01 challenge (RFC 8737): a TLS
// listener whose GetCertificate is the Manager's must list it in its
// tls.Config NextProtos.
const ALPNProto = "acme-tls/1"

// Default backoff of a certificate that could not be obtained: the first
// retry after a minute, doubling up to an hour. Let's Encrypt allows five
// failed validations per host name and hour.
const (
	DefaultRetryFirst = time.Minute
	DefaultRetryMax   = time.Hour
)

// Config configures a Manager. Email and Storage are required, and at
// least one of HTTPAddr and TLSAddr.
type Config struct {
	// Email is the account's contact address. Giving it means agreeing to
	// the CA's terms of service.
	Email string

	// CA is the ACME directory URL; empty means LetsEncrypt.
	CA string

	// CARoots are the roots trusted for the CA's own HTTPS endpoint; nil
	// means the system's roots.
	CARoots *x509.CertPool

	// Storage is the directory of the account, the certificates and their
	// keys, and the locks that let instances sharing it take turns.
	Storage string

	// HTTPAddr is the address of the plain HTTP listener whose handler is
	// wrapped by HTTPChallengeHandler; empty disables HTTP-01. The CA
	// connects to port 80, so that is its port in production.
	HTTPAddr string

	// TLSAddr is the address of the TLS listener whose GetCertificate is the
	// Manager's; empty disables TLS-ALPN-01, for which the CA connects to
	// port 443.
	TLSAddr string

	// RetryFirst and RetryMax bound the backoff between attempts to obtain
	// a host's first certificate; 0 means DefaultRetryFirst and
	// DefaultRetryMax. Renewals are retried by certmagic's own schedule
	// while the current certificate is served.
	RetryFirst, RetryMax time.Duration

	// RenewCheckInterval is how often certificates are checked for
	// renewal; 0 means certmagic's default (10 minutes).
	RenewCheckInterval time.Duration

	Log zerolog.Logger
}

// HostStatus is the state of one host's certificate.
type HostStatus struct {
	Host        string
	Issuer      string    // the issuing CA's common name; "" while there is no certificate
	NotAfter    time.Time // expiry of the certificate served; zero while there is none
	LastAttempt time.Time // start of the last attempt to obtain or renew it; zero before the first
	LastError   string    // why the last attempt failed; "" once one succeeded
}

// Manager obtains and renews certificates for the hosts given to SetHosts.
// Its methods are safe for concurrent use; Run drives it.
type Manager struct {
	cfg    Config
	log    zerolog.Logger
	cache  *certmagic.Cache
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer

	// hosts is the set SetHosts gave last, read by GetCertificate on every
	// handshake without a lock.
	hosts atomic.Pointer[map[string]struct{}]
	wake  chan struct{}

	mu    sync.Mutex
	state map[string]*hostState // by host; entries of hosts no longer wanted are dropped
}

// hostState is what the Manager remembers of one host. Guarded by mu.
type hostState struct {
	ready       bool // a certificate was obtained or loaded: certmagic maintains it
	failures    int  // consecutive failed attempts to get the first certificate
	nextAttempt time.Time
	lastAttempt time.Time
	lastError   string
	obtainedAt  time.Time // when the CA last issued one (not loaded from storage)
}

// Check reports the first thing wrong with cfg, as New would.
func (cfg Config) Check() error {
	if cfg.Email == "" {
		return errors.New("acme: an account email address is required")
	}
	if !strings.Contains(cfg.Email, "@") || strings.ContainsAny(cfg.Email, " \t\r\n,") {
		return fmt.Errorf("acme: %q is not an email address", cfg.Email)
	}
	if cfg.Storage == "" {
		return errors.New("acme: a storage directory is required")
	}
	if cfg.CA != "" {
		if u, err := url.Parse(cfg.CA); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("acme: CA directory %q is not an https:// URL", cfg.CA)
		}
	}
	if cfg.HTTPAddr == "" && cfg.TLSAddr == "" {
		return errors.New("acme: no listener for a challenge: give an HTTP or a TLS address")
	}
	for _, a := range []string{cfg.TLSAddr, cfg.HTTPAddr} {
		if _, err := listenPort(a); a != "" && err != nil {
			return err
		}
	}
	return nil
}

func listenPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 {
		return 0, fmt.Errorf("acme: listener address %q has no port", addr)
	}
	return n, nil
}

// New returns a Manager for cfg. It does no I/O: the CA is first contacted
// by Run, once there are hosts.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.CA == "" {
		cfg.CA = LetsEncrypt
	}
	if cfg.RetryFirst <= 0 {
		cfg.RetryFirst = DefaultRetryFirst
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	m := &Manager{cfg: cfg, log: cfg.Log, wake: make(chan struct{}, 1), state: map[string]*hostState{}}
	m.hosts.Store(&map[string]struct{}{})

	zl := newZapLogger(cfg.Log)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: cfg.Storage},
		OnEvent: m.onEvent,
		// Only the certificate events are of interest; the one emitted
		// on every handshake is skipped before it costs anything.
		ShouldEmitFunc: func(event string) bool { return strings.HasPrefix(event, "cert_") },
		Logger:         zl,
	})

	// certmagic starts its own challenge listener on the challenge port
	// unless that address is taken; naming the listeners that serve the
	// challenges makes it find them taken, and leave them to us.
	iss := certmagic.ACMEIssuer{
		CA:                      cfg.CA,
		Email:                   cfg.Email,
		Agreed:                  true,
		TrustedRoots:            cfg.CARoots,
		DisableHTTPChallenge:    cfg.HTTPAddr == "",
		DisableTLSALPNChallenge: cfg.TLSAddr == "",
		Logger:                  zl,
	}
	for _, a := range []struct {
		addr string
		port *int
	}{{cfg.TLSAddr, &iss.AltTLSALPNPort}, {cfg.HTTPAddr, &iss.AltHTTPPort}} {
		if a.addr == "" {
			continue
		}
		host, _, _ := net.SplitHostPort(a.addr)
		*a.port, _ = listenPort(a.addr)
		if iss.ListenHost == "" {
			iss.ListenHost = host
		}
	}
	m.issuer = certmagic.NewACMEIssuer(m.magic, iss)
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// SetHosts makes names the hosts that get certificates: new ones are
// obtained by Run, and removed ones are no longer renewed (their
// certificates stay in storage). Names are DNS names; wildcards, which
// need the DNS-01 challenge, and IP addresses are the caller's to filter
// out. It does not block.
func (m *Manager) SetHosts(names []string) {
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[normalize(n)] = struct{}{}
	}
	old := *m.hosts.Load()
	m.hosts.Store(&set)

	m.mu.Lock()
	var removed []certmagic.SubjectIssuer
	for h := range old {
		if _, ok := set[h]; !ok {
			delete(m.state, h)
			removed = append(removed, certmagic.SubjectIssuer{Subject: h})
		}
	}
	for h := range set {
		if m.state[h] == nil {
			m.state[h] = &hostState{}
		}
	}
	m.mu.Unlock()
	if len(removed) > 0 {
		m.cache.RemoveManaged(removed)
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run obtains the certificates of the hosts that have none, retrying each
// with backoff, until ctx is done; certmagic renews those it has. It stops
// certmagic's maintenance when it returns.
func (m *Manager) Run(ctx context.Context) {
	defer m.cache.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := m.attemptDue(ctx)
		var wait <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			wait = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-wait:
		}
	}
}

// attemptDue tries each wanted host without a certificate whose retry time
// has come, one after another, and returns when the next one is due (zero
// when none is waiting).
func (m *Manager) attemptDue(ctx context.Context) time.Time {
	for {
		host, ok := m.nextDue()
		if !ok || ctx.Err() != nil {
			break
		}
		m.attempt(ctx, host)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	for _, st := range m.state {
		if !st.ready && (next.IsZero() || st.nextAttempt.Before(next)) {
			next = st.nextAttempt
		}
	}
	return next
}

func (m *Manager) nextDue() (string, bool) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	hosts := make([]string, 0, len(m.state))
	for h, st := range m.state {
		if !st.ready && !st.nextAttempt.After(now) {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return "", false
	}
	slices.Sort(hosts)
	return hosts[0], true
}

// attempt loads host's certificate from storage or obtains it, once.
func (m *Manager) attempt(ctx context.Context, host string) {
	start := time.Now()
	m.update(host, func(st *hostState) { st.lastAttempt = start })
	err := m.magic.ManageSync(ctx, []string{host})
	if ctx.Err() != nil {
		return
	}
	took := time.Since(start)
	if err != nil {
		var failures int
		var retryIn time.Duration
		m.update(host, func(st *hostState) {
			st.failures++
			failures = st.failures
			retryIn = m.backoff(st.failures)
			st.nextAttempt = time.Now().Add(retryIn)
			st.lastError = err.Error()
		})
		m.log.Error().Str("host", host).Err(err).Int("attempt", failures).Dur("retry_in", retryIn).
			Msgf("no certificate for %s yet; retrying in %s", host, retryIn)
		return
	}
	var obtained, wanted bool
	m.update(host, func(st *hostState) {
		wanted = true
		st.ready, st.failures, st.lastError = true, 0, ""
		obtained = !st.obtainedAt.Before(start)
	})
	if !wanted {
		// SetHosts dropped it while it was being obtained.
		m.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: host}})
		return
	}
	s := m.status(host)
	ev := m.log.Info().Str("host", host).Str("issuer", s.Issuer).Time("not_after", s.NotAfter).Dur("took", took)
	if obtained {
		ev.Msg("certificate obtained")
	} else {
		ev.Msg("certificate loaded from storage")
	}
}

// backoff is the wait after the n-th consecutive failure: RetryFirst,
// doubled each time, at most RetryMax.
func (m *Manager) backoff(n int) time.Duration {
	d := m.cfg.RetryFirst
	for i := 1; i < n && d < m.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, m.cfg.RetryMax)
}

// update runs fn on host's state under the lock, if host is still wanted.
func (m *Manager) update(host string, fn func(*hostState)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.state[host]; st != nil {
		fn(st)
	}
}

// onEvent follows certmagic's certificate events: renewals (which
// certmagic starts on its own) and issuance times. Called synchronously
// by certmagic, so it only records and logs.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	host, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtaining":
		m.update(host, func(st *hostState) { st.lastAttempt = time.Now() })
	case "cert_obtained":
		m.update(host, func(st *hostState) { st.obtainedAt, st.lastError = time.Now(), "" })
		if renewal {
			m.log.Info().Str("host", host).Msg("certificate renewed")
		}
	case "cert_failed":
		if !renewal {
			return nil // attempt logs it, with the time of the next try
		}
		err, _ := data["error"].(error)
		msg := fmt.Sprint(err)
		m.update(host, func(st *hostState) { st.lastError = msg })
		// Not the expiry: certmagic may hold its cache's lock here.
		m.log.Error().Str("host", host).Str("error", msg).
			Msgf("certificate for %s not renewed; the current one is served until it expires, and renewal is retried", host)
	}
	return nil
}

// GetCertificate is for tls.Config.GetCertificate: it answers TLS-ALPN-01
// challenges, and returns the certificate of a host given to SetHosts once
// there is one. For any other name, or while a host has no certificate,
// it returns nil and no error, so that a caller can fall back to other
// certificates.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNProto {
		return m.magic.GetCertificate(hello)
	}
	if _, ok := (*m.hosts.Load())[normalize(hello.ServerName)]; !ok {
		return nil, nil
	}
	c, err := m.magic.GetCertificate(hello)
	if err != nil || c == nil || len(c.Certificate) == 0 {
		return nil, nil
	}
	return c, nil
}

// HTTPChallengeHandler returns a handler that answers the CA's HTTP-01
// challenge requests (GET /.well-known/acme-challenge/TOKEN), also those
// started by another instance sharing the storage, and passes every other
// request to next.
func (m *Manager) HTTPChallengeHandler(next http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(next)
}

// Status reports every host given to SetHosts, sorted by name.
func (m *Manager) Status() []HostStatus {
	m.mu.Lock()
	hosts := make([]string, 0, len(m.state))
	for h := range m.state {
		hosts = append(hosts, h)
	}
	m.mu.Unlock()
	slices.Sort(hosts)
	out := make([]HostStatus, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, m.status(h))
	}
	return out
}

// status reads host's certificate from certmagic's cache (which renewal
// updates) and the attempts from its state.
func (m *Manager) status(host string) HostStatus {
	s := HostStatus{Host: host}
	for _, c := range m.cache.AllMatchingCertificates(host) {
		if c.Leaf == nil || !slices.Contains(c.Names, host) {
			continue // a wildcard this package did not ask for
		}
		if c.Leaf.NotAfter.After(s.NotAfter) {
			s.NotAfter, s.Issuer = c.Leaf.NotAfter, c.Leaf.Issuer.CommonName
		}
	}
	m.mu.Lock()
	if st := m.state[host]; st != nil {
		s.LastAttempt, s.LastError = st.lastAttempt, st.lastError
	}
	m.mu.Unlock()
	return s
}

func normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
}
