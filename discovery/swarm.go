package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/internal/clock"
	"github.com/wharflb/wharf/lb"
)

// SwarmEngine is the part of the Docker API the SwarmWatcher uses; a
// *client.Client connected to a Swarm manager implements it.
type SwarmEngine interface {
	Info(ctx context.Context) (system.Info, error)
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	ServiceList(ctx context.Context, options swarm.ServiceListOptions) ([]swarm.Service, error)
	TaskList(ctx context.Context, options swarm.TaskListOptions) ([]swarm.Task, error)
	NodeList(ctx context.Context, options swarm.NodeListOptions) ([]swarm.Node, error)
	NetworkInspect(ctx context.Context, id string, options network.InspectOptions) (network.Inspect, error)
	ClientVersion() string
	DaemonHost() string
}

// The task polling cadence. The Engine sends no task events (moby#37403),
// so the tasks of the labelled services are read with one GET /tasks per
// poll, filtered by those services' IDs and by desired state running.
//
// A task told to stop (rolling update, scale-down, service rm) has its
// desired state changed about 3 s before its container gets SIGTERM (the
// executor waits 2 s for the service binding to converge, and more
// measured): a fast poll takes it out with 2.75 s to spare; even the slow
// poll does so with about 2 s to spare. A new task is routed at most one
// poll interval (plus its probe) after it reaches running.
//
// The load on the manager is therefore: nothing while no service is
// labelled; one GET /tasks a second in the steady state; four a second for
// DefaultSwarmFastFor after an event of a node or of a balanced service,
// during a rolling update and while a task of a balanced service is
// starting, plus one at each such event (events queued together share
// it); one GET /services per service event, one GET /nodes per node
// event. Another service's event costs its GET /services only.
const (
	DefaultSwarmFastPoll = 250 * time.Millisecond
	DefaultSwarmSlowPoll = time.Second
	DefaultSwarmFastFor  = 10 * time.Second
)

// SwarmConfig configures a SwarmWatcher.
type SwarmConfig struct {
	Network     string // name or ID of the swarm-scoped network whose tasks are balanced
	LabelPrefix string // "lb" by default
	Log         zerolog.Logger

	// FastPoll and SlowPoll are the intervals between reads of the
	// tasks; FastPoll applies for FastFor after an event of a node or of
	// a balanced service, during a rolling update and while a task is
	// starting.
	FastPoll, SlowPoll, FastFor time.Duration

	// ProbeInterval is how often a new task's port is tried before it is
	// routed; ProbeTimeout is how long it is tried at most.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	// Backoff bounds the wait between reconnection attempts.
	BackoffMin, BackoffMax time.Duration
	// CallTimeout bounds each request to the engine other than the events
	// stream.
	CallTimeout time.Duration

	// Clock times the polls, the backoff and the probes; nil means the
	// system clock.
	Clock clock.Clock
	// Dial opens the probes' connections, which are closed at once. nil
	// means a net.Dialer with a 250 ms timeout. It is called from the
	// probes' goroutines.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

func (c *SwarmConfig) setDefaults() {
	base := Config{ProbeInterval: c.ProbeInterval, ProbeTimeout: c.ProbeTimeout, BackoffMin: c.BackoffMin,
		BackoffMax: c.BackoffMax, CallTimeout: c.CallTimeout, Clock: c.Clock, Dial: c.Dial, LabelPrefix: c.LabelPrefix}
	base.setDefaults()
	c.LabelPrefix, c.ProbeInterval, c.ProbeTimeout = base.LabelPrefix, base.ProbeInterval, base.ProbeTimeout
	c.BackoffMin, c.BackoffMax, c.CallTimeout, c.Clock, c.Dial = base.BackoffMin, base.BackoffMax, base.CallTimeout, base.Clock, base.Dial
	if c.FastPoll == 0 {
		c.FastPoll = DefaultSwarmFastPoll
	}
	if c.SlowPoll == 0 {
		c.SlowPoll = DefaultSwarmSlowPoll
	}
	if c.FastFor == 0 {
		c.FastFor = DefaultSwarmFastFor
	}
}

// NotManagerError says that the engine is not a Swarm manager: only
// managers answer for services, tasks and nodes.
type NotManagerError struct {
	State string // the engine's swarm state: "inactive", "active" (a worker)...
	Cause error  // the engine's own answer, when it refused a request
}

func (e *NotManagerError) Error() string {
	msg := "the Docker engine is not a Swarm manager"
	if e.State != "" {
		msg += " (swarm state " + e.State + ")"
	}
	msg += ": run wharf on a manager node: --constraint node.role==manager"
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *NotManagerError) Unwrap() error { return e.Cause }

// IsNotManager reports whether err says that the engine is not a Swarm
// manager.
func IsNotManager(err error) bool {
	var nm *NotManagerError
	return errors.As(err, &nm)
}

// SwarmWatcher follows the services of a Swarm through one manager and
// publishes the routable tasks of the labelled ones on one network. Run is
// called from one goroutine, which owns the watcher's state; cfg is
// read-only after NewSwarm and also read by the probes' goroutines.
type SwarmWatcher struct {
	engine  SwarmEngine
	cfg     SwarmConfig
	log     zerolog.Logger
	publish func([]lb.Backend)

	services  map[string]*swarmService // every service, by ID
	nodesDown map[string]bool          // nodes whose state is down, by ID
	nodeNames map[string]string        // nodes' hostnames, by ID
	tasks     map[string]*entry        // tasks of labelled services, by ID
	starting  bool                     // a task was starting at the last poll
	fastUntil time.Time

	networkID   string // "" until found
	networkWarn string // last network warning logged

	probes    chan probeResult
	probers   sync.WaitGroup
	published []lb.Backend
	synced    atomic.Bool

	eventsApplied atomic.Uint64
	resyncs       atomic.Uint64
	polls         atomic.Uint64
	connected     atomic.Bool
}

// swarmService is the watcher's view of one service.
type swarmService struct {
	res    ServiceResult
	warned string // last warning logged, so it is logged once
}

// NewSwarm returns a SwarmWatcher that calls publish with every new
// complete set of routable tasks, sorted by name.
func NewSwarm(engine SwarmEngine, cfg SwarmConfig, publish func([]lb.Backend)) *SwarmWatcher {
	cfg.setDefaults()
	return &SwarmWatcher{
		engine:    engine,
		cfg:       cfg,
		log:       cfg.Log.With().Str("source", "swarm").Str("network", cfg.Network).Logger(),
		publish:   publish,
		services:  map[string]*swarmService{},
		nodesDown: map[string]bool{},
		nodeNames: map[string]string{},
		tasks:     map[string]*entry{},
		probes:    make(chan probeResult, 64),
	}
}

// Run watches the swarm until ctx is done. When the manager is lost it
// keeps the last published set, reconnects with capped exponential
// backoff and resyncs; the outage and the recovery are logged once each.
func (w *SwarmWatcher) Run(ctx context.Context) error {
	delay := w.cfg.BackoffMin
	recovering := false
	var outageStart time.Time
	for {
		connected, err := w.session(ctx, recovering, outageStart)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			delay, recovering = w.cfg.BackoffMin, false
		}
		if !recovering {
			recovering, outageStart = true, w.cfg.Clock.Now()
			msg := explain(err, w.engine.DaemonHost())
			var nm *NotManagerError
			if errors.As(err, &nm) {
				msg = nm.Error()
			}
			w.log.Error().Err(err).Str("engine", w.engine.DaemonHost()).
				Msg(msg + "; serving the last known peers and retrying")
		} else {
			w.log.Debug().Err(err).Dur("retry_in", delay).Msg("swarm manager still unreachable")
		}
		t := w.cfg.Clock.NewTimer(jitter(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		delay = min(delay*2, w.cfg.BackoffMax)
	}
}

// session connects, resyncs and follows events and polls until the stream
// breaks. It reports whether it got as far as a complete resync.
func (w *SwarmWatcher) session(ctx context.Context, recovering bool, outageStart time.Time) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
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
	if !info.Swarm.ControlAvailable {
		return false, fmt.Errorf("discovery: %w", &NotManagerError{State: string(info.Swarm.LocalNodeState)})
	}
	// Subscribe before listing, from the engine's time of the Info call,
	// so that nothing that happens in between is lost.
	since := w.cfg.Clock.Now().Add(-2 * time.Second)
	if t, err := time.Parse(time.RFC3339Nano, info.SystemTime); err == nil {
		since = t
	}
	msgs, errs := w.engine.Events(ctx, events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("type", "service"), filters.Arg("type", "node")),
	})
	if err := w.resync(ctx); err != nil {
		return false, err
	}
	w.resyncs.Add(1)
	w.connected.Store(true)
	defer w.connected.Store(false)
	if recovering {
		w.log.Info().Dur("outage", w.cfg.Clock.Now().Sub(outageStart).Round(time.Millisecond)).
			Int("peers", len(w.published)).Msg("reconnected to the Swarm manager; resynced")
	} else if !w.synced.Load() {
		w.log.Info().Str("engine_version", info.ServerVersion).Str("api_version", w.engine.ClientVersion()).
			Int("peers", len(w.published)).Msg("connected to the Swarm manager")
	}
	w.synced.Store(true)

	every := w.interval()
	poll := w.cfg.Clock.NewTimer(every)
	defer poll.Stop()
	w.log.Debug().Dur("every", every).Msg("polling the tasks")
	for {
		polled := false
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-errs:
			if err == nil {
				err = errors.New("events stream closed")
			}
			return true, fmt.Errorf("discovery: events stream: %w", err)
		case m := <-msgs:
			// Coalesce: apply what already queued up, then poll once if
			// any of it concerns the balanced tasks.
			var relevant bool
			relevant, err = w.handle(ctx, m)
			for drained := false; err == nil && !drained; {
				select {
				case m := <-msgs:
					var r bool
					r, err = w.handle(ctx, m)
					relevant = relevant || r
				default:
					drained = true
				}
			}
			if err == nil && relevant {
				err = w.pollTasks(ctx)
				polled = true
			}
		case <-poll.C():
			if w.networkID == "" {
				// Missing or not usable at the last look: look again, so
				// that creating it is enough.
				err = w.resolveNetwork(ctx)
			}
			if err == nil {
				err = w.pollTasks(ctx)
			}
			polled = true
		case p := <-w.probes:
			w.probed(p)
		}
		if polled && err == nil {
			// Re-armed before what the poll changed is published, so that
			// whoever sees the publish knows the next poll's time is set.
			next := w.interval()
			poll.Reset(next)
			if next != every {
				every = next
				w.log.Debug().Dur("every", every).Msg("polling the tasks")
			}
		}
		w.flush()
		if err != nil {
			return true, err
		}
	}
}

// interval is the time until the next poll of the tasks.
func (w *SwarmWatcher) interval() time.Duration {
	if w.starting || w.cfg.Clock.Now().Before(w.fastUntil) {
		return w.cfg.FastPoll
	}
	for _, s := range w.services {
		if s.res.Status == Routable && s.res.Updating {
			return w.cfg.FastPoll
		}
	}
	return w.cfg.SlowPoll
}

// resync lists everything again: the network, the services, the nodes and
// the tasks.
func (w *SwarmWatcher) resync(ctx context.Context) error {
	if err := w.resolveNetwork(ctx); err != nil {
		return err
	}
	if err := w.listServices(ctx, ""); err != nil {
		return err
	}
	if err := w.listNodes(ctx); err != nil {
		return err
	}
	if err := w.pollTasks(ctx); err != nil {
		return err
	}
	w.flush()
	return nil
}

// call runs one request with CallTimeout and says whether its failure
// means the manager is lost (returned) or is about the request (logged by
// the caller).
func (w *SwarmWatcher) call(ctx context.Context, what string, f func(ctx context.Context) error) (lost bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	err = f(cctx)
	cancel()
	if err == nil {
		return false, nil
	}
	if strings.Contains(err.Error(), "not a swarm manager") {
		return true, fmt.Errorf("discovery: %s: %w", what, &NotManagerError{Cause: err})
	}
	if lostEngine(ctx, err) || cerrdefs.IsUnavailable(err) {
		return true, fmt.Errorf("discovery: %s: %w", what, err)
	}
	return false, fmt.Errorf("discovery: %s: %w", what, err)
}

// resolveNetwork learns the network's ID and says once what is wrong with
// it: missing, not swarm-scoped, or not attachable.
func (w *SwarmWatcher) resolveNetwork(ctx context.Context) error {
	var n network.Inspect
	lost, err := w.call(ctx, "inspect network "+w.cfg.Network, func(ctx context.Context) (err error) {
		n, err = w.engine.NetworkInspect(ctx, w.cfg.Network, network.InspectOptions{Scope: "swarm"})
		return err
	})
	if lost {
		return err
	}
	if err != nil && isNotFound(err) {
		// The Engine answers 404 for a network of another scope: look
		// for it in every scope, so that a local --network is named as
		// such rather than as missing.
		var other network.Inspect
		lost, aerr := w.call(ctx, "inspect network "+w.cfg.Network, func(ctx context.Context) (err error) {
			other, err = w.engine.NetworkInspect(ctx, w.cfg.Network, network.InspectOptions{})
			return err
		})
		if lost {
			return aerr
		}
		if aerr == nil && other.Scope != "swarm" {
			n, err = other, nil
		}
	}
	warn := ""
	switch {
	case err != nil && isNotFound(err):
		warn = fmt.Sprintf("network %q not found among the swarm's networks; create it: docker network create --driver overlay --attachable %s",
			w.cfg.Network, w.cfg.Network)
	case err != nil:
		warn = err.Error()
	case n.Scope != "swarm":
		warn = fmt.Sprintf("--network %s is a %s-scoped %s network, which Swarm tasks cannot join: use an overlay network: "+
			"docker network create --driver overlay --attachable NAME", w.cfg.Network, n.Scope, n.Driver)
	case n.Ingress:
		warn = fmt.Sprintf("--network %s is the ingress network, whose addresses are not the tasks' own: use an overlay network "+
			"attached to the services", w.cfg.Network)
	case !n.Attachable:
		warn = fmt.Sprintf("network %s is not attachable: wharf run as a plain container (docker run --network %s) cannot join it; "+
			"recreate it with docker network create --driver overlay --attachable, or run wharf as a service", w.cfg.Network, w.cfg.Network)
	}
	if err == nil && n.Scope == "swarm" && !n.Ingress {
		w.networkID = n.ID
	} else {
		w.networkID = ""
	}
	if warn != w.networkWarn {
		if warn != "" {
			w.log.Warn().Msg(warn)
		} else if w.networkWarn != "" {
			w.log.Info().Msg("network found")
		}
		w.networkWarn = warn
	}
	return nil
}

// listServices lists the service id (every service when id is "") and
// maps each; with an id, a service no longer there is removed.
func (w *SwarmWatcher) listServices(ctx context.Context, id string) error {
	var opts swarm.ServiceListOptions
	if id != "" {
		opts.Filters = filters.NewArgs(filters.Arg("id", id))
	}
	var list []swarm.Service
	lost, err := w.call(ctx, "list services", func(ctx context.Context) (err error) {
		list, err = w.engine.ServiceList(ctx, opts)
		return err
	})
	if lost {
		return err
	}
	if err != nil {
		w.log.Warn().Err(err).Msg("keeping the services' last known state")
		return nil
	}
	seen := map[string]bool{}
	for _, s := range list {
		if id != "" && s.ID != id {
			continue // the filter matches ID prefixes
		}
		seen[s.ID] = true
		w.updateService(s)
	}
	for sid := range w.services {
		if !seen[sid] && (id == "" || sid == id) {
			w.removeService(sid)
		}
	}
	return nil
}

// updateService maps s and logs, once each, why a service meant for wharf
// is skipped.
func (w *SwarmWatcher) updateService(s swarm.Service) {
	res := MapService(s, w.cfg.LabelPrefix)
	e := w.services[s.ID]
	if e == nil {
		e = &swarmService{}
		w.services[s.ID] = e
	}
	e.res = res
	warn := ""
	switch {
	case res.Status == Invalid:
		warn = res.Err.Error()
	case res.Status == Routable && w.networkID != "" && !onNetwork(s, w.networkID, w.cfg.Network):
		warn = fmt.Sprintf("service %s is labelled %s.enable but not attached to network %s: docker service update --network-add %s %s",
			res.Name, w.cfg.LabelPrefix, w.cfg.Network, w.cfg.Network, res.Name)
	}
	if warn != e.warned {
		e.warned = warn
		if warn != "" {
			w.log.Warn().Str("service", res.Name).Msg("service skipped: " + warn)
		}
		if res.Status == Routable && len(res.Unknown) > 0 {
			w.log.Debug().Str("service", res.Name).Strs("labels", res.Unknown).Msg("unknown labels ignored")
		}
	}
	if res.Status != Routable {
		w.dropTasksOf(s.ID, res.Reason)
	}
}

// onNetwork reports whether the service's tasks are attached to the
// network with id (or named name).
func onNetwork(s swarm.Service, id, name string) bool {
	nets := s.Spec.TaskTemplate.Networks
	if len(nets) == 0 {
		nets = s.Spec.Networks //nolint:staticcheck // older specs
	}
	for _, n := range nets {
		if n.Target == id || n.Target == name || len(n.Target) >= 12 && strings.HasPrefix(id, n.Target) {
			return true
		}
	}
	return false
}

func (w *SwarmWatcher) removeService(id string) {
	w.dropTasksOf(id, "service removed")
	delete(w.services, id)
}

func (w *SwarmWatcher) dropTasksOf(serviceID, reason string) {
	for tid, e := range w.tasks {
		if e.service == serviceID {
			w.dropTask(tid, reason)
		}
	}
}

// listNodes learns which nodes are down.
func (w *SwarmWatcher) listNodes(ctx context.Context) error {
	var list []swarm.Node
	lost, err := w.call(ctx, "list nodes", func(ctx context.Context) (err error) {
		list, err = w.engine.NodeList(ctx, swarm.NodeListOptions{})
		return err
	})
	if lost {
		return err
	}
	if err != nil {
		w.log.Warn().Err(err).Msg("keeping the nodes' last known state")
		return nil
	}
	clear(w.nodesDown)
	clear(w.nodeNames)
	for _, n := range list {
		if n.Status.State == swarm.NodeStateDown {
			w.nodesDown[n.ID] = true
		}
		w.nodeNames[n.ID] = n.Description.Hostname
	}
	return nil
}

// handle applies one service or node event: a removed service's tasks are
// out at once, without asking the manager; otherwise the service or the
// nodes are read again. It reports whether the event may change the tasks
// to route (a node's, or a service that is or was balanced): only those
// make polling fast for FastFor, so that a busy swarm's other services
// cost one GET /services per event and nothing more.
func (w *SwarmWatcher) handle(ctx context.Context, m events.Message) (bool, error) {
	w.eventsApplied.Add(1)
	w.log.Debug().Str("type", string(m.Type)).Str("action", string(m.Action)).
		Str("name", m.Actor.Attributes["name"]).Msg("event")
	switch m.Type {
	case events.ServiceEventType:
		id := m.Actor.ID
		if m.Action == events.ActionRemove {
			w.removeService(id)
			return false, nil
		}
		was := w.balanced(id)
		if err := w.listServices(ctx, id); err != nil {
			return false, err
		}
		if !was && !w.balanced(id) {
			return false, nil
		}
	case events.NodeEventType:
		if err := w.listNodes(ctx); err != nil {
			return false, err
		}
	default:
		return false, nil
	}
	w.fastUntil = w.cfg.Clock.Now().Add(w.cfg.FastFor)
	return true, nil
}

// balanced reports whether service id is labelled for wharf and valid.
func (w *SwarmWatcher) balanced(id string) bool {
	s := w.services[id]
	return s != nil && s.res.Status == Routable
}

// pollTasks reads the tasks of the labelled services, with one request,
// and applies them: a task not listed any more (its desired state left
// running) is out.
func (w *SwarmWatcher) pollTasks(ctx context.Context) error {
	f := filters.NewArgs(filters.Arg("desired-state", "running"))
	for id, s := range w.services {
		if s.res.Status == Routable {
			f.Add("service", id)
		}
	}
	w.starting = false
	if !f.Contains("service") || w.networkID == "" {
		for id := range w.tasks {
			w.dropTask(id, "no labelled service on the network")
		}
		return nil
	}
	var list []swarm.Task
	lost, err := w.call(ctx, "list tasks", func(ctx context.Context) (err error) {
		list, err = w.engine.TaskList(ctx, swarm.TaskListOptions{Filters: f})
		return err
	})
	w.polls.Add(1)
	if lost {
		return err
	}
	if err != nil {
		// A service removed since it was listed makes the whole request
		// fail: learn the services again, and poll again soon.
		w.log.Debug().Err(err).Msg("tasks not listed; listing the services again")
		w.fastUntil = w.cfg.Clock.Now().Add(w.cfg.FastFor)
		return w.listServices(ctx, "")
	}
	seen := map[string]bool{}
	for _, t := range list {
		s := w.services[t.ServiceID]
		if s == nil || s.res.Status != Routable {
			continue
		}
		seen[t.ID] = true
		if t.DesiredState == swarm.TaskStateRunning && t.Status.State != swarm.TaskStateRunning &&
			!taskEnded(t.Status.State) {
			w.starting = true
		}
		w.updateTask(ctx, t, s.res)
	}
	for id := range w.tasks {
		if !seen[id] {
			w.dropTask(id, "desired state no longer running")
		}
	}
	return nil
}

func taskEnded(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed,
		swarm.TaskStateRejected, swarm.TaskStateRemove, swarm.TaskStateOrphaned:
		return true
	}
	return false
}

// updateTask applies what MapTask makes of t: out, routed at once (the
// service's HEALTHCHECK said healthy) or once its port accepts a
// connection.
func (w *SwarmWatcher) updateTask(ctx context.Context, t swarm.Task, svc ServiceResult) {
	v := MapTask(t, svc, w.networkID, w.nodesDown[t.NodeID])
	if name := w.nodeNames[t.NodeID]; name != "" {
		v.Backend.Task.Node = name
	}
	e := w.tasks[t.ID]
	if v.Status == Ignored {
		if e != nil {
			w.dropTask(t.ID, v.Reason)
		}
		return
	}
	if e == nil {
		e = &entry{id: t.ID, service: t.ServiceID}
		w.tasks[t.ID] = e
	}
	e.name = v.Backend.Name
	switch v.Status {
	case Invalid:
		if msg := v.Err.Error(); e.warned != msg {
			e.warned = msg
			w.log.Warn().Str("task", e.name).Err(v.Err).Msg("task skipped")
		}
		w.taskOut(e, "invalid")
		return
	case Unready:
		w.taskOut(e, v.Reason)
		return
	}
	e.warned = ""
	if e.routable && e.backend.Addr == v.Backend.Addr {
		e.backend = v.Backend // labels may have changed
		return
	}
	if e.probing != nil && e.backend.Addr == v.Backend.Addr {
		e.backend = v.Backend
		return
	}
	e.backend = v.Backend
	if v.HasHealthcheck {
		w.taskOut(e, "")
		e.routable = true
		return
	}
	w.taskOut(e, "")
	e.probeGen++
	pctx, cancel := context.WithCancel(ctx)
	e.probing = cancel
	res, addr := probeResult{id: e.id, gen: e.probeGen}, e.backend.Addr
	w.probers.Go(func() { w.portProbe().run(pctx, res, addr) })
}

func (w *SwarmWatcher) portProbe() portProbe {
	return portProbe{clock: w.cfg.Clock, dial: w.cfg.Dial, every: w.cfg.ProbeInterval, limit: w.cfg.ProbeTimeout, out: w.probes}
}

func (w *SwarmWatcher) probed(p probeResult) {
	e := w.tasks[p.id]
	if e == nil || e.probeGen != p.gen || e.probing == nil {
		return
	}
	e.probing()
	e.probing = nil
	if !p.ok {
		w.log.Warn().Str("task", e.name).Str("address", e.backend.Addr).Err(p.err).
			Msgf("port never accepted a connection within %s; not routed (check %s.port on the service)",
				w.cfg.ProbeTimeout, w.cfg.LabelPrefix)
		return
	}
	e.routable = true
}

func (w *SwarmWatcher) stopProbes() {
	for _, e := range w.tasks {
		if e.probing != nil {
			e.probing()
			e.probing = nil
		}
	}
	w.probers.Wait()
}

// taskOut takes e out of selection (reason is for the debug log).
func (w *SwarmWatcher) taskOut(e *entry, reason string) {
	if e.probing != nil {
		e.probing()
		e.probing = nil
	}
	if e.routable && reason != "" {
		w.log.Debug().Str("task", e.name).Str("reason", reason).Msg("out of selection")
	}
	e.routable = false
}

func (w *SwarmWatcher) dropTask(id, reason string) {
	if e := w.tasks[id]; e != nil {
		w.taskOut(e, reason)
		delete(w.tasks, id)
	}
}

// flush publishes the routable set when it differs from the last one.
func (w *SwarmWatcher) flush() {
	var list []lb.Backend
	for _, e := range w.tasks {
		if e.routable {
			list = append(list, e.backend)
		}
	}
	w.published = publishChanged(list, w.published, w.synced.Load(), w.publish)
}

// Synced reports whether the first complete list was published. Safe for
// concurrent use.
func (w *SwarmWatcher) Synced() bool { return w.synced.Load() }

// EventsApplied counts the service and node events handled. Safe for
// concurrent use.
func (w *SwarmWatcher) EventsApplied() uint64 { return w.eventsApplied.Load() }

// Resyncs counts complete listings. Safe for concurrent use.
func (w *SwarmWatcher) Resyncs() uint64 { return w.resyncs.Load() }

// Polls counts the reads of the tasks. Safe for concurrent use.
func (w *SwarmWatcher) Polls() uint64 { return w.polls.Load() }

// Connected reports whether the events stream is up. Safe for concurrent
// use.
func (w *SwarmWatcher) Connected() bool { return w.connected.Load() }
