package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/acme"
	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy"
)

// defaultACMEStorage is where certificates are kept unless --acme-storage
// says otherwise.
const defaultACMEStorage = "/var/lib/wharf/acme"

// httpsConfig is what the flags say of automatic HTTPS and of the plain
// listener that redirects to HTTPS.
type httpsConfig struct {
	ACMEEmail, ACMECA, ACMECARootFile, ACMEStorage string
	ACMECARoots                                    *x509.CertPool // read from ACMECARootFile
	ACMEAll                                        bool
	RedirectHTTP                                   string // address of the redirecting listener; "" none
}

// acmeOn reports whether certificates come from an ACME CA: --acme-email
// turns it on.
func (h *httpsConfig) acmeOn() bool { return h.ACMEEmail != "" }

func (h *httpsConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&h.ACMEEmail, "acme-email", "", "automatic HTTPS: the ACME account's email address (agrees to the CA's terms); turns it on, and --listen serves TLS")
	fs.StringVar(&h.ACMECA, "acme-ca", acme.LetsEncrypt, "ACME directory URL (Let's Encrypt staging: "+acme.LetsEncryptStaging+")")
	fs.Func("acme-ca-root", "PEM file of the roots trusted for the CA's own HTTPS endpoint (a private CA); default: the system's", func(s string) error {
		pem, err := os.ReadFile(s)
		if err != nil {
			return err
		}
		h.ACMECARoots = x509.NewCertPool()
		if !h.ACMECARoots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", s)
		}
		h.ACMECARootFile = s
		return nil
	})
	fs.StringVar(&h.ACMEStorage, "acme-storage", defaultACMEStorage, "directory of the ACME account and certificates; instances that share it order each certificate once")
	fs.BoolVar(&h.ACMEAll, "acme-all", false, "every service's lb.host names get certificates, as with lb.tls=acme")
	fs.StringVar(&h.RedirectHTTP, "redirect-http", "", "plain HTTP listener (e.g. :80) that redirects to HTTPS on --listen and answers ACME HTTP-01 challenges")
}

// check reports flags that need others: set names the flags given.
func (h *httpsConfig) check(set func(string) bool, tlsCert bool) error {
	if !h.acmeOn() {
		for _, f := range []string{"acme-ca", "acme-ca-root", "acme-storage", "acme-all"} {
			if set(f) {
				return fmt.Errorf("--%s needs --acme-email, which turns automatic HTTPS on", f)
			}
		}
		if h.RedirectHTTP != "" && !tlsCert {
			return errors.New("--redirect-http redirects to https: give --tls-cert and --tls-key, --tls-dir, or --acme-email")
		}
		return nil
	}
	// Each flag alone, the others good, so that the error names it.
	good := acme.Config{Email: "a@example.com", Storage: defaultACMEStorage, TLSAddr: ":443"}
	email, ca, storage := good, good, good
	email.Email, ca.CA, storage.Storage = h.ACMEEmail, h.ACMECA, h.ACMEStorage
	for _, f := range []struct {
		name string
		cfg  acme.Config
	}{{"acme-email", email}, {"acme-ca", ca}, {"acme-storage", storage}} {
		if err := f.cfg.Check(); err != nil {
			return fmt.Errorf("--%s: %w", f.name, err)
		}
	}
	return nil
}

// autoHTTPS feeds the ACME manager the host names of the services that
// ask for certificates, and serves them on the TLS entry point.
type autoHTTPS struct {
	cfg *httpsConfig
	log zerolog.Logger

	mu      sync.Mutex
	hosts   []string        // from the last table
	warned  map[string]bool // names skipped, warned once
	manager *acme.Manager   // nil until start
}

// newAutoHTTPS returns nil when automatic HTTPS is off; its methods then
// do nothing.
func newAutoHTTPS(cfg *httpsConfig, log zerolog.Logger) *autoHTTPS {
	if !cfg.acmeOn() {
		return nil
	}
	return &autoHTTPS{cfg: cfg, log: log, warned: map[string]bool{}}
}

// sync takes the host names from a new table: those of the services with
// lb.tls=acme, or of all with --acme-all. Called by the balancer at each
// update; it does not block.
func (a *autoHTTPS) sync(t *lb.Table) {
	if a == nil {
		return
	}
	var hosts []string
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range t.Pools() {
		r := p.Rules()
		if r.TLS != lb.TLSACME && !a.cfg.ACMEAll {
			continue
		}
		for _, h := range r.Hosts {
			if why := certifiable(h); why != "" {
				if !a.warned[h] {
					a.warned[h] = true
					a.log.Warn().Str("service", p.Name()).Str("host", h).Msgf("no certificate from the ACME CA for %s: %s", h, why)
				}
				continue
			}
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	hosts = slices.Compact(hosts)
	a.hosts = hosts
	if a.manager != nil {
		a.manager.SetHosts(hosts)
	}
}

// certifiable says why a host name cannot get a certificate through
// HTTP-01 or TLS-ALPN-01, or "".
func certifiable(h string) string {
	switch {
	case strings.HasPrefix(h, "*."):
		return "a wildcard needs the DNS-01 challenge, which wharf does not do"
	case strings.Contains(h, ":"):
		return "an IP address"
	case !strings.Contains(h, "."):
		return "not a public DNS name"
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return "an IP address"
	}
	return ""
}

// start makes the manager for the listeners that serve the challenges and
// runs it until ctx is done. Call it after both listen, before either
// serves.
func (a *autoHTTPS) start(ctx context.Context, tlsAddr, httpAddr string) error {
	if a == nil {
		return nil
	}
	m, err := acme.New(acme.Config{Email: a.cfg.ACMEEmail, CA: a.cfg.ACMECA, CARoots: a.cfg.ACMECARoots,
		Storage: a.cfg.ACMEStorage, TLSAddr: tlsAddr, HTTPAddr: httpAddr, Log: a.log.With().Str("component", "acme").Logger()})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.cfg.ACMEStorage, 0o700); err != nil {
		return fmt.Errorf("--acme-storage: %w", err)
	}
	a.mu.Lock()
	a.manager = m
	m.SetHosts(a.hosts)
	a.mu.Unlock()
	go m.Run(ctx)
	challenges := "tls-alpn-01"
	if httpAddr != "" {
		challenges += ",http-01"
	}
	which := "the services with lb.tls=acme"
	if a.cfg.ACMEAll {
		which = "every service (--acme-all)"
	}
	a.log.Info().Str("ca", a.cfg.ACMECA).Str("ca_root", a.cfg.ACMECARootFile).Str("storage", a.cfg.ACMEStorage).Str("challenges", challenges).
		Msg("automatic HTTPS: certificates from the ACME CA for the host names of " + which)
	return nil
}

// status is the certificates' status for the admin server.
func (a *autoHTTPS) status() []acme.HostStatus {
	a.mu.Lock()
	m := a.manager
	a.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.Status()
}

type getCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error)

// entryTLSConfig is the TLS configuration of --listen: the ACME
// certificate of a host that has one, else the --tls-cert certificate
// (static may be nil). With automatic HTTPS on it answers TLS-ALPN-01
// challenges; the HTTP protocols it offers are the server's to add (see
// proxy.FastServer.EnableTLS).
func entryTLSConfig(a *autoHTTPS, static getCertificate) *tls.Config {
	cfg := &tls.Config{GetCertificate: static, MinVersion: tls.VersionTLS12}
	if a == nil {
		return cfg
	}
	m := a.manager
	cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto)
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c, err := m.GetCertificate(hello); c != nil || err != nil {
			return c, err
		}
		if static != nil {
			return static(hello)
		}
		return nil, fmt.Errorf("no certificate for %q yet", hello.ServerName)
	}
	return cfg
}

// startHTTPS opens --redirect-http, starts automatic HTTPS (a may be nil)
// for the TLS entry point ln, serves the redirect listener until ctx is
// done, and returns the TLS configuration of ln.
func startHTTPS(ctx context.Context, cfg *httpsConfig, a *autoHTTPS, ln net.Listener, static getCertificate, log zerolog.Logger) (*tls.Config, error) {
	var rln net.Listener
	httpAddr := ""
	if cfg.RedirectHTTP != "" {
		var err error
		if rln, err = net.Listen("tcp", cfg.RedirectHTTP); err != nil {
			return nil, fmt.Errorf("--redirect-http %s: %w", cfg.RedirectHTTP, err)
		}
		httpAddr = rln.Addr().String()
	}
	if err := a.start(ctx, ln.Addr().String(), httpAddr); err != nil {
		if rln != nil {
			rln.Close()
		}
		return nil, err
	}
	if rln != nil {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		go serveRedirect(ctx, rln, a, port, log)
		log.Info().Str("redirect_http", "http://"+rln.Addr().String()).Msg("plain HTTP redirected to HTTPS")
	}
	return entryTLSConfig(a, static), nil
}

// serveRedirect runs the --redirect-http listener until ctx is done: ACME
// HTTP-01 challenges are answered (with automatic HTTPS on), every other
// request is redirected to the same URL on HTTPS at httpsPort (see
// proxy.RedirectHTTPS).
func serveRedirect(ctx context.Context, ln net.Listener, a *autoHTTPS, httpsPort string, log zerolog.Logger) {
	h := proxy.RedirectHTTPS(httpsPort)
	if a != nil {
		h = a.manager.HTTPChallengeHandler(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 75 * time.Second,
		ErrorLog: serverLog(log, "redirect")}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	srv.Serve(ln)
}
