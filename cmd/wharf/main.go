// Command wharf is a load balancer that configures itself from Docker: it
// balances HTTP requests across the labelled containers of one network by
// smooth weighted round-robin, with nginx's failure semantics.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/admin"
	"github.com/wharflb/wharf/discovery"
	"github.com/wharflb/wharf/health"
	"github.com/wharflb/wharf/internal/tlscert"
	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy"
)

// version is set at build time with -ldflags "-X main.version=..."; the
// module's build info is used otherwise.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, versionString())
			if info, ok := debug.ReadBuildInfo(); ok {
				fmt.Fprintf(stdout, "module %s\n", info.Main.Path)
				for _, s := range info.Settings {
					switch s.Key {
					case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH", "CGO_ENABLED":
						fmt.Fprintf(stdout, "%s %s\n", s.Key, s.Value)
					}
				}
				for _, d := range info.Deps {
					fmt.Fprintf(stdout, "dep %s %s\n", d.Path, d.Version)
				}
			}
			return 0
		case "healthcheck":
			return healthcheck(args[1:], getenv, stderr)
		}
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "wharf: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error().Err(err).Msg("wharf stopped")
		return 1
	}
	return 0
}

func newLogger(cfg *config, stderr io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.LogLevel)
	var w io.Writer = stderr
	console := cfg.LogFormat == "console"
	if cfg.LogFormat == "auto" {
		if f, ok := stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			console = true
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05.000"}
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// serve wires discovery, the balancer and the proxy together and runs until
// ctx is done.
func serve(ctx context.Context, cfg *config, log zerolog.Logger) error {
	var checker *health.Checker
	auto := newAutoHTTPS(&cfg.HTTPS, log) // nil without --acme-email
	bal := lb.New(lb.WithLogger(log), lb.OnRemove(proxy.ClosePeer),
		lb.OnUpdate(func(t *lb.Table) { checker.Sync(t); auto.sync(t) }))
	checker = health.New(bal, log)
	defer checker.Stop()
	if len(cfg.Upstreams) > 0 {
		bal.Update("static", cfg.Upstreams)
	}

	ready := func() bool { return true }
	var disc admin.DiscoveryStats
	var swarmPolls func() uint64
	engineVersion, apiVersion := "", ""
	if cfg.Network != "" {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return fmt.Errorf("docker client: %w (check DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH)", err)
		}
		defer cli.Close()
		vctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if v, err := cli.ServerVersion(vctx); err == nil {
			engineVersion, apiVersion = v.Version, cli.ClientVersion()
		} else {
			engineVersion = "unreachable"
		}
		cancel()
		swarmOn, err := swarmMode(ctx, cli, cfg.Swarm, cfg.Network, log)
		if err != nil {
			return err
		}
		// Each source publishes its own complete snapshot under its own
		// name; the balancer keeps the last one of each and builds one
		// table from their union (with the static peers).
		w := discovery.New(cli, discovery.Config{Network: cfg.Network, LabelPrefix: cfg.LabelPrefix, Log: log,
			SkipSwarmTasks: swarmOn},
			func(list []lb.Backend) { bal.Update("docker", list) })
		go w.Run(ctx)
		ready = w.Synced
		disc = w
		if swarmOn {
			sw := discovery.NewSwarm(cli, discovery.SwarmConfig{Network: cfg.Network, LabelPrefix: cfg.LabelPrefix, Log: log},
				func(list []lb.Backend) { bal.Update("swarm", list) })
			go sw.Run(ctx)
			ready = func() bool { return w.Synced() && sw.Synced() }
			disc = bothSources{w, sw}
			swarmPolls = sw.Polls
		}
	}

	maxConns := cfg.MaxConns
	if maxConns == 0 {
		maxConns = defaultMaxConns()
	}
	proxyCfg := proxy.Config{
		MaxConns:              maxConns,
		Gzip:                  proxy.GzipConfig{On: cfg.Gzip, Types: cfg.GzipTypes, Level: cfg.GzipLevel},
		DialTimeout:           cfg.UpstreamConnectTimeout,
		ResponseHeaderTimeout: cfg.UpstreamReadTimeout,
		Timeouts: proxy.Timeouts{
			RequestBody:  cfg.ClientBodyTimeout,
			ClientSend:   cfg.SendTimeout,
			UpstreamRead: cfg.UpstreamReadTimeout,
		},
		NextUpstreamTries:   cfg.NextUpstreamTries,
		NextUpstreamTimeout: cfg.NextUpstreamTimeout,
		RetryOnStatus:       cfg.RetryOnStatus,
		RetryBodyLimit:      cfg.RetryBodyLimit,
		RetryBufferBudget:   retryBufferBudget(cfg.RetryBufferBudget),
		TrustedProxies:      cfg.TrustedProxies,
		AccessLog:           cfg.AccessLog,
		Log:                 log,
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	// Every request, HTTP/1.x or HTTP/2 (by ALPN over TLS, or h2c with
	// prior knowledge), plain or in TLS, compressed or not, goes through
	// the fast data path.
	var srv proxy.Server
	scheme := "http"
	var tlsConfig *tls.Config
	if cfg.TLS() || auto != nil {
		var static getCertificate
		if cfg.TLS() {
			src := tlscert.Source{Dir: cfg.TLSDir}
			for i := range cfg.TLSCerts {
				src.Pairs = append(src.Pairs, tlscert.Pair{Cert: cfg.TLSCerts[i], Key: cfg.TLSKeys[i]})
			}
			certs, err := tlscert.NewStore(src)
			if err != nil {
				ln.Close()
				return fmt.Errorf("--tls-cert/--tls-key/--tls-dir: %w", err)
			}
			reloadOnSIGHUP(ctx, certs, log)
			static = certs.GetCertificate
		}
		if tlsConfig, err = startHTTPS(ctx, &cfg.HTTPS, auto, ln, static, log); err != nil {
			ln.Close()
			return err
		}
		tlsConfig.SessionTicketsDisabled = !cfg.TLSSessionTickets
		scheme = "https"
	}
	fs := proxy.NewFastServer(bal, proxyCfg)
	if tlsConfig != nil {
		fs.EnableTLS(tlsConfig, true)
	}
	srv = fs

	if cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--admin-listen %s: %w", cfg.AdminListen, err)
		}
		adminHost, _, _ := net.SplitHostPort(cfg.AdminListen)
		adm := admin.New(bal, ready, admin.Access{Auth: cfg.AdminAuth, ListenHost: adminHost})
		if auto != nil {
			adm.ShowCertificates(auto.status)
		}
		st := fs.Stats()
		adm.EnableMetrics(admin.Sources{NoRoute: st.NoRoute.Load, Shortage: st.Shortage.Load, Reclaimed: st.Reclaimed.Load,
			RetryBuffered: st.RetryBuffered.Load, RetryBufferExhausted: st.RetryBufferExhausted.Load, Discovery: disc,
			SwarmPolls: swarmPolls})
		asrv := &http.Server{Handler: adm, ReadHeaderTimeout: 10 * time.Second, ErrorLog: serverLog(log, "admin")}
		go asrv.Serve(aln)
		defer asrv.Close()
	}

	ev := log.Info().Str("listen", scheme+"://"+ln.Addr().String()).Str("admin", cfg.AdminListen).
		Int("static_peers", len(cfg.Upstreams)).Int("max_conns", maxConns).Str("engine", "fast").Str("version", versionString())
	if cfg.Network != "" {
		ev = ev.Str("network", cfg.Network).Str("engine_version", engineVersion).Str("api_version", apiVersion)
	}
	ev.Msg("wharf started")

	err = proxy.Serve(ctx, srv, ln, cfg.ShutdownTimeout)
	log.Info().Msg("wharf stopped accepting; in-flight requests finished")
	return err
}

// bothSources reports the container and Swarm watchers to /metrics as one
// discovery source: their events and resyncs add up, and it is connected
// while both are. Its methods are safe for concurrent use, as theirs are.
type bothSources [2]admin.DiscoveryStats

func (b bothSources) EventsApplied() uint64 { return b[0].EventsApplied() + b[1].EventsApplied() }
func (b bothSources) Resyncs() uint64       { return b[0].Resyncs() + b[1].Resyncs() }
func (b bothSources) Connected() bool       { return b[0].Connected() && b[1].Connected() }

// swarmMode decides whether Swarm services are a source: mode "off" never,
// "auto" when the engine is a Swarm manager and network is not a local
// network (a manager's plain containers on a bridge need no Swarm source),
// "on" always, failing with the fix when the engine is not a manager.
func swarmMode(ctx context.Context, cli *client.Client, mode, netName string, log zerolog.Logger) (bool, error) {
	if mode == "off" {
		return false, nil
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := cli.Info(ictx)
	cancel()
	switch {
	case err != nil && mode == "on":
		return false, fmt.Errorf("--swarm on: ask the Docker engine whether it is a Swarm manager: %w", err)
	case err != nil:
		log.Warn().Err(err).Msg("--swarm auto: cannot ask the Docker engine whether it is a Swarm manager; Swarm services are not balanced")
		return false, nil
	case info.Swarm.ControlAvailable && mode == "auto":
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := cli.NetworkInspect(nctx, netName, network.InspectOptions{})
		cancel()
		if err == nil && n.Scope != "swarm" {
			log.Info().Str("network", netName).Msgf("--swarm auto: %s is a %s-scoped network, which Swarm tasks cannot join: "+
				"Swarm services are not balanced (use an overlay network to balance them)", netName, n.Scope)
			return false, nil
		}
		return true, nil
	case info.Swarm.ControlAvailable:
		return true, nil
	case mode == "on":
		return false, fmt.Errorf("--swarm on: %w", &discovery.NotManagerError{State: string(info.Swarm.LocalNodeState)})
	case info.Swarm.LocalNodeState == "active":
		log.Warn().Msg("this Docker engine is a Swarm worker: Swarm services are not balanced; " +
			"run wharf on a manager node (--constraint node.role==manager) to balance them")
	}
	return false, nil
}

// reloadOnSIGHUP subscribes to SIGHUP before it returns (so a signal sent
// right after cannot kill the process) and reloads the certificates in
// the background until ctx is done. A reload that fails keeps the
// certificates in force and logs one error naming the file.
func reloadOnSIGHUP(ctx context.Context, certs *tlscert.Store, log zerolog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				set, err := certs.Reload()
				if err != nil {
					log.Error().Err(err).Msg("certificates not reloaded; keeping the previous ones")
					continue
				}
				log.Info().Int("certificates", set.Len()).Msg("certificates reloaded")
			}
		}
	}()
}

// healthcheck asks the admin server's /healthz, for HEALTHCHECK in an
// image without curl.
func healthcheck(args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("wharf healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin-listen", "", "admin address (default $WHARF_ADMIN_LISTEN or 127.0.0.1:8080)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" {
		*addr = getenv("WHARF_ADMIN_LISTEN")
	}
	if *addr == "" {
		*addr = "127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "wharf healthcheck: bad admin address %q: %v\n", *addr, err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	res, err := c.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		fmt.Fprintf(stderr, "wharf healthcheck: %v\n", err)
		return 1
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "wharf healthcheck: /healthz answered %s\n", res.Status)
		return 1
	}
	return 0
}

func versionString() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if v == "" && ok {
		v = info.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	if ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + info.GoVersion
	}
	return "wharf " + v
}

// retryBufferBudget turns the flag's value into proxy.Config's, where 0
// stands for the default and a negative value for none.
func retryBufferBudget(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}
