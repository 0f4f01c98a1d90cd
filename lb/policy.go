package lb

import (
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
)

// The selection policies other than round-robin. Each asks one question of
// a peer, Available, and skips the peers a request already tried.

// pickLeastConn chooses the available peer with the fewest requests in
// flight relative to its weight (nginx's least_conn: conns/weight compared
// by cross-multiplication). Ties are broken as nginx does, by weighted
// round-robin: the first tied peer from the cursor's position in the cycle.
func pickLeastConn(avail, cycle []*Peer, cursor *atomic.Uint64, now int64, tried []*Peer) *Peer {
	var best *Peer
	var bestConns int64
	for _, p := range avail {
		if !p.Available(now) || contains(tried, p) {
			continue
		}
		c := p.InFlight()
		if best == nil || c*int64(best.Weight) < bestConns*int64(p.Weight) {
			best, bestConns = p, c
		}
	}
	if best == nil {
		return nil
	}
	// Positions of untied peers are consumed, so the tied ones share the
	// cycle in proportion to their weights.
	n := uint64(len(cycle))
	for i := uint64(0); i < n; i++ {
		p := cycle[(cursor.Add(1)-1)%n]
		if p.InFlight()*int64(best.Weight) == bestConns*int64(p.Weight) && p.Available(now) && !contains(tried, p) {
			return p
		}
	}
	return best
}

// pickP2C draws two peers at random, in proportion to their weights (from
// the round-robin cycle), and keeps the one with fewer requests in flight
// per unit of weight: the power of two choices, which avoids both the herd
// behaviour of a global least-connections scan and the blindness of random.
func pickP2C(cycle []*Peer, now int64, tried []*Peer) *Peer {
	n := uint64(len(cycle))
	if n == 0 {
		return nil
	}
	var cand [2]*Peer
	found := 0
	// A few draws find two usable peers in all but degenerate pools; then a
	// scan settles it.
	for i := 0; i < 8 && found < 2; i++ {
		p := cycle[rand.Uint64N(n)]
		if p.Available(now) && !contains(tried, p) && (found == 0 || p != cand[0]) {
			cand[found] = p
			found++
		}
	}
	if found == 0 {
		for _, p := range cycle {
			if p.Available(now) && !contains(tried, p) {
				return p
			}
		}
		return nil
	}
	if found == 1 {
		// Eight draws met one peer only: rare unless it is the only
		// usable one. Look for a second from a random place, so that
		// the comparison still happens when there is one.
		start := rand.Uint64N(n)
		for i := uint64(0); i < n; i++ {
			p := cycle[(start+i)%n]
			if p != cand[0] && p.Available(now) && !contains(tried, p) {
				cand[1] = p
				found = 2
				break
			}
		}
		if found == 1 {
			return cand[0]
		}
	}
	a, b := cand[0], cand[1]
	if b.InFlight()*int64(a.Weight) < a.InFlight()*int64(b.Weight) {
		return b
	}
	return a
}

// ring is a consistent-hash ring for ip_hash: each peer owns
// vnodesPerWeight points per unit of weight, so adding or removing one of n
// equal peers moves about 1/n of the clients.
type ring struct {
	points []uint64
	owners []*Peer
}

const vnodesPerWeight = 64

var ringSeed = maphash.MakeSeed()

func buildRing(peers []*Peer) *ring {
	type point struct {
		h uint64
		p *Peer
	}
	var pts []point
	for _, p := range peers {
		// Points derive from the peer's identity, not its position, so
		// that other peers joining or leaving do not move them.
		base := p.Key()
		for v := 0; v < p.Weight*vnodesPerWeight; v++ {
			pts = append(pts, point{maphash.String(ringSeed, base+"#"+strconv.Itoa(v)), p})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	r := &ring{points: make([]uint64, len(pts)), owners: make([]*Peer, len(pts))}
	for i, pt := range pts {
		r.points[i], r.owners[i] = pt.h, pt.p
	}
	return r
}

// pick returns the owner of the first point at or after hash, walking on
// past unavailable or tried peers.
func (r *ring) pick(hash uint64, now int64, tried []*Peer) *Peer {
	n := len(r.points)
	if n == 0 {
		return nil
	}
	i, _ := slices.BinarySearch(r.points, hash)
	for j := 0; j < n; j++ {
		p := r.owners[(i+j)%n]
		if p.Available(now) && !contains(tried, p) {
			return p
		}
	}
	return nil
}

// HashClient hashes a client address (an IP, without port) for ip_hash.
func HashClient(ip string) uint64 { return maphash.String(ringSeed, ip) }

// HashClientBytes is HashClient for a byte slice.
func HashClientBytes(ip []byte) uint64 { return maphash.Bytes(ringSeed, ip) }
