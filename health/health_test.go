package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/lb"
)

// waitBound only bounds a wait that a bug would make endless, so that a
// broken test fails instead of hanging: tests wait on signals.
const waitBound = 10 * time.Second

// manualTicks is a Checker's ticks: a check after a peer's first runs
// only when the test ticks.
type manualTicks struct {
	mu      sync.Mutex
	sources map[string][]*tickSource // by peer key, in the order started
}

// tickSource is the ticks of one checking goroutine.
type tickSource struct {
	interval time.Duration
	c        chan time.Time
	stopped  chan struct{} // closed when the goroutine stops them
}

func (m *manualTicks) ticks(key string, interval time.Duration) (<-chan time.Time, func()) {
	s := &tickSource{interval: interval, c: make(chan time.Time), stopped: make(chan struct{})}
	m.mu.Lock()
	m.sources[key] = append(m.sources[key], s)
	m.mu.Unlock()
	return s.c, func() { close(s.stopped) }
}

// started returns the ticks started for key, oldest first.
func (m *manualTicks) started(key string) []*tickSource {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*tickSource(nil), m.sources[key]...)
}

// result is one check, as the Checker's checked hook reports it.
type result struct {
	key string
	err error
}

// recorder is the Checker's Reporter: it keeps every result it is given
// and passes it on to the balancer.
type recorder struct {
	bal *lb.Balancer
	mu  sync.Mutex
	got []bool
}

func (r *recorder) SetCheckResult(key string, passing bool) bool {
	r.mu.Lock()
	r.got = append(r.got, passing)
	r.mu.Unlock()
	return r.bal.SetCheckResult(key, passing)
}

func (r *recorder) reported() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.got...)
}

// harness is a balancer followed by a Checker whose checks the test
// starts (tick) and waits for (next).
type harness struct {
	t       *testing.T
	bal     *lb.Balancer
	rec     *recorder
	checker *Checker
	ticks   *manualTicks
	results chan result
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, ticks: &manualTicks{sources: map[string][]*tickSource{}}, results: make(chan result, 64)}
	h.bal = lb.New(lb.OnUpdate(func(t *lb.Table) { h.checker.Sync(t) }))
	h.rec = &recorder{bal: h.bal}
	h.checker = New(h.rec, zerolog.Nop())
	h.checker.ticks = h.ticks.ticks
	h.checker.checked = func(key string, err error) { h.results <- result{key, err} }
	t.Cleanup(h.checker.Stop)
	return h
}

// next waits for the next check to finish and have its result reported.
func (h *harness) next() result {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(waitBound):
		h.t.Fatalf("no check within %v", waitBound)
		return result{}
	}
}

// tick starts the next check of the peer with key and waits for it. A
// tick is taken only by a goroutine done with its previous check.
func (h *harness) tick(key string) result {
	h.t.Helper()
	srcs := h.ticks.started(key)
	if len(srcs) == 0 {
		h.t.Fatalf("no checks of %s", key)
	}
	select {
	case srcs[len(srcs)-1].c <- time.Time{}:
	case <-time.After(waitBound):
		h.t.Fatalf("check of %s not waiting for a tick within %v", key, waitBound)
	}
	return h.next()
}

// peer is a backend answering /health with the status set in it.
type peer struct {
	*httptest.Server
	status atomic.Int64  // the answer to the next check; 0 hangs until the check gives up
	checks atomic.Int64  // checks received
	hangs  chan struct{} // closed when the test ends
}

func newPeer(t *testing.T) *peer {
	p := &peer{hangs: make(chan struct{})}
	p.status.Store(200)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			return
		}
		p.checks.Add(1)
		status := int(p.status.Load())
		if status == 0 {
			select {
			case <-r.Context().Done():
			case <-p.hangs:
			}
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(p.Close)
	t.Cleanup(func() { close(p.hangs) }) // first: Close waits for handlers
	return p
}

func backend(name string, p *httptest.Server, hc lb.HealthCheck) lb.Backend {
	return lb.Backend{ID: name, Name: name, Network: "tcp", Addr: strings.TrimPrefix(p.URL, "http://"),
		Weight: 1, MaxFails: 1, FailTimeout: time.Second, Health: hc}
}

var everySecond = lb.HealthCheck{Path: "/health", Interval: time.Second, Timeout: time.Second}

// Each check's result is reported when it differs from the one before;
// one failing check takes the peer out of selection and one passing check
// brings it back (there is no threshold).
func TestCheckResultsTakePeerOutAndBack(t *testing.T) {
	h := newHarness(t)
	p := newPeer(t)
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer plain.Close()
	checked := backend("checked", p.Server, everySecond)
	h.bal.Update("test", []lb.Backend{checked, backend("plain", plain, lb.HealthCheck{})})
	pool := h.bal.Table().Pool(lb.DefaultService)
	picks := func() int {
		n := 0
		for range 10 {
			if pool.Pick(h.bal.Now(), 0, nil).Name == "checked" {
				n++
			}
		}
		return n
	}

	steps := []struct {
		status    int  // the peer's answer to the check
		available bool // the peer's state after it
	}{
		{200, true}, // the first check, at once
		{204, true},
		{503, false},
		{500, false},
		{301, true}, // a redirect is an answer: the peer is up
		{404, false},
		{200, true},
	}
	for i, st := range steps {
		p.status.Store(int64(st.status))
		var r result
		if i == 0 {
			r = h.next()
		} else {
			r = h.tick(checked.Key())
		}
		if r.key != checked.Key() || (r.err == nil) != st.available {
			t.Fatalf("check %d (%d): %s, %v; want passing %v", i+1, st.status, r.key, r.err, st.available)
		}
		pe := pool.Peers()[0]
		if got := pe.Available(h.bal.Now()); got != st.available {
			t.Fatalf("after check %d (%d): available %v, want %v", i+1, st.status, got, st.available)
		}
		want, reason := 5, ""
		if !st.available {
			want, reason = 0, "health check"
		}
		if n, r := picks(), pe.DownReason(h.bal.Now()); n != want || r != reason {
			t.Fatalf("after check %d (%d): picked %d times in 10, down reason %q; want %d, %q", i+1, st.status, n, r, want, reason)
		}
	}
	if got, want := fmt.Sprint(h.rec.reported()), "[true false true false true]"; got != want {
		t.Fatalf("reported %s, want %s", got, want)
	}
	if n := p.checks.Load(); n != int64(len(steps)) {
		t.Fatalf("the peer got %d checks, want %d", n, len(steps))
	}
}

// A peer that does not answer within the check's timeout fails the check.
func TestCheckTimesOut(t *testing.T) {
	h := newHarness(t)
	p := newPeer(t)
	// Short, yet long enough for an answering peer under the race
	// detector on a busy machine.
	const timeout = 200 * time.Millisecond
	b := backend("slow", p.Server, lb.HealthCheck{Path: "/health", Interval: time.Second, Timeout: timeout})
	h.bal.Update("test", []lb.Backend{b})
	if r := h.next(); r.err != nil {
		t.Fatalf("first check: %v", r.err)
	}
	p.status.Store(0) // hangs
	start := time.Now()
	if r := h.tick(b.Key()); !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("check of a hanging peer: %v, want the deadline exceeded", r.err)
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("check of a hanging peer gave up after %v, before its timeout", d)
	}
	if pe := h.bal.Table().Pool(lb.DefaultService).Peers()[0]; pe.Available(h.bal.Now()) {
		t.Fatal("a peer whose check timed out is available")
	}
	p.status.Store(200)
	if r := h.tick(b.Key()); r.err != nil {
		t.Fatalf("check of a peer answering again: %v", r.err)
	}
	if got, want := fmt.Sprint(h.rec.reported()), "[true false true]"; got != want {
		t.Fatalf("reported %s, want %s", got, want)
	}
}

// Sync stops the checks of a peer that lost its health check, and
// restarts those whose settings changed; Stop ends the rest.
func TestSyncStopsAndRestartsChecks(t *testing.T) {
	h := newHarness(t)
	p := newPeer(t)
	b := backend("a", p.Server, everySecond)
	key := b.Key()
	h.bal.Update("test", []lb.Backend{b})
	h.next()
	h.tick(key)
	stopped := func(s *tickSource, what string) {
		t.Helper()
		select {
		case <-s.stopped:
		case <-time.After(waitBound):
			t.Fatalf("%s: checks not stopped within %v", what, waitBound)
		}
	}

	// The label is removed: its goroutine ends, and no check is made.
	b.Health = lb.HealthCheck{}
	h.bal.Update("test", []lb.Backend{b})
	stopped(h.ticks.started(key)[0], "health check removed")
	if n := p.checks.Load(); n != 2 {
		t.Fatalf("the peer got %d checks, want 2", n)
	}

	// Back, then with another interval: each time checked at once, by a
	// goroutine of its own.
	b.Health = everySecond
	h.bal.Update("test", []lb.Backend{b})
	h.next()
	b.Health.Interval = 5 * time.Second
	h.bal.Update("test", []lb.Backend{b})
	h.next()
	srcs := h.ticks.started(key)
	if len(srcs) != 3 || srcs[1].interval != time.Second || srcs[2].interval != 5*time.Second {
		t.Fatalf("%d checking goroutines started, want 3 (intervals 1s, 1s, 5s)", len(srcs))
	}
	stopped(srcs[1], "interval changed")
	h.tick(key)

	h.checker.Stop()
	stopped(srcs[2], "Stop")
	if n := p.checks.Load(); n != 5 {
		t.Fatalf("the peer got %d checks, want 5", n)
	}
}

// Without ticks of its own, a Checker checks every Interval.
func TestChecksRepeatEveryInterval(t *testing.T) {
	p := newPeer(t)
	results := make(chan error, 64)
	bal := lb.New()
	checker := New(bal, zerolog.Nop())
	checker.checked = func(_ string, err error) {
		select {
		case results <- err:
		default: // checks go on until Stop; three are enough
		}
	}
	defer checker.Stop()
	bal.Update("test", []lb.Backend{backend("a", p.Server, lb.HealthCheck{Path: "/health", Interval: time.Millisecond, Timeout: time.Second})})
	checker.Sync(bal.Table())
	for i := range 3 {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("check %d: %v", i+1, err)
			}
		case <-time.After(waitBound):
			t.Fatalf("%d checks within %v, want 3", i, waitBound)
		}
	}
}

func TestNewPeerWithCheckHeldOutUntilFirstPass(t *testing.T) {
	bal := lb.New() // no checker: nothing will ever pass
	bal.Update("test", []lb.Backend{{ID: "a", Name: "a", Network: "tcp", Addr: "127.0.0.1:1", Weight: 1,
		Health: lb.HealthCheck{Path: "/h", Interval: time.Second, Timeout: time.Second}}})
	if p := bal.Table().Pool(lb.DefaultService).Pick(bal.Now(), 0, nil); p != nil {
		t.Fatal("peer with an unchecked health check was picked")
	}
}
