package lb

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func be(name string, weight int) Backend {
	return Backend{ID: name, Name: name, Network: "tcp", Addr: name + ":6969", Weight: weight,
		MaxFails: DefaultMaxFails, FailTimeout: DefaultFailTimeout}
}

// fakeClock is a manual clock in nanoseconds.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() int64              { return c.t.Load() }
func (c *fakeClock) advance(d time.Duration) { c.t.Add(int64(d)) }

func picks(t *testing.T, b *Balancer, service string, n int) string {
	t.Helper()
	p := b.Table().Pool(service)
	if p == nil {
		t.Fatalf("no service %q", service)
	}
	var out []string
	for i := 0; i < n; i++ {
		pe := p.Pick(b.Now(), 0, nil)
		if pe == nil {
			out = append(out, "-")
			continue
		}
		out = append(out, pe.Name)
	}
	return strings.Join(out, " ")
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		n       int
		want    string
	}{
		{"nginx 5/1/1", []int{5, 1, 1}, 14, "a a b a c a a a a b a c a a"},
		{"equal 1/1/1", []int{1, 1, 1}, 6, "a b c a b c"},
		{"3/2/1", []int{3, 2, 1}, 12, "a b a c b a a b a c b a"},
		{"gcd reduced 10/10/20", []int{10, 10, 20}, 8, "c a b c c a b c"},
		{"single", []int{7}, 3, "a a a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New()
			var list []Backend
			for i, w := range tt.weights {
				list = append(list, be(string(rune('a'+i)), w))
			}
			b.Update("test", list)
			if got := picks(t, b, DefaultService, tt.n); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestWeightChangeRestartsCycleAndKeepsState(t *testing.T) {
	b := New()
	b.Update("test", []Backend{be("a", 1), be("b", 1), be("c", 1)})
	p0 := b.Table().Pool(DefaultService).Peers()[0]
	p0.Begin()
	b.Update("test", []Backend{be("a", 5), be("b", 1), be("c", 1)})
	if got, want := picks(t, b, DefaultService, 7), "a a b a c a a"; got != want {
		t.Errorf("after weight change got %s, want %s", got, want)
	}
	p1 := b.Table().Pool(DefaultService).Peers()[0]
	if p1 == p0 || p1.InFlight() != 1 || p1.Requests() != 1 {
		t.Errorf("state not carried: in-flight %d requests %d", p1.InFlight(), p1.Requests())
	}
}

func TestUnrelatedUpdateKeepsCyclePosition(t *testing.T) {
	b := New()
	b.Update("a", []Backend{be("a", 5), be("b", 1), be("c", 1)})
	first := picks(t, b, DefaultService, 3)
	other := be("x", 1)
	other.Service = "other"
	b.Update("b", []Backend{other})
	rest := picks(t, b, DefaultService, 4)
	if got, want := first+" "+rest, "a a b a c a a"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestPassiveHealth(t *testing.T) {
	clk := &fakeClock{}
	b := New(WithClock(clk.now))
	a, bb := be("a", 1), be("b", 1)
	a.MaxFails, a.FailTimeout = 2, 10*time.Second
	b.Update("test", []Backend{a, bb})
	pool := b.Table().Pool(DefaultService)
	pa := pool.Peers()[0]

	fail := func() { pa.Begin(); pa.End(true, clk.now()) }
	fail()
	if got := picks(t, b, DefaultService, 4); got != "a b a b" {
		t.Fatalf("one failure of max_fails=2: got %s", got)
	}
	// A failure outside the window starts a new count.
	clk.advance(11 * time.Second)
	fail()
	if !pa.Available(clk.now()) {
		t.Fatal("failures in different windows took the peer down")
	}
	clk.advance(time.Second)
	fail()
	if pa.Available(clk.now()) {
		t.Fatal("max_fails failures within fail_timeout left the peer up")
	}
	if got := picks(t, b, DefaultService, 3); got != "b b b" {
		t.Fatalf("down peer picked: %s", got)
	}
	clk.advance(10*time.Second + 1)
	if got := picks(t, b, DefaultService, 2); !strings.Contains(got, "a") {
		t.Fatalf("peer not back after fail_timeout: %s", got)
	}
	// On probation a single failure takes it down again ...
	fail()
	if pa.Available(clk.now()) {
		t.Fatal("failure on probation did not take the peer down")
	}
	// ... and a success after the next timeout brings it fully back.
	clk.advance(10*time.Second + 1)
	picks(t, b, DefaultService, 1)
	pa.Begin()
	pa.End(false, clk.now())
	fail()
	if !pa.Available(clk.now()) {
		t.Fatal("success did not reset the failure count")
	}
}

func TestMaxFailsZeroDisables(t *testing.T) {
	b := New()
	a := be("a", 1)
	a.MaxFails = 0
	b.Update("test", []Backend{a})
	pa := b.Table().Pool(DefaultService).Peers()[0]
	for i := 0; i < 100; i++ {
		pa.Begin()
		pa.End(true, b.Now())
	}
	if !pa.Available(b.Now()) || pa.Failures() != 100 {
		t.Fatalf("max_fails=0: available=%v failures=%d", pa.Available(b.Now()), pa.Failures())
	}
}

func TestBackupOnlyWhenNoPrimary(t *testing.T) {
	clk := &fakeClock{}
	b := New(WithClock(clk.now))
	bk := be("z", 1)
	bk.Backup = true
	b.Update("test", []Backend{be("a", 1), be("b", 1), bk})
	if got := picks(t, b, DefaultService, 4); got != "a b a b" {
		t.Fatalf("backup used while primaries up: %s", got)
	}
	for _, pe := range b.Table().Pool(DefaultService).Peers()[:2] {
		pe.Begin()
		pe.End(true, clk.now())
	}
	if got := picks(t, b, DefaultService, 2); got != "z z" {
		t.Fatalf("backup not used with all primaries down: %s", got)
	}
	clk.advance(DefaultFailTimeout + 1)
	if got := picks(t, b, DefaultService, 2); strings.Contains(got, "z") {
		t.Fatalf("backup used after primaries came back: %s", got)
	}
}

func TestPickSkipsTried(t *testing.T) {
	b := New()
	bk := be("z", 1)
	bk.Backup = true
	b.Update("test", []Backend{be("a", 5), be("b", 1), bk})
	p := b.Table().Pool(DefaultService)
	var tried []*Peer
	var got []string
	for {
		pe := p.Pick(b.Now(), 0, tried)
		if pe == nil {
			break
		}
		tried = append(tried, pe)
		got = append(got, pe.Name)
	}
	if s := strings.Join(got, " "); s != "a b z" {
		t.Errorf("each peer once, primaries first: got %s", s)
	}
}

func TestRouting(t *testing.T) {
	svc := func(name string, hosts []string, prefix string) Backend {
		b := be(name, 1)
		b.Service = name
		b.Rules = Rules{Hosts: hosts, PathPrefix: prefix}
		return b
	}
	b := New()
	b.Update("test", []Backend{
		svc("catchall", nil, ""),
		svc("api", nil, "/api"),
		svc("apiv2", nil, "/api/v2"),
		svc("shop", []string{"shop.example.com"}, "/"),
		svc("wild", []string{"*.example.com"}, ""),
		svc("deepwild", []string{"*.eu.example.com"}, ""),
		svc("shopadmin", []string{"shop.example.com"}, "/admin"),
	})
	tests := []struct{ host, path, want string }{
		{"localhost:10000", "/webtest", "catchall"},
		{"localhost", "/api", "api"},
		{"localhost", "/api/x", "api"},
		{"localhost", "/apix", "catchall"},
		{"localhost", "/api/v2/users", "apiv2"},
		{"shop.example.com", "/", "shop"},
		{"SHOP.Example.COM:443", "/admin/x", "shopadmin"},
		{"a.example.com", "/api", "wild"},
		{"x.eu.example.com", "/", "deepwild"},
		{"example.com", "/api", "api"},
	}
	tab := b.Table()
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			p := tab.Route(tt.host, tt.path)
			if p == nil || p.Name() != tt.want {
				t.Errorf("Route(%q, %q) = %v, want %s", tt.host, tt.path, p, tt.want)
			}
		})
	}
}

func TestRoutingNoCatchAll(t *testing.T) {
	b := New()
	x := be("x", 1)
	x.Service, x.Rules = "x", Rules{Hosts: []string{"x.test"}}
	b.Update("test", []Backend{x})
	if p := b.Table().Route("y.test", "/"); p != nil {
		t.Fatalf("unmatched host routed to %s", p.Name())
	}
}

func TestRuleConflictWarnsAndIsDeterministic(t *testing.T) {
	mk := func(name string) Backend {
		b := be(name, 1)
		b.Service = name
		b.Rules = Rules{PathPrefix: "/same"}
		return b
	}
	for i := 0; i < 5; i++ {
		b := New()
		b.Update("test", []Backend{mk("zeta"), mk("alpha")})
		tab := b.Table()
		if p := tab.Route("h", "/same"); p.Name() != "alpha" {
			t.Fatalf("conflict went to %s", p.Name())
		}
		if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], `"alpha"`) || !strings.Contains(tab.Warnings[0], `"zeta"`) {
			t.Fatalf("warnings: %q", tab.Warnings)
		}
	}
}

func TestLongestRunningMemberRulesHold(t *testing.T) {
	old, young := be("old", 1), be("young", 1)
	old.Started = time.Unix(100, 0)
	young.Started = time.Unix(200, 0)
	old.Rules.PathPrefix, young.Rules.PathPrefix = "/old", "/young"
	b := New()
	b.Update("test", []Backend{young, old})
	if got := b.Table().Pool(DefaultService).Rules().PathPrefix; got != "/old" {
		t.Fatalf("rules from %q, want /old", got)
	}
}

func TestInvalidBackendSkipped(t *testing.T) {
	b := New()
	bad := be("bad", 0)
	b.Update("test", []Backend{bad, be("good", 1)})
	if got := picks(t, b, DefaultService, 2); got != "good good" {
		t.Fatalf("got %s", got)
	}
}

// A request routed by an older table retries on that table's pool; a
// peer that has left the table since (a task scaled down, a container
// stopped) is not picked there, under every policy, while the peers that
// stay are.
func TestLeftPeerNotPickedFromOlderPool(t *testing.T) {
	for _, policy := range []Policy{RoundRobin, LeastConn, IPHash, P2C} {
		b := New()
		var bks []Backend
		for _, n := range []string{"a", "b", "c"} {
			bk := be(n, 1)
			bk.Rules.Policy = policy
			bks = append(bks, bk)
		}
		b.Update("test", bks)
		old := b.Table().Pool(DefaultService)
		b.Update("test", []Backend{bks[0], bks[2]})
		seen := map[string]bool{}
		for i := 0; i < 50; i++ {
			var tried []*Peer
			for pe := old.Pick(b.Now(), uint64(i), tried); pe != nil; pe = old.Pick(b.Now(), uint64(i), tried) {
				tried = append(tried, pe)
				seen[pe.Name] = true
			}
		}
		if seen["b"] || !seen["a"] || !seen["c"] {
			t.Errorf("%v: picked from the older pool %v; want a and c, never b", policy, seen)
		}
	}
}

func TestOnRemoveGetsAttachment(t *testing.T) {
	var got []any
	b := New(OnRemove(func(a any) { got = append(got, a) }))
	b.Update("test", []Backend{be("a", 1), be("b", 1)})
	b.Table().Pool(DefaultService).Peers()[1].AttachOnce(func() any { return "pool-b" })
	b.Update("test", []Backend{be("a", 1)})
	if len(got) != 1 || got[0] != "pool-b" {
		t.Fatalf("onRemove got %v", got)
	}
}

// TestConcurrentPickAndUpdate runs under -race: picks and outcome reports
// on one goroutine set while another keeps publishing new tables.
func TestConcurrentPickAndUpdate(t *testing.T) {
	b := New()
	b.Update("test", []Backend{be("a", 5), be("b", 1), be("c", 1)})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := b.Table().Route("localhost", "/")
				if p == nil {
					continue
				}
				if pe := p.Pick(b.Now(), 0, nil); pe != nil {
					pe.Begin()
					pe.End(pe.Name == "c", b.Now())
				}
			}
		}()
	}
	for i := 0; i < 300; i++ {
		list := []Backend{be("a", 1+i%5), be("b", 1)}
		if i%2 == 0 {
			list = append(list, be("c", 1))
		}
		for j := 0; j < i%7; j++ {
			list = append(list, be(fmt.Sprintf("x%d", j), 2))
		}
		b.Update("test", list)
	}
	close(stop)
	wg.Wait()
}

func TestLargeWeightsScaled(t *testing.T) {
	var list []Backend
	for i := 0; i < 300; i++ {
		list = append(list, be(fmt.Sprintf("p%03d", i), 997-i))
	}
	b := New()
	b.Update("test", list)
	s := b.Table().Pool(DefaultService).sched.Load()
	if len(s.primary) > maxCycle {
		t.Fatalf("cycle length %d over %d", len(s.primary), maxCycle)
	}
	count := map[*Peer]int{}
	for _, pe := range s.primary {
		count[pe]++
	}
	if len(count) != 300 {
		t.Fatalf("%d peers in cycle, want 300", len(count))
	}
}

// naiveCycle is nginx's loop, step by step, as the reference.
func naiveCycle(peers []*Peer) []*Peer {
	total := 0
	for _, p := range peers {
		total += p.Weight
	}
	cur := make([]int, len(peers))
	var seq []*Peer
	for k := 0; k < total; k++ {
		best := -1
		for i, p := range peers {
			cur[i] += p.Weight
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, peers[best])
	}
	return seq
}

func TestSmoothCycleMatchesNginxLoop(t *testing.T) {
	rnd := uint32(1)
	next := func(n int) int { rnd = rnd*1664525 + 1013904223; return int(rnd>>8) % n }
	for c := 0; c < 200; c++ {
		n := 1 + next(12)
		var peers []*Peer
		for i := 0; i < n; i++ {
			peers = append(peers, &Peer{Backend: Backend{Name: fmt.Sprint(i), Weight: 1 + next(9)}})
		}
		g := 0
		for _, p := range peers {
			g = gcd(g, p.Weight)
		}
		for _, p := range peers {
			p.Weight /= g // the reference does not reduce by the gcd
		}
		got, want := smoothCycle(peers), naiveCycle(peers)
		if fmt.Sprint(names(got)) != fmt.Sprint(names(want)) {
			t.Fatalf("weights %v:\ngot  %v\nwant %v", weights(peers), names(got), names(want))
		}
	}
}

func names(ps []*Peer) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.Name)
	}
	return s
}

func weights(ps []*Peer) []int {
	var s []int
	for _, p := range ps {
		s = append(s, p.Weight)
	}
	return s
}

func TestServiceRulesMergedPerField(t *testing.T) {
	old, young, mid := be("old", 1), be("young", 1), be("mid", 1)
	old.Started, mid.Started, young.Started = time.Unix(100, 0), time.Unix(150, 0), time.Unix(200, 0)
	old.Rules = Rules{PathPrefix: "/api"}   // no opinion on policy or hosts
	mid.Rules = Rules{PathPrefix: "/other"} // disagrees: warned, loses
	young.Rules = Rules{Policy: LeastConn, Hosts: []string{"a.test"}, TLS: TLSACME}
	b := New()
	b.Update("test", []Backend{young, mid, old})
	got := b.Table().Pool(DefaultService).Rules()
	if got.PathPrefix != "/api" || got.Policy != LeastConn || len(got.Hosts) != 1 || got.TLS != TLSACME {
		t.Fatalf("merged rules %+v, want path /api from old, policy least_conn, host and tls from young", got)
	}
}

// A request that was already under way when the peer went down does not
// bring it back by succeeding.
func TestEarlierSuccessDoesNotEndDownTime(t *testing.T) {
	clk := &fakeClock{}
	b := New(WithClock(clk.now))
	b.Update("test", []Backend{be("a", 1), be("b", 1)})
	pa := b.Table().Pool(DefaultService).Peers()[0]
	pa.Begin() // long request
	pa.Begin()
	pa.End(true, clk.now()) // max_fails=1: down
	clk.advance(time.Second)
	pa.End(false, clk.now()) // the long one succeeds within fail_timeout
	if pa.Available(clk.now()) {
		t.Fatal("an earlier request's success brought the peer back within fail_timeout")
	}
}
