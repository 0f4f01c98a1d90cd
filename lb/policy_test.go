package lb

import (
	"fmt"
	"testing"
)

func policyBalancer(t *testing.T, policy Policy, weights ...int) (*Balancer, *Pool) {
	t.Helper()
	b := New()
	var list []Backend
	for i, w := range weights {
		x := be(string(rune('a'+i)), w)
		x.Rules.Policy = policy
		list = append(list, x)
	}
	b.Update("test", list)
	p := b.Table().Pool(DefaultService)
	if p.Policy() != policy {
		t.Fatalf("policy %s, want %s", p.Policy(), policy)
	}
	return b, p
}

func TestLeastConnAvoidsBusyPeer(t *testing.T) {
	b, p := policyBalancer(t, LeastConn, 1, 1, 1)
	busy := p.Peers()[0]
	for i := 0; i < 5; i++ {
		busy.Begin() // five long requests in flight on a
	}
	count := map[string]int{}
	for i := 0; i < 300; i++ {
		pe := p.Pick(b.Now(), 0, nil)
		count[pe.Name]++
	}
	if count["a"] != 0 || count["b"] != 150 || count["c"] != 150 {
		t.Fatalf("least_conn spread %v, want a:0 b:150 c:150 (ties round-robin)", count)
	}
}

func TestLeastConnWeighted(t *testing.T) {
	b, p := policyBalancer(t, LeastConn, 3, 1)
	// Requests that stay in flight: the weight-3 peer should hold three
	// times as many as the weight-1 peer.
	count := map[string]int{}
	for i := 0; i < 400; i++ {
		pe := p.Pick(b.Now(), 0, nil)
		pe.Begin()
		count[pe.Name]++
	}
	if count["a"] != 300 || count["b"] != 100 {
		t.Fatalf("weighted least_conn held %v, want a:300 b:100", count)
	}
}

func TestIPHashStickyAndConsistent(t *testing.T) {
	b, p := policyBalancer(t, IPHash, 1, 1, 1)
	const clients = 10000
	before := make([]string, clients)
	for i := range before {
		h := HashClient(fmt.Sprintf("10.1.%d.%d", i/256, i%256))
		before[i] = p.Pick(b.Now(), h, nil).Name
		if again := p.Pick(b.Now(), h, nil).Name; again != before[i] {
			t.Fatalf("client %d moved from %s to %s without a change", i, before[i], again)
		}
	}
	share := map[string]int{}
	for _, n := range before {
		share[n]++
	}
	for n, c := range share {
		if c < clients/3*7/10 || c > clients/3*13/10 {
			t.Errorf("peer %s has %d of %d clients; want about a third", n, c, clients)
		}
	}
	// Add a fourth peer: about a quarter of the clients move, all to it.
	var list []Backend
	for _, pe := range p.Peers() {
		list = append(list, pe.Backend)
	}
	d := be("d", 1)
	d.Rules.Policy = IPHash
	b.Update("test", append(list, d))
	p = b.Table().Pool(DefaultService)
	moved := 0
	for i := range before {
		h := HashClient(fmt.Sprintf("10.1.%d.%d", i/256, i%256))
		now := p.Pick(b.Now(), h, nil).Name
		if now != before[i] {
			moved++
			if now != "d" {
				t.Fatalf("client %d moved from %s to %s, not to the new peer", i, before[i], now)
			}
		}
	}
	if frac := float64(moved) / clients; frac < 0.15 || frac > 0.35 {
		t.Fatalf("%.1f%% of clients moved when a 4th peer joined; want about 25%%", 100*frac)
	}
}

func TestP2CFavoursLessLoaded(t *testing.T) {
	b, p := policyBalancer(t, P2C, 1, 1, 1, 1)
	loaded := p.Peers()[0]
	for i := 0; i < 10; i++ {
		loaded.Begin()
	}
	count := map[string]int{}
	for i := 0; i < 4000; i++ {
		pe := p.Pick(b.Now(), 0, nil)
		count[pe.Name]++
	}
	// a is chosen only when both draws are a, which never happens (draws
	// are distinct), so a gets nothing while it is loaded; the others share.
	if count["a"] != 0 {
		t.Fatalf("p2c sent %d of 4000 to the loaded peer", count["a"])
	}
	for _, n := range []string{"b", "c", "d"} {
		if count[n] < 1000 || count[n] > 1700 {
			t.Errorf("p2c spread %v: %s far from a third", count, n)
		}
	}
}

func TestPoliciesSkipTriedAndFallBackToBackup(t *testing.T) {
	for _, pol := range []Policy{RoundRobin, LeastConn, IPHash, P2C} {
		t.Run(string(pol), func(t *testing.T) {
			b := New()
			x, y, z := be("a", 1), be("b", 2), be("z", 1)
			z.Backup = true
			for _, bk := range []*Backend{&x, &y, &z} {
				bk.Rules.Policy = pol
			}
			b.Update("test", []Backend{x, y, z})
			p := b.Table().Pool(DefaultService)
			var tried []*Peer
			for i := 0; i < 3; i++ {
				pe := p.Pick(b.Now(), 42, tried)
				if pe == nil {
					t.Fatalf("attempt %d: no peer", i)
				}
				if i == 2 && pe.Name != "z" {
					t.Fatalf("third attempt went to %s, want the backup", pe.Name)
				}
				tried = append(tried, pe)
			}
			if pe := p.Pick(b.Now(), 42, tried); pe != nil {
				t.Fatalf("picked %s after every peer was tried", pe.Name)
			}
		})
	}
}
