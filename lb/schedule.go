package lb

// maxCycle bounds the length of one precomputed round-robin cycle. Weights
// whose reduced sum exceeds it (only possible with hundreds of peers of
// unequal, large weights) are scaled down proportionally to fit.
const maxCycle = 1 << 16

// smoothCycle returns one full cycle of nginx's smooth weighted round-robin
// over peers: the order in which ngx_http_upstream_get_peer would choose
// them, e.g. weights {5,1,1} give a a b a c a a. The sequence is periodic
// with a period of the sum of the weights (divided by their gcd), so picking
// is reduced to one atomic increment and an index into the cycle, whatever
// the number of peers.
//
// Ties go to the peer listed first, as in nginx.
func smoothCycle(peers []*Peer) []*Peer {
	n := len(peers)
	if n == 0 {
		return nil
	}
	w := make([]int, n)
	g := 0
	equal := true
	for i, p := range peers {
		w[i] = p.Weight
		g = gcd(g, w[i])
		if w[i] != w[0] {
			equal = false
		}
	}
	if equal {
		// Equal weights give plain round-robin in list order.
		return append([]*Peer(nil), peers...)
	}
	total := 0
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxCycle {
		total = scaleWeights(w, maxCycle)
	}
	// At step t nginx picks the peer maximizing t*w - total*k, where k is
	// how often it was picked so far, the first listed on ties. Peers of
	// equal weight are therefore picked round-robin in list order, so only
	// one candidate per distinct weight needs comparing: O(total * distinct
	// weights) instead of O(total * peers).
	type group struct {
		weight  int
		members []int // indices into peers, in list order
		picked  int
	}
	var groups []*group
	byWeight := map[int]*group{}
	for i, x := range w {
		g := byWeight[x]
		if g == nil {
			g = &group{weight: x}
			byWeight[x] = g
			groups = append(groups, g)
		}
		g.members = append(g.members, i)
	}
	seq := make([]*Peer, total)
	for t := range seq {
		var best *group
		bestVal, bestIdx := 0, 0
		for _, g := range groups {
			idx := g.members[g.picked%len(g.members)]
			val := (t+1)*g.weight - total*(g.picked/len(g.members))
			if best == nil || val > bestVal || (val == bestVal && idx < bestIdx) {
				best, bestVal, bestIdx = g, val, idx
			}
		}
		best.picked++
		seq[t] = peers[bestIdx]
	}
	return seq
}

// scaleWeights shrinks w in place so that its sum is at most limit, keeping
// every weight at least 1, and returns the new sum.
func scaleWeights(w []int, limit int) int {
	sum := 0
	for _, x := range w {
		sum += x
	}
	total := 0
	for i, x := range w {
		w[i] = max(1, x*(limit-len(w))/sum)
		total += w[i]
	}
	return total
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
