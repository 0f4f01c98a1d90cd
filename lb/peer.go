package lb

import (
	"sync"
	"sync/atomic"
	"time"
)

// Peer is one backend inside one Table. Its configuration is immutable; its
// runtime state (counters, passive health, the proxy's attachment) lives in a
// peerState that the Balancer carries over to the next Table when a backend
// with the same Key is still present, so a weight change or an unrelated
// container event does not reset a peer's health or counters.
//
// All methods are safe for concurrent use.
type Peer struct {
	Backend
	pool  *Pool
	state *peerState
}

// peerState is the part of a peer that survives table updates.
type peerState struct {
	inflight atomic.Int64
	requests atomic.Uint64
	failures atomic.Uint64

	// downUntil is the monotonic time (ns) until which passive health keeps
	// the peer out of selection; 0 means available. Read on every pick.
	downUntil atomic.Int64

	// mu guards the failure window; only failures and recoveries take it.
	mu          sync.Mutex
	fails       int   // failures counted in the current window
	windowStart int64 // when the current window began (ns)
	probation   bool  // came back from down: one failure takes it down again

	attached atomic.Pointer[any]

	// checkFailing is set while the active health check (lb.health.path)
	// does not pass; the Balancer sets it, see SetCheckResult.
	checkFailing atomic.Bool

	// left is set when the peer is no longer in the Balancer's table. A
	// request routed by an older table may still retry on that table's
	// pool; it must not pick a peer that has left (a task scaled down, a
	// container stopped), whose host may no longer answer at all.
	left atomic.Bool

	answers StatusClasses
	latency Histogram
}

// Available reports whether passive and active health let the peer take
// requests at now (nanoseconds on the Balancer's clock).
func (p *Peer) Available(now int64) bool {
	d := p.state.downUntil.Load()
	return (d == 0 || now >= d) && !p.state.checkFailing.Load() && !p.state.left.Load()
}

// InFlight is the number of requests currently forwarded to the peer.
func (p *Peer) InFlight() int64 { return p.state.inflight.Load() }

// Requests is the number of requests ever started on the peer.
func (p *Peer) Requests() uint64 { return p.state.requests.Load() }

// Failures is the number of failed attempts ever reported for the peer.
func (p *Peer) Failures() uint64 { return p.state.failures.Load() }

// DownUntil returns when passive health lets the peer back in, or the zero
// time when it is available.
func (p *Peer) DownUntil() int64 { return p.state.downUntil.Load() }

// AttachOnce stores the value made by mk with the peer's runtime state unless
// one is stored already, and returns the stored value. The proxy keeps its
// per-peer connection pool here so that it lives exactly as long as the peer.
func (p *Peer) AttachOnce(mk func() any) any {
	if v := p.state.attached.Load(); v != nil {
		return *v
	}
	v := mk()
	if p.state.attached.CompareAndSwap(nil, &v) {
		return v
	}
	return *p.state.attached.Load()
}

// Begin records the start of an attempt on the peer. Every Begin must be
// matched by one End.
func (p *Peer) Begin() {
	p.state.inflight.Add(1)
	p.state.requests.Add(1)
}

// End records the outcome of an attempt started with Begin. failed means a
// connection error, a timeout or a status the operator counts as failure;
// it feeds passive health with nginx's max_fails / fail_timeout semantics.
func (p *Peer) End(failed bool, now int64) {
	p.state.inflight.Add(-1)
	if failed {
		p.state.failures.Add(1)
		p.fail(now)
		return
	}
	p.succeed(now)
}

// Abandon ends an attempt started with Begin that wharf gave up before it
// reached the peer, for a reason of its own (it had no file descriptor for
// the connection): neither a failure nor a success of the peer, so its
// passive health is left as it was.
func (p *Peer) Abandon() { p.state.inflight.Add(-1) }

// fail counts a failure within the fail_timeout window; max_fails failures in
// one window take the peer out of selection for fail_timeout. A peer on
// probation (just back from down) goes down again at its first failure, as
// in nginx, where the failure counter is only reset by a success.
func (p *Peer) fail(now int64) {
	if p.MaxFails == 0 {
		return
	}
	s := p.state
	timeout := int64(p.FailTimeout)
	s.mu.Lock()
	if s.probation || now-s.windowStart > timeout {
		if !s.probation {
			s.fails = 0
		}
		s.windowStart = now
	}
	s.fails++
	down := s.fails >= p.MaxFails && (s.downUntil.Load() == 0 || now >= s.downUntil.Load())
	if down {
		s.downUntil.Store(now + timeout)
		s.probation = true
	}
	s.mu.Unlock()
	if down {
		p.pool.peerDown(p, now)
	}
}

// succeed ends probation: a peer that answers after its fail_timeout is
// healthy again. A success before that (a request that was already under
// way when the peer went down) changes nothing, as in nginx, which resets
// the count only for a peer checked again after the timeout.
func (p *Peer) succeed(now int64) {
	s := p.state
	d := s.downUntil.Load()
	if d == 0 || now < d {
		return // fast path: nothing to reset (fails in an open window stay counted)
	}
	s.mu.Lock()
	recovered := s.probation
	if recovered {
		s.probation = false
		s.fails = 0
		s.downUntil.Store(0)
	}
	s.mu.Unlock()
	if recovered {
		p.pool.peerUp(p)
	}
}

// State is a peer's availability as people read it.
func (p *Peer) State(now int64) string {
	if !p.Available(now) {
		return "down"
	}
	return "ready"
}

// DownReason says why an unavailable peer is out: "left" (the table),
// "health check" or "max_fails"; "" when it is available.
func (p *Peer) DownReason(now int64) string {
	switch {
	case p.state.left.Load():
		return "left"
	case p.state.checkFailing.Load():
		return "health check"
	case !p.Available(now):
		return "max_fails"
	}
	return ""
}

// nanotime is the default clock: monotonic nanoseconds since process start.
var start = time.Now()

func nanotime() int64 { return int64(time.Since(start)) }
