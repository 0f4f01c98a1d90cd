// Package health runs the active HTTP health checks that peers ask for
// with lb.health.path, lb.health.interval and lb.health.timeout, and
// reports each result to the balancer.
package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/lb"
)

// Reporter receives check results; *lb.Balancer implements it.
type Reporter interface {
	SetCheckResult(key string, passing bool) bool
}

// Checker keeps one checking goroutine per peer that has a health check,
// started and stopped as tables change. Sync is called from one goroutine
// (the balancer's update hook); Stop ends every check.
type Checker struct {
	rep    Reporter
	log    zerolog.Logger
	client *http.Client

	// ticks returns what starts every check of the peer with key after
	// the first, one check a value, and a function that stops it; nil
	// means a time.Ticker of interval. Tests set it before the first Sync
	// to start each check themselves.
	ticks func(key string, interval time.Duration) (<-chan time.Time, func())
	// checked, when set, is called by a peer's checking goroutine after
	// each check, once its result has been reported: tests wait on it.
	checked func(key string, err error)

	mu     sync.Mutex
	checks map[string]*check // by Backend.Key
	ctx    context.Context
	cancel context.CancelFunc
}

type check struct {
	cfg    lb.HealthCheck
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Checker reporting to rep.
func New(rep Reporter, log zerolog.Logger) *Checker {
	ctx, cancel := context.WithCancel(context.Background())
	return &Checker{
		rep: rep,
		log: log,
		client: &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
			// A redirect is an answer: the peer is up.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		checks: map[string]*check{},
		ctx:    ctx,
		cancel: cancel,
	}
}

// Sync starts checks for the peers of t that have one and stops the checks
// of peers that left or no longer have one. A check whose settings changed
// is restarted.
func (c *Checker) Sync(t *lb.Table) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	want := map[string]*lb.Peer{}
	for _, p := range t.Pools() {
		for _, pe := range p.Peers() {
			if pe.Health.Path != "" {
				want[pe.Key()] = pe
			}
		}
	}
	for key, ch := range c.checks {
		if pe, ok := want[key]; !ok || pe.Health != ch.cfg {
			ch.cancel()
			delete(c.checks, key)
		}
	}
	for key, pe := range want {
		if _, ok := c.checks[key]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(c.ctx)
		ch := &check{cfg: pe.Health, cancel: cancel, done: make(chan struct{})}
		c.checks[key] = ch
		go c.run(ctx, ch, key, pe.Backend)
	}
}

// Stop ends every check and waits for them.
func (c *Checker) Stop() {
	c.mu.Lock()
	c.cancel()
	checks := c.checks
	c.checks = map[string]*check{}
	c.mu.Unlock()
	for _, ch := range checks {
		<-ch.done
	}
}

// run checks one peer: at once, then every interval. Only changes of the
// result are reported and logged.
func (c *Checker) run(ctx context.Context, ch *check, key string, b lb.Backend) {
	defer close(ch.done)
	ticks, stop := c.newTicks(key, ch.cfg.Interval)
	defer stop()
	var last *bool
	for {
		err := c.probe(ctx, b, ch.cfg)
		if ctx.Err() != nil {
			return
		}
		passing := err == nil
		if last == nil || *last != passing {
			c.rep.SetCheckResult(key, passing)
			ev := c.log.Info()
			msg := "health check passing"
			if !passing {
				ev, msg = c.log.Warn().Err(err), "health check failing: peer out of selection"
			}
			if last != nil || !passing {
				ev.Str("service", b.Service).Str("container", b.Name).Str("address", b.Addr).
					Str("path", ch.cfg.Path).Msg(msg)
			}
			last = &passing
		}
		if c.checked != nil {
			c.checked(key, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
	}
}

// newTicks starts the ticks of a peer's checks (see Checker.ticks).
func (c *Checker) newTicks(key string, interval time.Duration) (<-chan time.Time, func()) {
	if c.ticks != nil {
		return c.ticks(key, interval)
	}
	t := time.NewTicker(interval)
	return t.C, t.Stop
}

// probe makes one check: GET path on the peer, passing on 2xx and 3xx.
func (c *Checker) probe(ctx context.Context, b lb.Backend, cfg lb.HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	host, url := b.Addr, "http://"+b.Addr+cfg.Path
	if b.Network == "unix" {
		host, url = "localhost", "http://localhost"+cfg.Path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Host = host
	req.Header.Set("User-Agent", "wharf-health-check")
	client := c.client
	if b.Network == "unix" {
		d := net.Dialer{}
		client = &http.Client{Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", b.Addr)
			},
		}, CheckRedirect: c.client.CheckRedirect}
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode >= 400 {
		return fmt.Errorf("GET %s answered %s", cfg.Path, res.Status)
	}
	return nil
}
