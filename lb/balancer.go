package lb

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Balancer holds the current Table and builds the next one from the
// backends each source reports. Sources (Docker discovery, static upstreams)
// call Update with their complete, current list; the Balancer merges all
// sources, builds a new Table and publishes it with one atomic store.
//
// Update is safe for concurrent use (updates are serialized); Table never
// blocks.
type Balancer struct {
	table atomic.Pointer[Table]

	updateMu sync.Mutex // serializes Update, hooks included
	mu       sync.Mutex
	sources  map[string][]Backend
	states   map[string]*peerState // by Backend.Key, carried across tables
	services map[string]*ServiceStats
	warnings map[string]bool // conflict warnings already logged
	clock    func() int64
	log      zerolog.Logger

	// onRemove is called, outside the lock, for the runtime state of each
	// peer that left the table: the proxy closes its idle connections.
	onRemove func(attachment any)
	// onUpdate is called, outside the lock, with every new table.
	onUpdate func(*Table)
}

// Option configures a Balancer.
type Option func(*Balancer)

// WithClock replaces the monotonic clock (nanoseconds) used for passive
// health, so tests control time.
func WithClock(now func() int64) Option { return func(b *Balancer) { b.clock = now } }

// WithLogger sets the logger for peer state changes.
func WithLogger(l zerolog.Logger) Option { return func(b *Balancer) { b.log = l } }

// OnRemove registers fn to receive the attachment (see Peer.AttachOnce) of
// every peer that leaves the table. Requests in flight on it still finish.
func OnRemove(fn func(attachment any)) Option { return func(b *Balancer) { b.onRemove = fn } }

// OnUpdate registers fn to receive every new table after it is published
// (the active health checker follows the peers this way). Calls are
// serialized.
func OnUpdate(fn func(*Table)) Option { return func(b *Balancer) { b.onUpdate = fn } }

// New returns a Balancer with an empty table.
func New(opts ...Option) *Balancer {
	b := &Balancer{
		sources:  map[string][]Backend{},
		states:   map[string]*peerState{},
		services: map[string]*ServiceStats{},
		warnings: map[string]bool{},
		clock:    nanotime,
		log:      zerolog.Nop(),
	}
	for _, o := range opts {
		o(b)
	}
	b.table.Store(buildTable(nil))
	return b
}

// Table returns the current table.
func (b *Balancer) Table() *Table { return b.table.Load() }

// Now reads the balancer's clock.
func (b *Balancer) Now() int64 { return b.clock() }

// Update replaces everything source reported before with backends and
// publishes a new table. Invalid backends are skipped with a warning; the
// rest are applied.
func (b *Balancer) Update(source string, backends []Backend) {
	b.updateMu.Lock()
	defer b.updateMu.Unlock()
	b.mu.Lock()
	b.sources[source] = append([]Backend(nil), backends...)
	old := b.table.Load()
	t, removed := b.build()
	b.table.Store(t)
	b.logDiff(old, t)
	b.mu.Unlock()
	if b.onUpdate != nil {
		b.onUpdate(t)
	}
	if b.onRemove != nil {
		for _, s := range removed {
			if v := s.attached.Load(); v != nil {
				b.onRemove(*v)
			}
		}
	}
}

// build makes a new table from all sources; b.mu is held.
func (b *Balancer) build() (*Table, []*peerState) {
	names := make([]string, 0, len(b.sources))
	for n := range b.sources {
		names = append(names, n)
	}
	sort.Strings(names)

	type member struct {
		peers []*Peer
	}
	services := map[string]*member{}
	var order []string
	states := make(map[string]*peerState, len(b.states))
	for _, src := range names {
		for _, be := range b.sources[src] {
			if err := be.Validate(); err != nil {
				b.log.Warn().Str("source", src).Err(err).Msg("backend skipped")
				continue
			}
			if be.Service == "" {
				be.Service = DefaultService
			}
			k := be.Key()
			if _, dup := states[k]; dup {
				b.log.Warn().Str("source", src).Str("container", be.Name).Str("address", be.Addr).
					Msg("backend listed twice; keeping the first")
				continue
			}
			st := b.states[k]
			if st == nil {
				st = &peerState{}
				// A peer with an active health check is held out until its
				// first check passes: no request meets a peer whose health
				// is unknown.
				st.checkFailing.Store(be.Health.Path != "")
			} else if be.Health.Path == "" {
				st.checkFailing.Store(false)
			}
			states[k] = st
			m := services[be.Service]
			if m == nil {
				m = &member{}
				services[be.Service] = m
				order = append(order, be.Service)
			}
			m.peers = append(m.peers, &Peer{Backend: be, state: st})
		}
	}
	var removed []*peerState
	for k, st := range b.states {
		if states[k] == nil {
			st.left.Store(true)
			removed = append(removed, st)
		}
	}
	b.states = states

	old := b.table.Load()
	pools := make([]*Pool, 0, len(order))
	for _, name := range order {
		peers := services[name].peers
		rules := b.serviceRules(name, peers)
		st := b.services[name]
		if st == nil {
			st = &ServiceStats{}
			b.services[name] = st
		}
		p := newPool(name, rules, peers, st, b.clock, &b.log)
		if op := old.Pool(name); op != nil && sameCycle(op, p) {
			// Keep the position so frequent unrelated updates do not
			// restart every service's cycle at its heaviest peer.
			p.cursor.Store(op.cursor.Load())
			p.bcursor.Store(op.bcursor.Load())
		}
		pools = append(pools, p)
	}
	t := buildTable(pools)
	for _, w := range t.Warnings {
		if !b.warnings[w] {
			b.warnings[w] = true
			b.log.Warn().Msg(w)
		}
	}
	return t, removed
}

// serviceRules merges the rules of a service's members. A member without a
// rule (empty Hosts, PathPrefix, Policy or TLS) has no opinion on it; among those
// that have one, the longest-running member's value holds, and a warning
// names each member that disagrees, once.
func (b *Balancer) serviceRules(service string, peers []*Peer) Rules {
	byAge := append([]*Peer(nil), peers...)
	sort.SliceStable(byAge, func(i, j int) bool {
		x, y := byAge[i], byAge[j]
		if !x.Started.Equal(y.Started) {
			return x.Started.Before(y.Started)
		}
		return x.ID < y.ID
	})
	var r Rules
	var hostsFrom, pathFrom, policyFrom *Peer
	for _, p := range byAge {
		if len(p.Rules.Hosts) > 0 && hostsFrom == nil {
			r.Hosts, hostsFrom = p.Rules.Hosts, p
		}
		if p.Rules.PathPrefix != "" && pathFrom == nil {
			r.PathPrefix, r.StripPrefix, pathFrom = p.Rules.PathPrefix, p.Rules.StripPrefix, p
		}
		if p.Rules.Policy != "" && policyFrom == nil {
			r.Policy, policyFrom = p.Rules.Policy, p
		}
		// One value only, so members cannot disagree: one that asks is
		// enough.
		if p.Rules.TLS != "" {
			r.TLS = p.Rules.TLS
		}
	}
	for _, p := range byAge {
		var diffs []string
		if len(p.Rules.Hosts) > 0 && p != hostsFrom && !slices.Equal(p.Rules.Hosts, r.Hosts) {
			diffs = append(diffs, fmt.Sprintf("host %v (%s's %v holds)", p.Rules.Hosts, hostsFrom.Name, r.Hosts))
		}
		if p.Rules.PathPrefix != "" && p != pathFrom && (p.Rules.PathPrefix != r.PathPrefix || p.Rules.StripPrefix != r.StripPrefix) {
			diffs = append(diffs, fmt.Sprintf("path %q strip=%v (%s's %q strip=%v holds)",
				p.Rules.PathPrefix, p.Rules.StripPrefix, pathFrom.Name, r.PathPrefix, r.StripPrefix))
		}
		if p.Rules.Policy != "" && p != policyFrom && p.Rules.Policy != r.Policy {
			diffs = append(diffs, fmt.Sprintf("policy %q (%s's %q holds)", p.Rules.Policy, policyFrom.Name, r.Policy))
		}
		if len(diffs) == 0 {
			continue
		}
		w := fmt.Sprintf("service %q: %s disagrees with a longer-running member on %s",
			service, p.Name, strings.Join(diffs, ", "))
		if !b.warnings[w] {
			b.warnings[w] = true
			b.log.Warn().Str("service", service).Str("container", p.Name).Msg(w)
		}
	}
	return r
}

func sameCycle(a, b *Pool) bool {
	if len(a.peers) != len(b.peers) {
		return false
	}
	for i := range a.peers {
		x, y := a.peers[i], b.peers[i]
		if x.state != y.state || x.Weight != y.Weight || x.Backup != y.Backup {
			return false
		}
	}
	return true
}

// logDiff logs each peer that joined or left, once, at info level.
func (b *Balancer) logDiff(old, cur *Table) {
	// A peer's state is shared by its versions in both tables (it is
	// carried by key), so it identifies the peer without building keys.
	n := 0
	for _, p := range old.pools {
		n += len(p.peers)
	}
	before := make(map[*peerState]*Peer, n)
	for _, p := range old.pools {
		for _, pe := range p.peers {
			before[pe.state] = pe
		}
	}
	for _, p := range cur.pools {
		for _, pe := range p.peers {
			if o, ok := before[pe.state]; ok {
				delete(before, pe.state)
				if o.Weight != pe.Weight || o.Backup != pe.Backup || o.Service != pe.Service {
					b.log.Info().Str("service", p.name).Str("container", pe.Name).Str("address", pe.Addr).
						Int("weight", pe.Weight).Bool("backup", pe.Backup).Msg("peer updated")
				}
				continue
			}
			b.log.Info().Str("service", p.name).Str("container", pe.Name).Str("address", pe.Addr).
				Int("weight", pe.Weight).Bool("backup", pe.Backup).Msg("peer added")
		}
	}
	for _, pe := range before {
		b.log.Info().Str("service", pe.Service).Str("container", pe.Name).Str("address", pe.Addr).
			Int64("in_flight", pe.InFlight()).Msg("peer removed; in-flight requests finish")
	}
}

// Route returns the service of the current table for host and path, or nil.
func (b *Balancer) Route(host, path string) *Pool { return b.table.Load().Route(host, path) }

// SetCheckResult records the outcome of an active health check of the peer
// with key (Backend.Key) and, when its availability changes, rebuilds the
// schedule of its service in the current table. A peer whose check fails is
// out of selection until a check passes. It reports whether the state
// changed.
func (b *Balancer) SetCheckResult(key string, passing bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.states[key]
	if st == nil || st.checkFailing.Load() == !passing {
		return false
	}
	st.checkFailing.Store(!passing)
	for _, p := range b.table.Load().pools {
		for _, pe := range p.peers {
			if pe.state == st {
				p.rebuild(b.clock(), true)
				return true
			}
		}
	}
	return true
}
