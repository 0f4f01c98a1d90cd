package lb

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Pool is one service: its routing rules and its peers. A Pool belongs to one
// Table and is replaced, not modified, when the set of peers changes; only
// the availability of its peers changes while it is in use.
//
// Pick is safe for concurrent use, takes no lock and allocates nothing.
type Pool struct {
	name    string
	rules   Rules
	policy  Policy
	peers   []*Peer // primaries in order, then backups
	primary []*Peer
	backup  []*Peer

	sched   atomic.Pointer[schedule]
	cursor  atomic.Uint64 // position in the primary cycle
	bcursor atomic.Uint64 // position in the backup cycle

	stats *ServiceStats

	buildMu sync.Mutex // serializes rebuilds after availability changes
	clock   func() int64
	log     *zerolog.Logger
}

// schedule is the precomputed selection order over the peers that were
// available when it was built.
type schedule struct {
	primary []*Peer
	backup  []*Peer
	// Per-policy structures over the same available peers.
	primaryAvail, backupAvail []*Peer // least_conn scans these
	primaryRing, backupRing   *ring   // ip_hash
	// recheckAt is when the first excluded peer's down time ends and the
	// schedule must be rebuilt to let it back in.
	recheckAt int64
}

func newPool(name string, rules Rules, peers []*Peer, stats *ServiceStats, clock func() int64, log *zerolog.Logger) *Pool {
	p := &Pool{name: name, rules: rules, policy: rules.Policy, stats: stats, clock: clock, log: log}
	if p.policy == "" {
		p.policy = RoundRobin
	}
	for _, pe := range peers {
		pe.pool = p
		if pe.Backup {
			p.backup = append(p.backup, pe)
		} else {
			p.primary = append(p.primary, pe)
		}
	}
	p.peers = append(append(p.peers, p.primary...), p.backup...)
	p.rebuild(clock(), true)
	return p
}

// Name is the service name.
func (p *Pool) Name() string { return p.name }

// Rules are the routing rules the service was built with.
func (p *Pool) Rules() Rules { return p.rules }

// Peers lists primaries then backups; the slice must not be modified.
func (p *Pool) Peers() []*Peer { return p.peers }

// Now reads the pool's clock (nanoseconds), for callers that report outcomes.
func (p *Pool) Now() int64 { return p.clock() }

// HasUntried reports whether a peer of the pool that is available now is
// not among tried: whether another attempt has somewhere to go.
func (p *Pool) HasUntried(tried []*Peer) bool {
	now := p.clock()
	for _, peer := range p.peers {
		if peer.Available(now) && !slices.Contains(tried, peer) {
			return true
		}
	}
	return false
}

// Policy is the service's selection policy.
func (p *Pool) Policy() Policy { return p.policy }

// Pick chooses the peer for the next attempt of a request by the service's
// policy, skipping peers already tried for it, or returns nil when no peer
// is available. Backup peers are chosen only when no primary is available
// (or every available primary was tried), as in nginx. hash identifies the
// client for ip_hash (see HashClient); other policies ignore it.
func (p *Pool) Pick(now int64, hash uint64, tried []*Peer) *Peer {
	s := p.sched.Load()
	if now >= s.recheckAt {
		s = p.rebuild(now, false)
	}
	switch p.policy {
	case LeastConn:
		if pe := pickLeastConn(s.primaryAvail, s.primary, &p.cursor, now, tried); pe != nil {
			return pe
		}
		return pickLeastConn(s.backupAvail, s.backup, &p.bcursor, now, tried)
	case IPHash:
		if pe := s.primaryRing.pick(hash, now, tried); pe != nil {
			return pe
		}
		return s.backupRing.pick(hash, now, tried)
	case P2C:
		if pe := pickP2C(s.primary, now, tried); pe != nil {
			return pe
		}
		return pickP2C(s.backup, now, tried)
	}
	if pe := pickCycle(s.primary, &p.cursor, now, tried); pe != nil {
		return pe
	}
	return pickCycle(s.backup, &p.bcursor, now, tried)
}

// pickCycle takes the next position of the cycle; when that peer became
// unavailable after the schedule was built (or was tried already) it walks
// on, at most once round the cycle.
func pickCycle(cycle []*Peer, cursor *atomic.Uint64, now int64, tried []*Peer) *Peer {
	n := uint64(len(cycle))
	if n == 0 {
		return nil
	}
	pos := cursor.Add(1) - 1
	for i := uint64(0); i < n; i++ {
		pe := cycle[(pos+i)%n]
		if pe.Available(now) && !contains(tried, pe) {
			return pe
		}
	}
	return nil
}

func contains(list []*Peer, p *Peer) bool {
	for _, q := range list {
		if q == p {
			return true
		}
	}
	return false
}

// rebuild recomputes the schedule from the peers available at now. Unless
// forced (a peer just went down), a schedule that another goroutine rebuilt
// meanwhile is kept.
func (p *Pool) rebuild(now int64, force bool) *schedule {
	p.buildMu.Lock()
	defer p.buildMu.Unlock()
	if s := p.sched.Load(); s != nil && !force && now < s.recheckAt {
		return s
	}
	s := &schedule{recheckAt: math.MaxInt64}
	avail := func(list []*Peer) []*Peer {
		var out []*Peer
		for _, pe := range list {
			if pe.Available(now) {
				out = append(out, pe)
			} else if d := pe.DownUntil(); d < s.recheckAt {
				s.recheckAt = d
			}
		}
		return out
	}
	s.primaryAvail, s.backupAvail = avail(p.primary), avail(p.backup)
	s.primary, s.backup = smoothCycle(s.primaryAvail), smoothCycle(s.backupAvail)
	if p.policy == IPHash {
		s.primaryRing, s.backupRing = buildRing(s.primaryAvail), buildRing(s.backupAvail)
	}
	p.sched.Store(s)
	return s
}

// peerDown is called once when passive health takes pe out of selection.
func (p *Pool) peerDown(pe *Peer, now int64) {
	p.log.Warn().Str("service", p.name).Str("container", pe.Name).Str("address", pe.Addr).
		Int("max_fails", pe.MaxFails).Dur("fail_timeout", pe.FailTimeout).
		Msg("peer down: too many failures; out of selection for fail_timeout")
	p.rebuild(now, true)
}

// peerUp is called once when a peer on probation answers successfully.
func (p *Pool) peerUp(pe *Peer) {
	p.log.Info().Str("service", p.name).Str("container", pe.Name).Str("address", pe.Addr).
		Msg("peer back: answered after fail_timeout")
}
