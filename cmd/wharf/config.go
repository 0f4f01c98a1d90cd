package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/wharflb/wharf/admin"
	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy"
)

// config is everything the binary is told, by flags or WHARF_* variables.
type config struct {
	Listen              string
	Network             string
	Swarm               string // "auto", "on" or "off": Swarm services as a source
	LabelPrefix         string
	Upstreams           []lb.Backend
	AdminListen         string
	AdminAuth           admin.Authenticator // nil: no credentials, Host check only
	LogLevel            string
	LogFormat           string
	AccessLog           bool
	TLSCerts, TLSKeys   []string // in pairs, in order
	TLSDir              string
	TLSSessionTickets   bool
	Gzip                bool
	GzipTypes           []string
	GzipLevel           int
	NextUpstreamTries   int
	NextUpstreamTimeout time.Duration
	RetryOnStatus       []int
	RetryBodyLimit      int64
	RetryBufferBudget   int64
	ShutdownTimeout     time.Duration
	MaxConns            int // 0: derived from the descriptor limit (defaultMaxConns)
	TrustedProxies      []netip.Prefix
	HTTPS               httpsConfig // automatic HTTPS and --redirect-http
	// nginx's client_body_timeout, send_timeout, proxy_connect_timeout and
	// proxy_read_timeout; 0 means the proxy's default.
	ClientBodyTimeout, SendTimeout, UpstreamConnectTimeout, UpstreamReadTimeout time.Duration
}

// envName is the variable that stands for a flag: WHARF_ + NAME with - as _.
func envName(flagName string) string {
	return "WHARF_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads flags, then fills every flag not given on the command
// line from its WHARF_* variable. Errors name the flag (or variable) and
// the value.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (*config, error) {
	c := &config{RetryBodyLimit: 64 << 10, RetryBufferBudget: proxy.DefaultRetryBufferBudget}
	fs := flag.NewFlagSet("wharf", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Listen, "listen", ":10000", "client entry point (HTTP, or HTTPS with --tls-cert)")
	fs.StringVar(&c.Network, "network", "", "Docker network whose labelled containers are balanced")
	fs.StringVar(&c.LabelPrefix, "label-prefix", "lb", "prefix of the container labels")
	c.Swarm = "auto"
	fs.Func("swarm", "Swarm services of --network as a source: auto (on when the engine is a Swarm manager), on or off (default auto)",
		oneOf(&c.Swarm, "auto", "on", "off"))
	fs.Func("upstream", "static peer, repeatable: HOST:PORT or unix:/PATH[,"+lb.UpstreamOptions()+"]", func(s string) error {
		for _, spec := range strings.Fields(s) {
			b, err := lb.ParseUpstream(spec)
			if err != nil {
				return err
			}
			c.Upstreams = append(c.Upstreams, b)
		}
		return nil
	})
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:8080", "admin server (health, API, metrics, dashboard); empty disables")
	fs.Func("admin-auth", "credentials for the admin server: basic:FILE (htpasswd -B) or bearer:FILE (a token); default: none, and only localhost or an IP address as Host", func(s string) error {
		a, err := admin.ParseAuth(s)
		c.AdminAuth = a
		return err
	})
	fs.Func("log-level", "debug, info, warn or error (default info)", oneOf(&c.LogLevel, "debug", "info", "warn", "error"))
	fs.Func("log-format", "json, console or auto (default auto: console on a terminal)", oneOf(&c.LogFormat, "json", "console", "auto"))
	fs.BoolVar(&c.AccessLog, "access-log", false, "log one line per request")
	fs.Func("tls-cert", "certificate file (PEM), repeatable or comma-separated, each with its --tls-key in the same order: the entry point serves TLS (HTTP/1.1 and HTTP/2), the certificate chosen by the name the client asks for", fileList(&c.TLSCerts))
	fs.Func("tls-key", "private key file (PEM) of the --tls-cert in the same place, repeatable or comma-separated", fileList(&c.TLSKeys))
	fs.StringVar(&c.TLSDir, "tls-dir", "", "directory of certificates served like --tls-cert: NAME.crt with NAME.key, and NAME/fullchain.pem with NAME/privkey.pem (certbot's live/)")
	fs.BoolVar(&c.TLSSessionTickets, "tls-session-tickets", true, "let TLS clients resume sessions from tickets (keys rotated daily by Go's crypto/tls); false makes every new connection a full handshake (nginx ssl_session_tickets)")
	fs.BoolVar(&c.Gzip, "gzip", false, "gzip answers of --gzip-types for clients that accept it")
	c.GzipTypes = proxy.DefaultGzipTypes
	fs.Func("gzip-types", "comma-separated media types compressed with --gzip, * for any; text/html always is (default: nginx gzip_types of text, JSON, JavaScript and XML)", func(s string) error {
		c.GzipTypes = nil
		for _, t := range strings.Split(s, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if t != "*" && (!strings.Contains(t, "/") || strings.ContainsAny(t, " ;")) {
				return fmt.Errorf("%q is not a media type like application/json, nor *", t)
			}
			c.GzipTypes = append(c.GzipTypes, strings.ToLower(t))
		}
		if len(c.GzipTypes) == 0 {
			return errors.New("empty list")
		}
		return nil
	})
	c.GzipLevel = proxy.DefaultGzipLevel
	fs.Func("gzip-level", "compression level of --gzip, 1 (fastest) to 9 (smallest) (default 1; nginx gzip_comp_level)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 9 {
			return errors.New("want a whole number from 1 to 9")
		}
		c.GzipLevel = n
		return nil
	})
	fs.Func("next-upstream-tries", "attempts per request; 0 = every peer once", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errors.New("want a whole number, 0 or more")
		}
		c.NextUpstreamTries = n
		return nil
	})
	fs.Func("next-upstream-timeout", "time bound on all attempts of one request; 0 = none", nonNegDuration(&c.NextUpstreamTimeout))
	fs.Func("retry-on-status", "peer answers also treated as failures, e.g. 502,503,504", func(s string) error {
		c.RetryOnStatus = nil
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil || n < 500 || n > 599 {
				return fmt.Errorf("%q is not a 5xx status code", f)
			}
			c.RetryOnStatus = append(c.RetryOnStatus, n)
		}
		return nil
	})
	fs.Func("trusted-proxies", "comma-separated CIDRs or addresses of proxies in front of wharf whose X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and Forwarded are believed (nginx set_real_ip_from); default: none, every client's are replaced", func(s string) error {
		c.TrustedProxies = nil
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			p, err := netip.ParsePrefix(f)
			if err != nil {
				// A bare address trusts that host alone, as in nginx.
				a, aerr := netip.ParseAddr(f)
				if aerr != nil || a.Zone() != "" {
					return fmt.Errorf("%q is not a CIDR like 10.0.0.0/8 or an address", f)
				}
				p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
			c.TrustedProxies = append(c.TrustedProxies, p.Masked())
		}
		return nil
	})
	fs.Func("retry-body-limit", "largest request body kept for replay on retry (default 64KiB)", func(s string) error {
		n, err := parseSize(s)
		c.RetryBodyLimit = n
		return err
	})
	fs.Func("retry-buffer-budget", "memory for all request bodies kept for replay at once; beyond it a body is streamed and not retried (default 16MiB; 0: keep none)", func(s string) error {
		n, err := parseSize(s)
		c.RetryBufferBudget = n
		return err
	})
	fs.Func("max-conns", "client connections at most; beyond it idle keep-alive connections are closed, then new ones wait (default: half the file descriptor limit, less a reserve)", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errors.New("want a whole number, 0 or more (0: derived from the file descriptor limit)")
		}
		c.MaxConns = n
		return nil
	})
	fs.Func("client-body-timeout", "longest wait between two reads of a request body (default 60s; nginx client_body_timeout)", positiveDuration(&c.ClientBodyTimeout))
	fs.Func("send-timeout", "longest wait for a client to take any of an answer (default 60s; nginx send_timeout)", positiveDuration(&c.SendTimeout))
	fs.Func("upstream-connect-timeout", "longest wait to connect to a peer (default 5s; nginx proxy_connect_timeout)", positiveDuration(&c.UpstreamConnectTimeout))
	fs.Func("upstream-read-timeout", "longest wait for a peer's answer head, and between two reads of its body (default 60s; nginx proxy_read_timeout)", positiveDuration(&c.UpstreamReadTimeout))
	c.ShutdownTimeout = 30 * time.Second
	fs.Func("shutdown-timeout", "how long in-flight requests may finish after SIGTERM (default 30s)", nonNegDuration(&c.ShutdownTimeout))
	c.HTTPS.register(fs)
	c.LogLevel, c.LogFormat = "info", "auto"

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, usage)
			return nil, err
		}
		return nil, errors.New(strings.Replace(err.Error(), " -", " --", 1))
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --; subcommands are healthcheck and version)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v := getenv(envName(f.Name))
		if err != nil || set[f.Name] || v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("invalid value %q for %s (--%s): %v", v, envName(f.Name), f.Name, e)
		}
	})
	if err != nil {
		return nil, err
	}
	switch {
	case c.Network == "" && len(c.Upstreams) == 0:
		return nil, errors.New("nothing to balance: give --network (Docker discovery) or --upstream (static peers)")
	case c.Swarm == "on" && c.Network == "":
		return nil, errors.New("--swarm on needs --network: the overlay network whose services are balanced")
	case len(c.TLSCerts) != len(c.TLSKeys):
		return nil, fmt.Errorf("--tls-cert and --tls-key go in pairs: %d certificates, %d keys", len(c.TLSCerts), len(c.TLSKeys))
	}
	set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true }) // the variables' too, now
	if err := c.HTTPS.check(func(name string) bool { return set[name] }, c.TLS()); err != nil {
		return nil, err
	}
	return c, nil
}

// TLS reports whether the entry point serves TLS.
func (c *config) TLS() bool { return len(c.TLSCerts) > 0 || c.TLSDir != "" }

// fileList appends each comma-separated file name of a flag's value.
func fileList(dst *[]string) func(string) error {
	return func(s string) error {
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f == "" {
				return errors.New("empty file name")
			}
			*dst = append(*dst, f)
		}
		return nil
	}
}

func oneOf(dst *string, allowed ...string) func(string) error {
	return func(s string) error {
		for _, a := range allowed {
			if s == a {
				*dst = s
				return nil
			}
		}
		return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
	}
}

func nonNegDuration(dst *time.Duration) func(string) error {
	return func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return errors.New("want a duration like 10s or 500ms")
		}
		*dst = d
		return nil
	}
}

func positiveDuration(dst *time.Duration) func(string) error {
	return func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return errors.New("want a duration greater than 0 like 60s or 500ms")
		}
		*dst = d
		return nil
	}
}

// parseSize reads a byte count: 65536, 64KiB, 64KB, 1MiB, 0.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"k", 1 << 10}, {"m", 1 << 20}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want a size like 65536, 64KiB or 1MiB")
	}
	return n * mult, nil
}

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintln(w, "usage: wharf [flags]          balance labelled containers of a Docker network")
	fmt.Fprintln(w, "       wharf healthcheck      exit 0 if the admin server's /healthz answers 200")
	fmt.Fprintln(w, "       wharf version")
	fmt.Fprintln(w, "\nEvery flag can also be set by its variable, e.g. --admin-listen by WHARF_ADMIN_LISTEN.\n\nflags:")
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%-24s %s%s\n      env %s\n", f.Name, f.Usage, def, envName(f.Name))
	})
}
