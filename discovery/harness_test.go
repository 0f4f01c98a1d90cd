package discovery

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
)

// The Docker tests of this file's package run against the real engine; see
// internal/dockertest.
func TestMain(m *testing.M) { dockertest.Main(m) }

// snapshot is one set the Watcher published, and when.
type snapshot struct {
	at  time.Time
	set []lb.Backend
}

func (s snapshot) find(id string) (lb.Backend, bool) {
	for _, b := range s.set {
		if b.ID == id {
			return b, true
		}
	}
	return lb.Backend{}, false
}

func (s snapshot) names() []string {
	var ns []string
	for _, b := range s.set {
		ns = append(ns, b.Name)
	}
	return ns
}

// recorder is a Watcher's publish func: it keeps every snapshot with the
// time it was published.
type recorder struct {
	mu     sync.Mutex
	snaps  []snapshot
	notify chan struct{} // receives after each publish
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) publish(set []lb.Backend) {
	now := time.Now()
	r.mu.Lock()
	r.snaps = append(r.snaps, snapshot{at: now, set: slices.Clone(set)})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.snaps)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.snaps)
}

// wait waits until the latest snapshot satisfies ok and returns it with its
// index, failing t after timeout.
func (r *recorder) wait(t testing.TB, timeout time.Duration, what string, ok func(snapshot) bool) (snapshot, int) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		snaps := r.all()
		if n := len(snaps); n > 0 && ok(snaps[n-1]) {
			return snaps[n-1], n - 1
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			t.Fatalf("no snapshot where %s after %s; snapshots:\n%s", what, timeout, r.dump())
		}
	}
}

// waitIn waits until the container id is in the latest snapshot (in true) or
// not (in false).
func (r *recorder) waitIn(t testing.TB, id string, in bool, timeout time.Duration) (snapshot, int) {
	t.Helper()
	what := short(id) + " is out"
	if in {
		what = short(id) + " is in"
	}
	return r.wait(t, timeout, what, func(s snapshot) bool { _, ok := s.find(id); return ok == in })
}

// transition is a change of one container's membership in the published
// sets.
type transition struct {
	in  bool
	at  time.Time
	idx int // index of the snapshot
}

// transitions returns the changes of id's membership over the snapshots
// from index from on, starting with its state in snapshot from.
func (r *recorder) transitions(id string, from int) []transition {
	var ts []transition
	for i, s := range r.all() {
		if i < from {
			continue
		}
		_, in := s.find(id)
		if len(ts) == 0 || ts[len(ts)-1].in != in {
			ts = append(ts, transition{in: in, at: s.at, idx: i})
		}
	}
	return ts
}

func seq(ts []transition) string {
	var parts []string
	for _, t := range ts {
		if t.in {
			parts = append(parts, "in")
		} else {
			parts = append(parts, "out")
		}
	}
	return strings.Join(parts, ",")
}

func (r *recorder) dump() string {
	var b strings.Builder
	snaps := r.all()
	for i, s := range snaps {
		fmt.Fprintf(&b, "  %d %s %v\n", i, s.at.Format("15:04:05.000000"), s.names())
	}
	return b.String()
}

// eventLog is the test's own subscription to the engine's events, to learn
// when each event happened (timeNano, on the engine's clock, which is the
// host's).
type eventLog struct {
	mu     sync.Mutex
	msgs   []events.Message
	notify chan struct{}
}

func watchEvents(t testing.TB, cli *client.Client) *eventLog {
	t.Helper()
	l := &eventLog{notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	// Since replays what happened between now and the moment the engine
	// registers the subscription, which is after it answered.
	since := time.Now()
	f := filters.NewArgs(filters.Arg("type", "container"), filters.Arg("type", "network"))
	msgs, errs := cli.Events(ctx, events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: f,
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				l.mu.Lock()
				l.msgs = append(l.msgs, m)
				l.mu.Unlock()
				select {
				case l.notify <- struct{}{}:
				default:
				}
			case <-errs:
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

// about reports whether m concerns container id.
func about(m events.Message, id string) bool {
	return id != "" && (m.Actor.ID == id || m.Actor.Attributes["container"] == id)
}

// wait returns the first event about container id with action, after index
// from of the log, failing t after timeout.
func (l *eventLog) wait(t testing.TB, id, action string, timeout time.Duration) events.Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, m := range l.msgs {
			if about(m, id) && string(m.Action) == action {
				l.mu.Unlock()
				return m
			}
		}
		l.mu.Unlock()
		select {
		case <-l.notify:
		case <-deadline.C:
			t.Fatalf("no %s event for %s after %s; events:\n%s", action, short(id), timeout, l.dump(id))
		}
	}
}

// all returns the events about container id, in order, with action in
// actions (all when none is given).
func (l *eventLog) all(id string, actions ...string) []events.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []events.Message
	for _, m := range l.msgs {
		if about(m, id) && (len(actions) == 0 || slices.Contains(actions, string(m.Action))) {
			out = append(out, m)
		}
	}
	return out
}

func (l *eventLog) dump(id string) string {
	var b strings.Builder
	for _, m := range l.all(id) {
		fmt.Fprintf(&b, "  %s %s %s\n", time.Unix(0, m.TimeNano).Format("15:04:05.000000"), m.Type, m.Action)
	}
	return b.String()
}

func evTime(m events.Message) time.Time { return time.Unix(0, m.TimeNano) }

// delayEngine holds back the events that hold selects, and every event
// after them, for delay, so that a test can tell which event of a sequence
// made the Watcher act: the events before the first held one reach the
// Watcher at once. The order of events is kept.
type delayEngine struct {
	Engine
	delay    time.Duration
	hold     func(events.Message) bool
	mu       sync.Mutex
	first    time.Time     // when the first held event was passed on
	released chan struct{} // closed then; see releasedLocked
}

// releasedLocked returns the channel closed when the first held event is
// passed on; d.mu is held.
func (d *delayEngine) releasedLocked() chan struct{} {
	if d.released == nil {
		d.released = make(chan struct{})
	}
	return d.released
}

func (d *delayEngine) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	in, errs := d.Engine.Events(ctx, opts)
	out := make(chan events.Message)
	type held struct {
		m   events.Message
		due time.Time
	}
	go func() {
		var queue []held
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for {
			if len(queue) > 0 {
				timer.Reset(time.Until(queue[0].due))
			}
			select {
			case <-ctx.Done():
				return
			case m := <-in:
				if len(queue) > 0 || d.hold(m) {
					queue = append(queue, held{m, time.Now().Add(d.delay)})
					continue
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			case <-timer.C:
				for len(queue) > 0 && !time.Now().Before(queue[0].due) {
					select {
					case out <- queue[0].m:
					case <-ctx.Done():
						return
					}
					d.mu.Lock()
					if d.first.IsZero() {
						d.first = time.Now()
						close(d.releasedLocked())
					}
					d.mu.Unlock()
					queue = queue[1:]
				}
			}
		}
	}()
	return out, errs
}

// firstRelease waits until the first held event was passed on and returns
// when, failing t after timeout.
func (d *delayEngine) firstRelease(t testing.TB, timeout time.Duration) time.Time {
	t.Helper()
	d.mu.Lock()
	released := d.releasedLocked()
	d.mu.Unlock()
	select {
	case <-released:
	case <-time.After(timeout):
		t.Fatalf("no held event passed on after %s", timeout)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.first
}

// harness is a Watcher running against an engine, with its published
// snapshots and its log.
type harness struct {
	w    *Watcher
	rec  *recorder
	logs *testutil.LogBuffer
	// stop cancels Run's context and waits for Run to return, failing the
	// test after 10s; it is called again, harmlessly, when the test ends.
	stop func()
}

// startWatcher runs a Watcher of network on engine until t ends and waits
// for its first complete sync: the first set a Watcher publishes is the
// complete list, published after it subscribed to events.
func startWatcher(t testing.TB, engine Engine, cfg Config) *harness {
	t.Helper()
	h := runWatcher(t, engine, cfg)
	h.rec.wait(t, 20*time.Second, "the first sync is published", func(snapshot) bool { return true })
	return h
}

// runWatcher runs a Watcher of network on engine until t ends, logging at
// debug level into the harness.
func runWatcher(t testing.TB, engine Engine, cfg Config) *harness {
	t.Helper()
	h := &harness{rec: newRecorder(), logs: &testutil.LogBuffer{}}
	cfg.Log = zerolog.New(h.logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	h.w = New(engine, cfg, h.rec.publish)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.w.Run(ctx)
	}()
	h.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Watcher.Run did not return 10s after its context was cancelled")
		}
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("watcher log:\n%s", h.logs.String())
		}
	})
	return h
}

// enabled returns the labels of a balanced container, plus extra ones as
// key=value pairs.
func enabled(port string, extra ...string) map[string]string {
	l := map[string]string{"lb.enable": "true", "lb.port": port}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		l[k] = v
	}
	return l
}

// TestwebPort is the port of internal/testweb in its image.
const TestwebPort = "8080"

// testwebImage returns a FROM scratch image of internal/testweb, built once
// per test process and removed by dockertest.Main.
func testwebImage(t testing.TB, cli *client.Client) string {
	t.Helper()
	return dockertest.BuildImage(t, cli, "internal/testweb", dockertest.ImageOptions{Expose: []string{TestwebPort + "/tcp"}})
}

// answer is testweb's answer.
type answer struct {
	Server    string
	Received  int64
	Listening int64
}
