package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend answers like webtest and counts the requests it saw, by id.
type backend struct {
	mu  sync.Mutex
	ids map[string]int
	n   atomic.Int64
	// hijackEvery, if not zero, makes every n-th request's connection close
	// without an answer.
	hijackEvery int64
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := b.n.Add(1)
	b.mu.Lock()
	b.ids[r.URL.Query().Get("id")]++
	b.mu.Unlock()
	if b.hijackEvery > 0 && n%b.hijackEvery == 0 {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"IsSuccess":true,"Data":"x","Server":"web%d"}`, n%2+1)
}

func (b *backend) seen(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ids[id]
}

func start(t *testing.T, b *backend) string {
	t.Helper()
	b.ids = map[string]int{}
	ts := httptest.NewServer(b)
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// ended waits until r ends by itself, and fails t after timeout.
func ended(t *testing.T, r *Run, timeout time.Duration) {
	t.Helper()
	select {
	case <-r.Done():
	case <-time.After(timeout):
		t.Fatalf("the run has not ended after %s: %d requests completed", timeout, r.Completed())
	}
}

func TestBoundedByCount(t *testing.T) {
	b := &backend{}
	addr := start(t, b)
	r, err := Start(Config{Addr: addr, Method: "POST", Target: "/webtest?action=get_uuid", Body: "a=1",
		IDPrefix: "t", Duration: time.Minute, MaxRequests: 500})
	if err != nil {
		t.Fatal(err)
	}
	ended(t, r, 30*time.Second)
	rs := r.Stop()
	if !r.Bounded() {
		t.Fatal("the run did not stop by itself after MaxRequests")
	}
	s := Summarize(rs)
	if s.Sent != 500 || s.Failed != 0 || b.n.Load() != 500 {
		t.Fatalf("%v, backend saw %d; want 500 sent, 0 failed, 500 seen", s, b.n.Load())
	}
	if s.PerServer["web1"] != 250 || s.PerServer["web2"] != 250 {
		t.Errorf("per server %v, want 250 each", s.PerServer)
	}
	seen := map[string]bool{}
	for i, res := range rs {
		if res.ID == "" || seen[res.ID] || b.seen(res.ID) != 1 {
			t.Fatalf("result %d: id %q (seen before %v, backend saw it %d times)", i, res.ID, seen[res.ID], b.seen(res.ID))
		}
		seen[res.ID] = true
		if i > 0 && res.Start.Before(rs[i-1].Start) {
			t.Fatalf("results not in the order sent at %d", i)
		}
	}
}

func TestBoundedByTime(t *testing.T) {
	addr := start(t, &backend{})
	r, err := Start(Config{Addr: addr, Target: "/", Duration: 200 * time.Millisecond, MaxRequests: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	ended(t, r, 10*time.Second)
	if !r.Bounded() {
		t.Fatal("the run did not stop by itself after Duration")
	}
	if s := Summarize(r.Stop()); s.Sent == 0 || s.Failed != 0 {
		t.Fatalf("%v", s)
	}
}

// TestDial checks that every connection is opened by Config.Dial when it
// is set, with the timeout of a request, and that a failing Dial fails the
// request.
func TestDial(t *testing.T) {
	addr := start(t, &backend{})
	var dials atomic.Int64
	var refuse atomic.Bool
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		dials.Add(1)
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		if refuse.Load() {
			return nil, errors.New("refused by the test")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, a)
	}
	r, err := Start(Config{Addr: addr, Target: "/", Concurrency: 3, Dial: dial, Duration: time.Minute, MaxRequests: 300})
	if err != nil {
		t.Fatal(err)
	}
	ended(t, r, 30*time.Second)
	if s := Summarize(r.Stop()); s.Sent != 300 || s.Failed != 0 || dials.Load() != 3 {
		t.Fatalf("%v with %d dials; want 300 sent, 0 failed, one dial per worker", s, dials.Load())
	}
	refuse.Store(true)
	r, err = Start(Config{Addr: addr, Target: "/", Concurrency: 1, Dial: dial, Duration: time.Minute, MaxRequests: 5})
	if err != nil {
		t.Fatal(err)
	}
	ended(t, r, 30*time.Second)
	rs := r.Stop()
	if s := Summarize(rs); s.Failed != 5 || !strings.Contains(rs[0].Err, "refused by the test") {
		t.Fatalf("%v, first %+v; want every request failed by the dial", s, rs[0])
	}
}

// TestBrokenConnectionIsAFailure checks that a request whose connection
// closes without an answer is recorded as failed and not sent again.
func TestBrokenConnectionIsAFailure(t *testing.T) {
	b := &backend{hijackEvery: 10}
	addr := start(t, b)
	r, err := Start(Config{Addr: addr, Target: "/webtest", IDPrefix: "g", Concurrency: 2, Duration: time.Minute, MaxRequests: 200})
	if err != nil {
		t.Fatal(err)
	}
	ended(t, r, 30*time.Second)
	rs := r.Stop()
	s := Summarize(rs)
	if s.Sent != 200 || s.Failed != 20 || b.n.Load() != 200 {
		t.Fatalf("%v, backend saw %d; want 200 sent, 20 failed, 200 seen", s, b.n.Load())
	}
	for _, res := range rs {
		if !res.OK() && (res.Err == "" || b.seen(res.ID) != 1) {
			t.Errorf("failed request %+v: want an error and one arrival", res)
		}
	}
}

func TestStopAndRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := Start(Config{Addr: addr, Target: "/", Duration: time.Minute, MaxRequests: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !r.WaitCompleted(20, 10*time.Second) {
		t.Fatalf("%d requests completed, want 20", r.Completed())
	}
	rs := r.Stop()
	if r.Bounded() {
		t.Error("Bounded after Stop")
	}
	s := Summarize(rs)
	if s.Sent == 0 || s.Failed != s.Sent || !strings.Contains(rs[0].Err, "refused") {
		t.Fatalf("%v, first %+v; want every request failed with connection refused", s, rs[0])
	}
	if _, err := Start(Config{Addr: addr, Target: "/"}); err == nil {
		t.Error("Start without bounds succeeded")
	}
}

func TestOldestInFlight(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		fmt.Fprint(w, `{"IsSuccess":true,"Server":"slow"}`)
	}))
	defer ts.Close()
	before := time.Now()
	r, err := Start(Config{Addr: strings.TrimPrefix(ts.URL, "http://"), Target: "/", Concurrency: 2,
		Duration: time.Minute, MaxRequests: 2})
	if err != nil {
		t.Fatal(err)
	}
	// A request the backend holds is in flight.
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the backend")
	}
	if o := r.OldestInFlight(); o.Before(before) || o.After(time.Now()) {
		t.Fatalf("oldest in flight %v, want a time since the start", o)
	}
	close(release)
	rs := r.Stop()
	// The second worker may not have sent its request before Stop.
	if s := Summarize(rs); s.Sent < 1 || s.Sent > 2 || s.Failed != 0 || !r.OldestInFlight().IsZero() {
		t.Fatalf("%v, oldest in flight %v after Stop", s, r.OldestInFlight())
	}
}

// TestWaitCompleted checks that WaitCompleted returns once the count is
// reached, not before, and false when the run ends before it is.
func TestWaitCompleted(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 50 {
			<-release // every request after the 50th is held until the test lets it go
		}
		fmt.Fprint(w, `{"IsSuccess":true,"Server":"web1"}`)
	}))
	defer ts.Close()
	defer free()
	r, err := Start(Config{Addr: strings.TrimPrefix(ts.URL, "http://"), Target: "/", Concurrency: 4,
		Duration: time.Minute, MaxRequests: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Several waiters at once, on counts reached in any order.
	var wg sync.WaitGroup
	for _, want := range []int64{50, 1, 25, 10} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !r.WaitCompleted(want, 10*time.Second) {
				t.Errorf("WaitCompleted(%d) false with %d completed", want, r.Completed())
			}
		}()
	}
	wg.Wait()
	if got := r.Completed(); got != 50 {
		t.Fatalf("%d completed, want 50", got)
	}
	if r.WaitCompleted(51, 20*time.Millisecond) {
		t.Fatal("WaitCompleted(51) true while the backend holds every request after the 50th")
	}
	release <- struct{}{} // one more
	if !r.WaitCompleted(51, 10*time.Second) {
		t.Fatalf("WaitCompleted(51) false with %d completed", r.Completed())
	}
	free()
	if r.WaitCompleted(1000, 10*time.Second) {
		t.Fatal("WaitCompleted(1000) true for a run of 100 requests")
	}
	ended(t, r, 10*time.Second)
	if got := r.Completed(); got != 100 || !r.Bounded() {
		t.Fatalf("%d completed, bounded %v; want 100 by the bound", got, r.Bounded())
	}
	r.Stop()
}

// TestCompleteAllocatesNothing checks that counting a completed request
// costs the workers no allocation, whether someone waits or not.
func TestCompleteAllocatesNothing(t *testing.T) {
	r := &Run{done: make(chan struct{})}
	r.wakeAt.Store(math.MaxInt64)
	if n := testing.AllocsPerRun(1000, r.complete); n != 0 {
		t.Errorf("%v allocations per completed request with no waiter, want 0", n)
	}
	r.waiters = append(r.waiters, completedWaiter{n: 1 << 40, ch: make(chan struct{})})
	// wakeAt lowered at every call: each takes the waiters' lock and looks.
	if n := testing.AllocsPerRun(1000, func() { r.wakeAt.Store(1); r.complete() }); n != 0 {
		t.Errorf("%v allocations per completed request with a waiter, want 0", n)
	}
}
