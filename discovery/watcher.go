// Package discovery owns everything Docker: it watches the Engine's events,
// turns each labelled container on the configured network into an
// lb.Backend, and publishes complete snapshots of the routable set. It never
// touches HTTP.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/internal/clock"
	"github.com/wharflb/wharf/lb"
)

// Engine is the part of the Docker API the watcher uses; *client.Client
// implements it.
type Engine interface {
	Info(ctx context.Context) (system.Info, error)
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	NetworkInspect(ctx context.Context, id string, options network.InspectOptions) (network.Inspect, error)
	ClientVersion() string
	DaemonHost() string
}

// Config configures a Watcher.
type Config struct {
	Network     string // name or ID of the network whose containers are balanced
	LabelPrefix string // "lb" by default
	Log         zerolog.Logger
	// SkipSwarmTasks leaves out the containers of Swarm tasks: a
	// SwarmWatcher balances them as tasks of their service.
	SkipSwarmTasks bool

	// ProbeInterval is how often a started container's port is tried
	// before it is routed; ProbeTimeout is how long it is tried at most.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// KillHold is how long a container stays out of selection after a
	// terminating signal when it keeps running (the process ignored it).
	KillHold time.Duration
	// Backoff bounds the wait between reconnection attempts.
	BackoffMin, BackoffMax time.Duration
	// CallTimeout bounds each request to the engine other than the events
	// stream.
	CallTimeout time.Duration

	// Clock times the backoff, the kill holds and the probes; nil means
	// the system clock. Tests move a clock.Fake instead of waiting.
	Clock clock.Clock
	// Dial opens the probes' connections, which are closed at once: only
	// whether one opens counts. nil means a net.Dialer with a 250 ms
	// timeout. It is called from the probes' goroutines.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

func (c *Config) setDefaults() {
	c.LabelPrefix = normPrefix(c.LabelPrefix) // "lb." is "lb", "" is "lb"
	if c.ProbeInterval == 0 {
		c.ProbeInterval = 5 * time.Millisecond
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = 60 * time.Second
	}
	if c.KillHold == 0 {
		c.KillHold = 60 * time.Second
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = 100 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 5 * time.Second
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Dial == nil {
		c.Dial = (&net.Dialer{Timeout: 250 * time.Millisecond}).DialContext
	}
}

// Watcher follows one Docker engine and publishes the routable backends of
// one network. Run is called from one goroutine; the watcher's state is
// owned by that goroutine, except cfg, which is read-only after New and
// also read by the probes' goroutines.
type Watcher struct {
	engine  Engine
	cfg     Config
	log     zerolog.Logger
	publish func([]lb.Backend)

	entries map[string]*entry
	// ignored holds containers known not to be backends here (not
	// labelled, or not on the network): their events are skipped without
	// asking the engine, so that other containers' churn never delays an
	// event of ours. A connect to the network or a resync forgets them.
	ignored   map[string]bool
	probes    chan probeResult // results of the probes of the current session
	probers   sync.WaitGroup   // the probes' goroutines
	published []lb.Backend
	synced    atomic.Bool // first complete list published
	claims    addressClaims

	// Counters for metrics, read from other goroutines.
	eventsApplied atomic.Uint64
	resyncs       atomic.Uint64
	connected     atomic.Bool
	networkID     string
	selfID        string // wharf's own container, when it runs in one
	selfWarn      bool
}

// entry is the watcher's view of one container.
type entry struct {
	id, name string
	service  string // a task's service ID (SwarmWatcher only)
	backend  lb.Backend
	routable bool
	probing  context.CancelFunc // non-nil while the port is being probed
	probeGen int
	// holdEnd is set by a terminating signal: until then the container
	// stays out of selection, whatever else happens, unless it is started
	// again (a new process).
	holdEnd time.Time
	warned  string // last warning logged, so it is logged once
}

// probeResult is what a probe reports: the port accepted a connection, or
// never did within ProbeTimeout. A cancelled probe reports nothing.
type probeResult struct {
	id  string
	gen int
	ok  bool
	err error
}

// New returns a Watcher that calls publish with every new complete set of
// routable backends, sorted by container name.
func New(engine Engine, cfg Config, publish func([]lb.Backend)) *Watcher {
	cfg.setDefaults()
	log := cfg.Log.With().Str("network", cfg.Network).Logger()
	return &Watcher{
		engine:  engine,
		cfg:     cfg,
		log:     log,
		publish: publish,
		entries: map[string]*entry{},
		ignored: map[string]bool{},
		probes:  make(chan probeResult, 64),
		claims:  addressClaims{log: log},
	}
}

// Run watches the engine until ctx is done. When the connection is lost it
// keeps the last published set, reconnects with capped exponential backoff,
// and resyncs by listing; the outage and the recovery are logged once each.
func (w *Watcher) Run(ctx context.Context) error {
	delay := w.cfg.BackoffMin
	recovering := false // in an outage that was logged
	var outageStart time.Time
	for {
		connected, err := w.session(ctx, recovering, outageStart)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			// The recovery was logged; what broke now is a new outage.
			delay, recovering = w.cfg.BackoffMin, false
		}
		if !recovering {
			recovering, outageStart = true, w.cfg.Clock.Now()
			w.log.Error().Err(err).Str("engine", w.engine.DaemonHost()).
				Msg(explain(err, w.engine.DaemonHost()) + "; serving the last known peers and retrying")
		} else {
			w.log.Debug().Err(err).Dur("retry_in", delay).Msg("engine still unreachable")
		}
		if !w.sleep(ctx, jitter(delay)) {
			return nil
		}
		delay = min(delay*2, w.cfg.BackoffMax)
	}
}

// sleep waits for d on the watcher's clock; it reports false when ctx
// ended first.
func (w *Watcher) sleep(ctx context.Context, d time.Duration) bool {
	t := w.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// session connects, resyncs and follows events until the stream breaks. It
// reports whether it got as far as a complete resync.
func (w *Watcher) session(ctx context.Context, recovering bool, outageStart time.Time) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	// The probes of this session die with it: a resync starts them again.
	defer func() {
		cancel()
		w.stopProbes()
	}()

	cctx, ccancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	info, err := w.engine.Info(cctx)
	ccancel()
	if err != nil {
		return false, err
	}
	// Subscribe before listing so nothing is lost in between. The engine
	// registers a subscription only after it answered the request, so
	// Since makes it replay what happened from the engine's time of the
	// Info call on. Events from before that are not replayed: the list
	// that follows shows their outcome, and replaying a removal (pause,
	// kill, disconnect...) that a later event undid would take a running
	// container out of selection again.
	since := w.cfg.Clock.Now().Add(-2 * time.Second)
	if t, err := time.Parse(time.RFC3339Nano, info.SystemTime); err == nil {
		since = t
	}
	msgs, errs := w.engine.Events(ctx, events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: eventFilters(),
	})
	if err := w.resync(ctx); err != nil {
		return false, err
	}
	w.resyncs.Add(1)
	w.connected.Store(true)
	defer w.connected.Store(false)
	if recovering {
		w.log.Info().Dur("outage", w.cfg.Clock.Now().Sub(outageStart).Round(time.Millisecond)).
			Int("peers", len(w.published)).Msg("reconnected to the Docker engine; resynced")
	} else if !w.synced.Load() {
		w.log.Info().Str("engine_version", info.ServerVersion).Str("api_version", w.engine.ClientVersion()).
			Int("peers", len(w.published)).Msg("connected to the Docker engine")
	}
	w.synced.Store(true)

	hold := holdTimer{clock: w.cfg.Clock}
	defer hold.stop()
	for {
		holdEnded := hold.arm(w.nextHoldEnd())
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-errs:
			if err == nil {
				err = errors.New("events stream closed")
			}
			return true, fmt.Errorf("discovery: events stream: %w", err)
		case m := <-msgs:
			err = w.handle(ctx, m)
			// Coalesce: apply what already queued up, then publish once.
			for drained := false; err == nil && !drained; {
				select {
				case m := <-msgs:
					err = w.handle(ctx, m)
				default:
					drained = true
				}
			}
		case p := <-w.probes:
			w.probed(p)
		case <-holdEnded:
			hold.fired()
			err = w.releaseHolds(ctx)
		}
		// What was applied is published, also when the engine was lost
		// half-way: a removal never waits for the engine.
		w.flush()
		if err != nil {
			return true, err
		}
	}
}

// swarmTaskLabel is set by the Engine on the containers of Swarm tasks.
const swarmTaskLabel = "com.docker.swarm.task.id"

// eventFilters selects the events that can change the routable set.
func eventFilters() filters.Args {
	f := filters.NewArgs()
	f.Add("type", "container")
	f.Add("type", "network")
	for _, a := range []string{"start", "restart", "kill", "die", "stop", "pause", "unpause",
		"destroy", "rename", "health_status", "connect", "disconnect", "create"} {
		f.Add("event", a)
	}
	return f
}

// resync lists the labelled containers and rebuilds the watcher's state
// from their inspect data, keeping the routable state of peers that did not
// change so a reconnection does not make them flap.
func (w *Watcher) resync(ctx context.Context) error {
	if err := w.resolveNetwork(ctx); err != nil {
		return err
	}
	// Filter on the key only: Map decides what counts as enabled.
	f := filters.NewArgs(filters.Arg("label", w.cfg.LabelPrefix+".enable"))
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	list, err := w.engine.ContainerList(cctx, container.ListOptions{Filters: f})
	cancel()
	if err != nil {
		return fmt.Errorf("discovery: list containers: %w", err)
	}
	// What changed while disconnected is unknown: judge every container
	// again when its next event comes.
	clear(w.ignored)
	seen := map[string]bool{}
	for _, c := range list {
		seen[c.ID] = true
		if err := w.refresh(ctx, c.ID); err != nil {
			return err
		}
	}
	for id := range w.entries {
		if !seen[id] {
			w.drop(id, "gone while disconnected")
		}
	}
	w.checkSelf(ctx)
	w.flush()
	return nil
}

// resolveNetwork learns the network's ID, to recognise its events, and says
// once when it does not exist yet. It fails only when the engine is lost.
func (w *Watcher) resolveNetwork(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	n, err := w.engine.NetworkInspect(cctx, w.cfg.Network, network.InspectOptions{})
	cancel()
	switch {
	case err == nil:
	case lostEngine(ctx, err):
		return fmt.Errorf("discovery: inspect network %s: %w", w.cfg.Network, err)
	case isNotFound(err):
		if w.networkID != "missing" {
			w.log.Warn().Err(err).Msgf("network %q not found; watching for it to be created (docker network create %s)",
				w.cfg.Network, w.cfg.Network)
		}
		w.networkID = "missing"
		return nil
	default:
		w.log.Warn().Err(err).Msgf("discovery: inspect network %s", w.cfg.Network)
		return nil
	}
	if w.networkID == "missing" {
		w.log.Info().Msg("network found")
	}
	w.networkID = n.ID
	return nil
}

// lostEngine reports whether err, from a request to the engine, means the
// engine could not be asked or did not answer (no connection, connection
// lost, timeout), as opposed to an answer about the object asked for.
func lostEngine(ctx context.Context, err error) bool {
	var ne net.Error
	return ctx.Err() != nil || client.IsErrConnectionFailed(err) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// handle applies one event. Events that take a container out of selection
// act at once, without asking the engine anything: from that moment no new
// request goes to it. It fails only when the engine is lost.
func (w *Watcher) handle(ctx context.Context, m events.Message) error {
	w.eventsApplied.Add(1)
	if m.Type == events.NetworkEventType {
		if !w.ourNetwork(m.Actor) {
			return nil
		}
		w.logEvent(m)
		id := m.Actor.Attributes["container"]
		var err error
		switch m.Action {
		case events.ActionCreate:
			err = w.resolveNetwork(ctx)
		case events.ActionDisconnect:
			w.out(id, "disconnected from the network")
			if id == w.selfID {
				w.checkSelf(ctx)
			}
		case events.ActionConnect:
			delete(w.ignored, id)
			err = w.refresh(ctx, id)
			if id == w.selfID {
				w.checkSelf(ctx)
			}
		}
		return err
	}
	id := m.Actor.ID
	if m.Action == events.ActionDestroy {
		delete(w.ignored, id)
	}
	if w.entries[id] == nil && !w.candidate(m) {
		return nil
	}
	w.logEvent(m)
	action := string(m.Action)
	switch {
	case action == "kill":
		if terminating(m.Actor.Attributes["signal"]) {
			if e := w.entries[id]; e != nil {
				e.holdEnd = w.cfg.Clock.Now().Add(w.cfg.KillHold)
			}
			w.out(id, "signal "+m.Actor.Attributes["signal"])
		}
	case action == "die", action == "stop", action == "pause":
		w.out(id, action)
	case action == "destroy":
		w.drop(id, "removed")
	case action == "health_status: unhealthy":
		w.out(id, "unhealthy")
	case action == "start", action == "restart":
		// A new process: a terminating signal sent to the old one no
		// longer holds it out.
		if e := w.entries[id]; e != nil {
			e.holdEnd = time.Time{}
		}
		return w.refresh(ctx, id)
	case action == "unpause", action == "rename", strings.HasPrefix(action, "health_status"):
		// Not a new process: docker stop unpauses a paused container
		// after sending SIGTERM, so that it can handle the signal; that
		// one stays out.
		return w.refresh(ctx, id)
	}
	return nil
}

// candidate reports whether a container event of a container the watcher
// does not follow may make it a backend, judged without asking the engine:
// a container event carries the container's labels.
func (w *Watcher) candidate(m events.Message) bool {
	if _, ok := m.Actor.Attributes[w.cfg.LabelPrefix+".enable"]; !ok {
		return false
	}
	return !w.ignored[m.Actor.ID]
}

func (w *Watcher) logEvent(m events.Message) {
	w.log.Debug().Str("type", string(m.Type)).Str("action", string(m.Action)).
		Str("id", short(m.Actor.ID)).Str("name", m.Actor.Attributes["name"]).Msg("event")
}

func (w *Watcher) ourNetwork(a events.Actor) bool {
	return a.Attributes["name"] == w.cfg.Network || a.ID == w.networkID ||
		(len(w.cfg.Network) >= 12 && strings.HasPrefix(a.ID, w.cfg.Network))
}

// terminating reports whether a kill signal is one that ends the process
// (docker stop, docker kill, SIGINT, SIGQUIT...), as opposed to the signals
// used for reloads and job control.
func terminating(sig string) bool {
	switch strings.TrimPrefix(strings.ToUpper(sig), "SIG") {
	case "1", "HUP", "10", "USR1", "12", "USR2", "17", "CHLD", "18", "CONT", "23", "URG", "28", "WINCH":
		return false
	}
	return true
}

// refresh inspects a container and updates its entry: routable now, after
// a successful port probe, or not at all. It fails only when the engine is
// lost; the caller then resyncs once it is back.
func (w *Watcher) refresh(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	c, err := w.engine.ContainerInspect(cctx, id)
	cancel()
	if err != nil {
		switch {
		case isNotFound(err):
			w.drop(id, "removed")
		case lostEngine(ctx, err):
			return fmt.Errorf("discovery: inspect %s: %w", short(id), err)
		default:
			w.log.Warn().Err(err).Str("id", short(id)).Msg("discovery: inspect failed; keeping the container's last state")
		}
		return nil
	}
	w.update(ctx, id, c)
	return nil
}

// update applies the inspect data c of container id.
func (w *Watcher) update(ctx context.Context, id string, c container.InspectResponse) {
	v := Map(c, w.cfg.Network, w.cfg.LabelPrefix)
	if w.cfg.SkipSwarmTasks && c.Config != nil && c.Config.Labels[swarmTaskLabel] != "" {
		v = Result{Status: Ignored, Reason: "a Swarm task, balanced by its service"}
	}
	e := w.entries[id]
	if v.Status == Ignored {
		if e != nil {
			w.drop(id, v.Reason)
		}
		w.ignored[id] = true
		return
	}
	delete(w.ignored, id)
	if e == nil {
		e = &entry{id: id}
		w.entries[id] = e
		if len(v.Unknown) > 0 {
			w.log.Debug().Str("container", v.Backend.Name).Strs("labels", v.Unknown).Msg("unknown labels ignored")
		}
	}
	e.name = v.Backend.Name
	if v.Status == Invalid {
		if msg := v.Err.Error(); e.warned != msg {
			e.warned = msg
			w.log.Warn().Str("container", e.name).Err(v.Err).Msg("container skipped")
		}
		w.setOut(e, "invalid")
		return
	}
	e.warned = ""
	if v.Status != Routable {
		w.setOut(e, v.Reason)
		return
	}
	if !e.holdEnd.IsZero() && w.cfg.Clock.Now().Before(e.holdEnd) {
		return // a terminating signal was sent; its die event will follow
	}
	if e.routable && e.backend.Addr == v.Backend.Addr {
		e.backend = v.Backend // same peer: labels may have changed
		return
	}
	if e.probing != nil && e.backend.Addr == v.Backend.Addr {
		return // already waiting for this address to accept connections
	}
	e.backend = v.Backend
	if v.HasHealthcheck {
		// The engine's own health check said healthy: route at once.
		w.setRoutable(e)
		return
	}
	w.startProbe(ctx, e)
}

// startProbe routes e once its port accepts a TCP connection, so that no
// client meets a backend that is not listening yet.
func (w *Watcher) startProbe(ctx context.Context, e *entry) {
	w.setOut(e, "")
	e.probeGen++
	pctx, cancel := context.WithCancel(ctx)
	e.probing = cancel
	res, addr := probeResult{id: e.id, gen: e.probeGen}, e.backend.Addr // e is not the probe's to read
	w.probers.Go(func() { w.portProbe().run(pctx, res, addr) })
}

func (w *Watcher) portProbe() portProbe {
	return portProbe{clock: w.cfg.Clock, dial: w.cfg.Dial, every: w.cfg.ProbeInterval, limit: w.cfg.ProbeTimeout, out: w.probes}
}

func (w *Watcher) probed(p probeResult) {
	e := w.entries[p.id]
	if e == nil || e.probeGen != p.gen || e.probing == nil {
		return
	}
	e.probing()
	e.probing = nil
	if !p.ok {
		w.log.Warn().Str("container", e.name).Str("address", e.backend.Addr).Err(p.err).
			Msgf("port never accepted a connection within %s; not routed (check %s.port)", w.cfg.ProbeTimeout, w.cfg.LabelPrefix)
		return
	}
	w.setRoutable(e)
}

// stopProbes cancels every probe and waits for their goroutines to end,
// so that none outlives its session (or Run) and none holds a timer once
// the watcher waits to reconnect. The containers stay out of selection
// until a refresh probes them again.
func (w *Watcher) stopProbes() {
	for _, e := range w.entries {
		if e.probing != nil {
			e.probing()
			e.probing = nil
		}
	}
	w.probers.Wait()
}

func (w *Watcher) setRoutable(e *entry) {
	if e.probing != nil {
		e.probing()
		e.probing = nil
	}
	e.routable = true
}

// setOut takes e out of selection (reason is for the debug log).
func (w *Watcher) setOut(e *entry, reason string) {
	if e.probing != nil {
		e.probing()
		e.probing = nil
	}
	if e.routable && reason != "" {
		w.log.Debug().Str("container", e.name).Str("reason", reason).Msg("out of selection")
	}
	e.routable = false
}

func (w *Watcher) out(id, reason string) {
	if e := w.entries[id]; e != nil {
		w.setOut(e, reason)
	}
}

func (w *Watcher) drop(id, reason string) {
	if e := w.entries[id]; e != nil {
		w.setOut(e, reason)
		delete(w.entries, id)
	}
}

// nextHoldEnd returns the earliest end of a kill hold, or the zero time
// when no hold runs.
func (w *Watcher) nextHoldEnd() time.Time {
	var next time.Time
	for _, e := range w.entries {
		if !e.holdEnd.IsZero() && (next.IsZero() || e.holdEnd.Before(next)) {
			next = e.holdEnd
		}
	}
	return next
}

// holdTimer fires at the earliest end of the kill holds. It is armed only
// when that end changes, not at every event, and holds no timer while no
// hold runs. It is used by the session's goroutine only.
type holdTimer struct {
	clock clock.Clock
	t     clock.Timer // made at the first hold
	at    time.Time   // the end t is armed for; zero when not armed
}

// arm makes the timer fire at end (the zero time: never) and returns the
// channel it fires on, nil when it is not armed.
func (h *holdTimer) arm(end time.Time) <-chan time.Time {
	if !end.Equal(h.at) {
		h.at = end
		switch {
		case end.IsZero():
			h.t.Stop()
		case h.t == nil:
			h.t = h.clock.NewTimer(max(end.Sub(h.clock.Now()), 0))
		default:
			h.t.Reset(max(end.Sub(h.clock.Now()), 0))
		}
	}
	if h.at.IsZero() {
		return nil
	}
	return h.t.C()
}

// fired records that the timer's value was received: it is not armed any
// more.
func (h *holdTimer) fired() { h.at = time.Time{} }

func (h *holdTimer) stop() {
	if h.t != nil {
		h.t.Stop()
	}
}

// releaseHolds looks again at containers still running long after a
// terminating signal: the process ignored it, so they are routed again.
func (w *Watcher) releaseHolds(ctx context.Context) error {
	now := w.cfg.Clock.Now()
	for id, e := range w.entries {
		if !e.holdEnd.IsZero() && !now.Before(e.holdEnd) {
			e.holdEnd = time.Time{}
			if err := w.refresh(ctx, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush publishes the routable set when it differs from the last one.
// Containers that claim one address are left out (see addressClaims); a
// container being probed claims its address already.
func (w *Watcher) flush() {
	var claims []claim
	for _, e := range w.entries {
		if e.routable || e.probing != nil {
			claims = append(claims, claim{e.backend, e.routable})
		}
	}
	list := w.claims.routable(claims)
	w.published = publishChanged(list, w.published, w.synced.Load(), w.publish)
}

// publishChanged sorts list by name (then ID) and publishes it unless it
// equals last and a first list was already published (synced). It returns
// what is now the last published list. Both watchers flush through it.
func publishChanged(list, last []lb.Backend, synced bool, publish func([]lb.Backend)) []lb.Backend {
	slices.SortFunc(list, func(a, b lb.Backend) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if synced && slices.EqualFunc(list, last, lb.Backend.Equal) {
		return last
	}
	publish(list)
	return list
}

// checkSelf warns once when wharf runs in a container that is not attached
// to the network: it could not reach any peer.
func (w *Watcher) checkSelf(ctx context.Context) {
	if w.selfID == "" {
		if _, err := os.Stat("/.dockerenv"); err != nil {
			return
		}
		host, err := os.Hostname()
		if err != nil {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
		c, err := w.engine.ContainerInspect(cctx, host)
		cancel()
		if err != nil {
			return
		}
		w.selfID = c.ID
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	c, err := w.engine.ContainerInspect(cctx, w.selfID)
	cancel()
	if err != nil {
		return
	}
	attached := c.HostConfig != nil && c.HostConfig.NetworkMode.IsHost()
	if c.NetworkSettings != nil {
		for name, n := range c.NetworkSettings.Networks {
			if name == w.cfg.Network || (n != nil && n.NetworkID == w.networkID) {
				attached = true
			}
		}
	}
	name := strings.TrimPrefix(c.Name, "/")
	switch {
	case !attached && !w.selfWarn:
		w.selfWarn = true
		w.log.Error().Str("container", name).Msgf(
			"wharf's own container is not attached to network %q and cannot reach its peers: run docker network connect %s %s",
			w.cfg.Network, w.cfg.Network, name)
	case attached && w.selfWarn:
		w.selfWarn = false
		w.log.Info().Str("container", name).Msg("wharf's own container is now attached to the network")
	}
}

// Synced reports whether the first complete list was published. It is safe
// for concurrent use.
func (w *Watcher) Synced() bool { return w.synced.Load() }

// EventsApplied counts the engine events handled. Safe for concurrent use.
func (w *Watcher) EventsApplied() uint64 { return w.eventsApplied.Load() }

// Resyncs counts complete listings: the first, then one per reconnection.
// Safe for concurrent use.
func (w *Watcher) Resyncs() uint64 { return w.resyncs.Load() }

// Connected reports whether the events stream is up. Safe for concurrent
// use.
func (w *Watcher) Connected() bool { return w.connected.Load() }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// jitter returns a random duration between d/2 and d, so that many
// watchers that lost the same engine do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
