package main

// The chaos suite: wharf in this process in front of labelled webtest
// containers on the real engine, under continuous load from
// internal/loadgen (8 keep-alive clients on 127.0.0.1, every request
// recorded), while backends are stopped, killed, restarted, scaled, turned
// unhealthy, and while wharf's events stream from the engine is down. Each
// scenario has its own network and its own wharf, and ends with one line
//
//	chaos (x) <what happened>  sent N  failed N  worst D
//
// that the README's "Chaos tests" section quotes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/faultproxy"
	"github.com/wharflb/wharf/internal/loadgen"
	"github.com/wharflb/wharf/internal/testutil"
)

func init() {
	// wharf's own logger (newLogger) writes times with nanoseconds; the
	// instances in this process do the same, so that the moment a peer left
	// the table can be compared with the moment a request was sent.
	zerolog.TimeFieldFormat = time.RFC3339Nano
}

const (
	// Every load stops by itself after this long or this many requests,
	// whatever the test does.
	chaosLoadBound   = 2 * time.Minute
	chaosMaxRequests = 2_000_000
	// settle is a stretch of steady load between two changes: this many
	// more requests completed by the load (about 300 ms of it under the
	// race detector), so that a slow machine sends as much traffic per
	// step as a fast one. slowSettle is the same for a load whose answers
	// take 20 ms.
	settle     = 250
	slowSettle = 40
	// chaosWait bounds each wait for wharf or the engine.
	chaosWait = 20 * time.Second
)

// scenario is one chaos scenario: a network, its backends, a wharf, the
// engine's events about the backends, and the load.
type scenario struct {
	t      *testing.T
	id     string // "(a)"
	title  string
	cli    *client.Client
	net    string
	img    string
	cmd    []string // webtest's arguments
	wharf  *instance
	events *engineEvents
	all    []*dockertest.Container // every backend ever started
}

// newScenario starts n webtest backends of img on a new network and a
// wharf for that network, and waits until wharf routes to all of them.
func newScenario(t *testing.T, id, title, img string, cmd []string, n int) *scenario {
	t.Helper()
	cli := dockertest.Require(t)
	s := &scenario{t: t, id: id, title: title, cli: cli, img: img, cmd: cmd}
	s.net = dockertest.Network(t, cli, "chaos")
	s.events = watchEngine(t, cli)
	for range n {
		s.run()
	}
	s.wharf = startWharf(t, "--network", s.net)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s: wharf's log:\n%s", id, s.wharfLog())
		}
	})
	s.waitPeers(s.all...)
	return s
}

// run starts one more labelled backend.
func (s *scenario) run() *dockertest.Container {
	s.t.Helper()
	c := dockertest.Run(s.t, s.cli, dockertest.ContainerOptions{
		Image: s.img, Name: dockertest.UniqueName("chaos"), Network: s.net, Cmd: s.cmd,
		Labels: map[string]string{"lb.enable": "true", "lb.port": "6969"},
	})
	s.all = append(s.all, c)
	return c
}

// waitPeers waits until wharf's default service has exactly the peers cs.
// wharf logs each peer that joins or leaves its table, just after the new
// table is in place: the table is read again at each line of its log.
func (s *scenario) waitPeers(cs ...*dockertest.Container) {
	s.t.Helper()
	var want []string
	for _, c := range cs {
		want = append(want, c.Name)
	}
	sort.Strings(want)
	var got []string
	match := func() bool {
		got = got[:0]
		for _, sv := range s.wharf.services(s.t) {
			if sv.Name == "default" {
				for _, p := range sv.Peers {
					got = append(got, p.Container)
				}
			}
		}
		sort.Strings(got)
		return slices.Equal(got, want)
	}
	if !s.wharf.logs.Until(chaosWait, match) {
		s.t.Fatalf("%s: wharf's peers %v after %s, want %v", s.id, got, chaosWait, want)
	}
}

// steady lets the loads run until each has completed n more requests.
func (s *scenario) steady(n int64, runs ...*loadgen.Run) {
	s.t.Helper()
	for _, r := range runs {
		if !r.WaitCompleted(r.Completed()+n, chaosWait) {
			s.t.Fatalf("%s: the load completed %d requests in all, not %d more within %s", s.id, r.Completed(), n, chaosWait)
		}
	}
}

// load starts 8 keep-alive clients sending cfg's requests through wharf.
func (s *scenario) load(cfg loadgen.Config) *loadgen.Run {
	s.t.Helper()
	cfg.Addr = strings.TrimPrefix(s.wharf.url, "http://")
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	cfg.Duration, cfg.MaxRequests = chaosLoadBound, chaosMaxRequests
	r, err := loadgen.Start(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		s.watch(r, done)
	}()
	s.t.Cleanup(func() {
		r.Stop()
		close(done)
		<-watched
	})
	return r
}

// stuckAfter is how long a request may be in flight before the scenario
// logs the goroutines of wharf's data path, once.
const stuckAfter = 5 * time.Second

// watch logs, once, where wharf's data path waits when a request of r has
// been in flight for stuckAfter, until done is closed.
func (s *scenario) watch(r *loadgen.Run, done <-chan struct{}) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		if o := r.OldestInFlight(); !o.IsZero() && time.Since(o) > stuckAfter {
			s.t.Logf("%s: a request sent at %s is still in flight after %v; wharf's data path:\n%s",
				s.id, o.Format("15:04:05.000000"), stuckAfter, proxyStacks())
			return
		}
	}
}

// proxyStacks returns the stacks of the goroutines running wharf's proxy.
func proxyStacks() string {
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "wharf/proxy.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

var getUUID = loadgen.Config{Target: "/webtest?action=get_uuid"}

// answered waits until c answers a request sent after since.
func (s *scenario) answered(r *loadgen.Run, c *dockertest.Container, since time.Time) {
	s.t.Helper()
	if !r.WaitAnswer(c.Name, since, chaosWait) {
		s.t.Fatalf("%s: %s answered no request sent after it came back", s.id, c.Name)
	}
}

// readiness logs how long after c's port first accepted a connection from
// this host (polled every 2 ms from the moment c was started) wharf put c
// back in its table: the contract allows 50 ms.
func (s *scenario) readiness(c *dockertest.Container) {
	s.t.Helper()
	addr := c.Addr(s.net, "6969")
	var open time.Time
	for deadline := time.Now().Add(chaosWait); open.IsZero() && time.Now().Before(deadline); {
		if conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			open = time.Now()
			conn.Close()
		} else {
			// The container's port gives no signal when it opens: poll
			// it, every 2 ms for the measurement's sake.
			time.Sleep(2 * time.Millisecond)
		}
	}
	s.waitPeers(s.all...)
	var added time.Time
	for _, a := range records(s.wharf.logs, "peer added") {
		if a.Container == c.Name {
			added = a.Time
		}
	}
	if !open.IsZero() && !added.IsZero() {
		s.t.Logf("%s: %s routed again %s its port first accepted a connection", s.id, c.Name, relative(added, open))
	}
}

// stop ends the loads and returns every request's outcome, in the order
// sent.
func (s *scenario) stop(runs ...*loadgen.Run) []loadgen.Result {
	s.t.Helper()
	var rs []loadgen.Result
	for _, r := range runs {
		rs = append(rs, r.Stop()...)
		if r.Bounded() {
			s.t.Fatalf("%s: the load reached its bound (%s or %d requests) before the scenario ended", s.id, chaosLoadBound, chaosMaxRequests)
		}
	}
	slices.SortStableFunc(rs, func(a, b loadgen.Result) int { return a.Start.Compare(b.Start) })
	return rs
}

// report logs the scenario's line and the failures, and checks that no
// request was routed to a backend while it was out of wharf's table.
func (s *scenario) report(rs []loadgen.Result, extra string) loadgen.Summary {
	s.t.Helper()
	sum := loadgen.Summarize(rs)
	s.t.Logf("chaos %s %-44s %s%s", s.id, s.title, sum, extra)
	s.t.Logf("%s: worst latency for a request sent at %s; answers per backend %v",
		s.id, sum.WorstAt.Format("15:04:05.000"), sum.PerServer)
	shown := 0
	for _, r := range rs {
		if !r.OK() && shown < 20 {
			shown++
			s.t.Logf("%s: failed: sent %s after %v: status %d err %q body %q reused %v",
				s.id, r.Start.Format("15:04:05.000000"), r.Latency, r.Status, r.Err, r.Body, r.Reused)
		}
	}
	s.checkDrain(rs)
	return sum
}

// requireNoFailure fails the test when a request failed.
func (s *scenario) requireNoFailure(sum loadgen.Summary) {
	s.t.Helper()
	if sum.Failed != 0 {
		s.t.Errorf("%s: %d of %d requests failed, want 0", s.id, sum.Failed, sum.Sent)
	}
}

func (s *scenario) wharfLog() string {
	return s.wharf.logs.String()
}

// readdMargin is how long before its "peer added" line a request answered
// by that peer may have been sent. The line is written just after the new
// table is in place, and a request's time is when the client sent it, not
// when wharf routed it: on two CPUs shared with the other suites, the
// client's send led wharf's read of it by up to 63 ms. A request routed
// while its peer was out of the table is sent seconds before the line.
const readdMargin = 250 * time.Millisecond

// checkDrain checks, for every time wharf took a backend out of its table,
// that no request sent after that moment and before wharf added it again
// was answered by it; and logs how long after the engine's event wharf
// acted and when the last request it answered was sent.
func (s *scenario) checkDrain(rs []loadgen.Result) {
	s.t.Helper()
	added := records(s.wharf.logs, "peer added")
	for _, rm := range records(s.wharf.logs, "peer removed") {
		// The peer was in the table from its latest "peer added" before
		// the removal, and is out of it until the next one.
		var in, back time.Time
		for _, a := range added {
			if a.Container != rm.Container {
				continue
			}
			if a.Time.Before(rm.Time) {
				in = a.Time
			} else if back.IsZero() {
				back = a.Time
			}
		}
		var last time.Time
		bad := 0
		for i := range rs {
			r := &rs[i]
			if !r.OK() || r.Server != rm.Container {
				continue
			}
			if r.Start.After(rm.Time) && (back.IsZero() || r.Start.Before(back.Add(-readdMargin))) {
				if bad++; bad <= 5 {
					s.t.Errorf("%s: request sent %s answered by %s, out of wharf's table from %s to %s",
						s.id, r.Start.Format("15:04:05.000000"), r.Server, rm.Time.Format("15:04:05.000000"), back.Format("15:04:05.000000"))
				}
			}
			if r.Start.Before(rm.Time) && r.Start.After(last) {
				last = r.Start
			}
		}
		cause, ok := s.events.first(rm.Container, in, rm.Time, "kill", "die", "stop", "destroy", "health_status: unhealthy")
		if !ok {
			continue
		}
		msg := fmt.Sprintf("%s: %s out of wharf's table %v after its %s event", s.id, rm.Container,
			rm.Time.Sub(cause.time).Round(10*time.Microsecond), cause.action)
		for _, ev := range records(s.wharf.logs, "event") {
			if ev.Name == rm.Container && ev.Action == cause.action && !ev.Time.Before(cause.time) {
				msg += fmt.Sprintf(" (%v after wharf received it)", rm.Time.Sub(ev.Time).Round(10*time.Microsecond))
				break
			}
		}
		if !last.IsZero() {
			msg += "; the last request it answered was sent " + relative(last, cause.time) + " the event"
		}
		if start, ok := s.events.first(rm.Container, rm.Time, back, "start"); ok && !back.IsZero() {
			msg += "; back in the table " + relative(back, start.time) + " its start event"
		}
		s.t.Log(msg)
	}
}

// relative says "D before" or "D after" of t against ref.
func relative(t, ref time.Time) string {
	d := t.Sub(ref).Round(10 * time.Microsecond)
	if d < 0 {
		return fmt.Sprintf("%v before", -d)
	}
	return fmt.Sprintf("%v after", d)
}

// postIDs returns, for each id, the backends that recorded it (webtest
// --record): every backend ever started must be running.
func (s *scenario) postIDs() map[string][]string {
	s.t.Helper()
	got := map[string][]string{}
	for _, c := range s.all {
		res, err := dockertest.HTTPClient.Get("http://" + c.Addr(s.net, "6969") + "/received")
		if err != nil {
			s.t.Fatalf("%s: GET /received of %s: %v", s.id, c.Name, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			s.t.Fatalf("%s: GET /received of %s: %s %s", s.id, c.Name, res.Status, b)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			got[sc.Text()] = append(got[sc.Text()], c.Name)
		}
	}
	return got
}

// postOutcome counts what happened to the POSTs of a scenario.
type postOutcome struct {
	twice int // reached backends more than once: must be 0
	// Failed POSTs, each answered 502 by wharf after its attempt on a
	// backend that was being stopped or killed broke off unanswered:
	killed         int // on a backend killed with SIGKILL
	killedRecorded int // of those, recorded by it (it had read the POST)
	lostInShutdown int // on a backend stopping after SIGTERM, recorded by none
}

// checkPosts checks the POSTs of rs against what the backends recorded
// (webtest --record) and what wharf logged: no POST reached a backend
// twice or reached two backends; every answered POST reached exactly the
// backend that answered; every failed one is wharf's 502 for a POST whose
// attempt broke off on a backend at the moment it received its stop or
// kill signal, and that no other backend received.
func (s *scenario) checkPosts(rs []loadgen.Result) postOutcome {
	s.t.Helper()
	recorded := s.postIDs()
	attempts := records(s.wharf.logs, "attempt failed")
	var o postOutcome
	sent := map[string]bool{}
	for i := range rs {
		r := &rs[i]
		sent[r.ID] = true
		at := recorded[r.ID]
		if len(at) > 1 {
			o.twice++
			s.t.Errorf("%s: POST %s sent %s reached a backend more than once: %v (answer: status %d from %q, err %q)",
				s.id, r.ID, r.Start.Format("15:04:05.000000"), at, r.Status, r.Server, r.Err)
			continue
		}
		if r.OK() {
			if len(at) != 1 || at[0] != r.Server {
				s.t.Errorf("%s: POST %s answered by %s, recorded by %v", s.id, r.ID, r.Server, at)
			}
			continue
		}
		if r.Err != "" || r.Status != http.StatusBadGateway {
			s.t.Errorf("%s: POST %s failed with status %d err %q, want only wharf's 502", s.id, r.ID, r.Status, r.Err)
			continue
		}
		// The backend whose attempt broke off while the POST was in
		// flight, and that got a stop or kill signal then.
		var on string
		var sig event
		for _, a := range attempts {
			if a.Time.Before(r.Start) || a.Time.After(r.End()) {
				continue
			}
			if ev, ok := s.events.signalled(a.Container, r.Start.Add(-time.Second), r.End().Add(time.Second)); ok {
				on, sig = a.Container, ev
			}
		}
		switch {
		case on == "":
			s.t.Errorf("%s: POST %s (sent %s, %v) failed, and no attempt of it broke off on a backend being stopped or killed; recorded by %v",
				s.id, r.ID, r.Start.Format("15:04:05.000000"), r.Latency, at)
		case len(at) == 1 && at[0] != on:
			s.t.Errorf("%s: POST %s failed on %s, and %s recorded it", s.id, r.ID, on, at[0])
		case isSIGKILL(sig.attrs["signal"]):
			o.killed++
			if len(at) == 1 {
				o.killedRecorded++
			}
		case len(at) == 1:
			s.t.Errorf("%s: POST %s failed on %s, which read it while stopping after signal %s: it should have answered",
				s.id, r.ID, on, sig.attrs["signal"])
		default:
			o.lostInShutdown++
		}
	}
	for id, at := range recorded {
		if !sent[id] {
			s.t.Errorf("%s: %v recorded id %s that was never sent", s.id, at, id)
		}
	}
	return o
}

// engineEvents records the engine's container events about this run's
// containers, with the engine's time of each (the host's clock).
type engineEvents struct {
	mu      sync.Mutex
	msgs    []event
	changed chan struct{} // closed and replaced at every event
}

// changes returns a channel closed at the next event.
func (e *engineEvents) changes() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.changed == nil {
		e.changed = make(chan struct{})
	}
	return e.changed
}

type event struct {
	time   time.Time
	name   string
	action string
	attrs  map[string]string
}

func watchEngine(t *testing.T, cli *client.Client) *engineEvents {
	t.Helper()
	e := &engineEvents{}
	ctx, cancel := context.WithCancel(context.Background())
	since := time.Now()
	msgs, errs := cli.Events(ctx, events.ListOptions{
		Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("type", "container"),
			filters.Arg("label", dockertest.Label+"="+dockertest.RunID())),
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				e.mu.Lock()
				e.msgs = append(e.msgs, event{time.Unix(0, m.TimeNano), m.Actor.Attributes["name"], string(m.Action), m.Actor.Attributes})
				if e.changed != nil {
					close(e.changed)
					e.changed = nil
				}
				e.mu.Unlock()
			case <-errs:
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return e
}

// wait returns the first event of container name with action at or after
// from, failing the test after chaosWait. It looks again at each event.
func (e *engineEvents) wait(t *testing.T, name, action string, from time.Time) event {
	t.Helper()
	deadline := time.NewTimer(chaosWait)
	defer deadline.Stop()
	for {
		changed := e.changes()
		if ev, ok := e.next(name, from, action); ok {
			return ev
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s event of %s after %s", action, name, chaosWait)
		}
	}
}

// next returns the first event of name at or after from with one of
// actions.
func (e *engineEvents) next(name string, from time.Time, actions ...string) (event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.msgs {
		if ev.name == name && !ev.time.Before(from) && slices.Contains(actions, ev.action) {
			return ev, true
		}
	}
	return event{}, false
}

// first returns the first event of name after from and before until with
// one of actions.
func (e *engineEvents) first(name string, from, until time.Time, actions ...string) (event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.msgs {
		if ev.name == name && ev.time.After(from) && ev.time.Before(until) && slices.Contains(actions, ev.action) {
			return ev, true
		}
	}
	return event{}, false
}

// signalled returns the last kill event (a stop or kill signal) of
// container name between from and to.
func (e *engineEvents) signalled(name string, from, to time.Time) (event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var found event
	ok := false
	for _, ev := range e.msgs {
		if ev.name == name && ev.action == "kill" && !ev.time.Before(from) && !ev.time.After(to) {
			found, ok = ev, true
		}
	}
	return found, ok
}

func isSIGKILL(sig string) bool {
	switch strings.TrimPrefix(strings.ToUpper(sig), "SIG") {
	case "9", "KILL":
		return true
	}
	return false
}

// logRecord is one line of wharf's JSON log.
type logRecord struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	Message   string    `json:"message"`
	Container string    `json:"container"`
	Error     string    `json:"error"`
	// Of discovery's debug line about an engine event.
	Name   string `json:"name"`
	Action string `json:"action"`
}

// records returns wharf's log lines whose message contains msg.
func records(l *testutil.LogBuffer, msg string) []logRecord {
	var out []logRecord
	for _, line := range l.Lines("") {
		var r logRecord
		if json.Unmarshal([]byte(line.Raw), &r) == nil && strings.Contains(r.Message, msg) {
			out = append(out, r)
		}
	}
	return out
}

// TestChaos runs the scenarios that share the engine peacefully, in
// parallel; TestChaosEngineOutage, which changes DOCKER_HOST, runs alone.
func TestChaos(t *testing.T) {
	cli := dockertest.Require(t)
	webtest := dockertest.WebtestImage(t, cli)

	t.Run("a stop and start each", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "(a)", "docker stop + start, each of 3 in turn", webtest, nil, 3)
		load := s.load(getUUID)
		s.steady(settle, load)
		backends := slices.Clone(s.all)
		for i, b := range backends {
			b.Stop(10 * time.Second)
			s.waitPeers(slices.Delete(slices.Clone(backends), i, i+1)...)
			s.steady(settle, load)
			since := time.Now()
			b.Start()
			s.readiness(b)
			s.answered(load, b, since)
			s.steady(settle, load)
		}
		s.requireNoFailure(s.report(s.stop(load), ""))
	})

	t.Run("b sigkill and start", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "(b)", "docker kill (SIGKILL) one + start", webtest, nil, 3)
		load := s.load(getUUID)
		s.steady(settle, load)
		b := s.all[1]
		b.Kill("KILL")
		s.waitPeers(s.all[0], s.all[2])
		s.steady(settle, load)
		since := time.Now()
		b.Start()
		s.readiness(b)
		s.answered(load, b, since)
		s.steady(settle, load)
		s.requireNoFailure(s.report(s.stop(load), ""))
	})

	t.Run("c restart", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "(c)", "docker restart one", webtest, nil, 3)
		load := s.load(getUUID)
		s.steady(settle, load)
		b := s.all[2]
		since := time.Now()
		b.Restart(10 * time.Second)
		s.readiness(b)
		s.answered(load, b, since)
		if len(records(s.wharf.logs, "peer removed")) == 0 {
			t.Errorf("wharf never took %s out during its restart", b.Name)
		}
		s.steady(settle, load)
		s.requireNoFailure(s.report(s.stop(load), ""))
	})

	t.Run("d scale 3 10 2", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "(d)", "scale 3 → 10 → 2 (docker run, docker rm -f)", webtest, nil, 3)
		load := s.load(getUUID)
		s.steady(settle, load)
		since := time.Now()
		for len(s.all) < 10 {
			s.run()
		}
		s.waitPeers(s.all...)
		for _, c := range s.all {
			s.answered(load, c, since)
		}
		s.steady(settle, load)
		for _, c := range s.all[:8] {
			c.Remove()
		}
		s.waitPeers(s.all[8:]...)
		s.steady(settle, load)
		s.requireNoFailure(s.report(s.stop(load), ""))
	})

	t.Run("f unhealthy", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "(f)", "HEALTHCHECK turns unhealthy", dockertest.WebtestHealthImage(t, cli), nil, 3)
		load := s.load(getUUID)
		s.steady(settle, load)
		b := s.all[0]
		failAt := time.Now()
		res, err := dockertest.HTTPClient.Post("http://"+b.Addr(s.net, "6969")+"/healthz?fail=1", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		ev := s.events.wait(t, b.Name, "health_status: unhealthy", failAt)
		s.waitPeers(s.all[1:]...)
		s.steady(3*settle, load)
		rs := s.stop(load)
		after, failedAfter := 0, 0
		for i := range rs {
			if rs[i].Start.After(ev.time) {
				after++
				if !rs[i].OK() {
					failedAfter++
				}
			}
		}
		sum := s.report(rs, fmt.Sprintf("  (after the health event: sent %d, failed %d)", after, failedAfter))
		if failedAfter != 0 {
			t.Errorf("%d requests sent after the health event failed, want 0", failedAfter)
		}
		if sum.Failed != 0 {
			t.Logf("%d requests failed before the health event", sum.Failed)
		}
	})

	// POSTs are never retried once they may have reached a peer: under the
	// same events, each POST carries an id that the backend records
	// (webtest --record) as it arrives.
	posts := func(t *testing.T, id, title string, hit func(*dockertest.Container)) {
		s := newScenario(t, id, title, webtest, []string{"--record", "/received"}, 3)
		// Half the clients ask for a 20 ms answer, so that POSTs are in
		// flight when a backend goes; half for an immediate one, so that
		// POSTs meet connections a stopping backend closes.
		slow := s.load(loadgen.Config{Method: "POST", Target: "/webtest?action=get_uuid&delay=20ms", Body: "payload=1",
			IDPrefix: "slow", Concurrency: 4})
		fast := s.load(loadgen.Config{Method: "POST", Target: "/webtest?action=get_uuid", Body: "payload=1",
			IDPrefix: "fast", Concurrency: 4})
		s.steady(slowSettle, slow)
		s.steady(settle, fast)
		backends := slices.Clone(s.all)
		for i, b := range backends {
			hit(b)
			s.waitPeers(slices.Delete(slices.Clone(backends), i, i+1)...)
			s.steady(slowSettle, slow)
			s.steady(settle, fast)
			since := time.Now()
			b.Start()
			s.readiness(b)
			s.answered(slow, b, since)
			s.steady(slowSettle, slow)
			s.steady(settle, fast)
		}
		rs := s.stop(slow, fast)
		o := s.checkPosts(rs)
		s.report(rs, fmt.Sprintf("  (sent twice: %d; failed on a SIGKILLed backend: %d, of which it had read %d; lost in a SIGTERMed backend's closing of idle connections: %d)",
			o.twice, o.killed, o.killedRecorded, o.lostInShutdown))
		// webtest keeps serving for its --drain-delay after SIGTERM, and
		// wharf stops sending at the kill event: nothing may be lost then.
		if o.lostInShutdown != 0 {
			t.Errorf("%d POSTs lost to a backend stopping after SIGTERM, want 0", o.lostInShutdown)
		}
	}
	t.Run("post stop", func(t *testing.T) {
		t.Parallel()
		posts(t, "(P1)", "POST: docker stop + start, each of 3 in turn", func(b *dockertest.Container) { b.Stop(10 * time.Second) })
	})
	t.Run("post sigkill", func(t *testing.T) {
		t.Parallel()
		posts(t, "(P2)", "POST: docker kill (SIGKILL) + start, each of 3", func(b *dockertest.Container) { b.Kill("KILL") })
	})
}

// TestChaosEngineOutage is scenario (e): wharf's connection to the engine
// goes through a fault-injecting proxy, which refuses connections (the
// events stream is cut at its start) until wharf has tried to reconnect
// outageRetries times, while, on the real socket, one backend is added and
// one removed. wharf keeps serving; once reconnected
// it routes to the new backend and never to the removed one. It changes
// DOCKER_HOST for wharf, so it does not run in parallel with other tests.
// outageRetries is how many refused reconnections the outage of scenario
// (e) lasts: with wharf's backoff from 100 ms, about 1.5 s.
const outageRetries = 4

func TestChaosEngineOutage(t *testing.T) {
	cli := dockertest.Require(t) // the shared client keeps the real socket
	webtest := dockertest.WebtestImage(t, cli)
	p := faultproxy.Start(t)
	t.Setenv("DOCKER_HOST", p.Host())

	s := newScenario(t, "(e)", "events stream down 4 retries; one added, one removed", webtest, nil, 3)
	load := s.load(getUUID)
	s.steady(settle, load)
	gone := s.all[0]

	downAt := time.Now()
	p.Down()
	added := s.run()
	gone.Remove()
	// The engine stays away until wharf has logged the outage and then
	// been refused outageRetries times (a line each), and the load has
	// gone on meanwhile.
	s.wharf.logs.Wait(t, outageRetries, chaosWait, "debug", "engine still unreachable")
	s.steady(settle, load)
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	if outage := s.wharf.logs.Lines("error"); len(outage) != 1 || !strings.Contains(outage[0].Raw, "events stream") {
		t.Errorf("wharf logged %d errors while the engine was away, want one naming the events stream:\n%s",
			len(outage), testutil.Raws(outage))
	}
	s.wharf.logs.Wait(t, 1, chaosWait, "info", "reconnected to the Docker engine")
	recovered := records(s.wharf.logs, "reconnected to the Docker engine")[0].Time
	s.waitPeers(s.all[1:]...)
	s.answered(load, added, recovered)
	s.steady(settle, load)
	rs := s.stop(load)
	during := 0
	for _, r := range records(s.wharf.logs, "attempt failed") {
		if r.Container != gone.Name {
			continue
		}
		if r.Time.After(recovered) {
			t.Errorf("wharf tried the removed %s at %s, after it reconnected", gone.Name, r.Time.Format("15:04:05.000000"))
		} else {
			during++
		}
	}
	t.Logf("(e): while the engine was away, %d attempts on the removed %s failed and were retried on the next peer", during, gone.Name)
	for i := range rs {
		if rs[i].Server == gone.Name && rs[i].Start.After(recovered) {
			t.Errorf("the removed %s answered a request sent after wharf reconnected", gone.Name)
		}
	}
	if n := len(records(s.wharf.logs, "reconnected to the Docker engine")); n != 1 {
		t.Errorf("wharf logged its recovery %d times, want once", n)
	}
	t.Logf("(e): engine down %v; wharf reconnected %v after it came back", upAt.Sub(downAt).Round(time.Millisecond),
		recovered.Sub(upAt).Round(time.Millisecond))
	s.requireNoFailure(s.report(rs, ""))
}
