package discovery

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/wharflb/wharf/internal/clock"
	"github.com/wharflb/wharf/internal/testutil"
)

// The tests of this file drive the Watcher's state machine on a scripted
// engine and a fake clock: events, engine states and time are the test's,
// every wait is on a signal (a publish, a log line, a call to the engine,
// a timer being armed) and the exact sequence of published sets is
// checked. The lifecycle and fault tests check the same behaviour end to
// end on the real engine.

// The Watcher's settings in these tests.
const (
	machineProbeInterval = 10 * time.Millisecond
	machineProbeTimeout  = 30 * time.Second
	machineKillHold      = time.Minute
	machineBackoffMin    = 100 * time.Millisecond
	machineBackoffMax    = 800 * time.Millisecond

	// machineWait bounds every wait for a signal, so that a broken
	// Watcher fails the test instead of hanging it; a passing run never
	// comes near it.
	machineWait = 10 * time.Second

	// barrierPrefix names the containers barrier starts.
	barrierPrefix = "barrier"
)

// machine is a Watcher of network "web" on a scripted engine with a fake
// clock.
type machine struct {
	*harness
	t        *testing.T
	e        *scriptedEngine
	clk      *clock.Fake
	base     int // index of the first snapshot of history
	barriers int
}

// startMachine runs a Watcher on e until t ends and waits until it
// published exactly the containers ready (sorted); history starts there.
func startMachine(t *testing.T, e *scriptedEngine, ready ...string) *machine {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	h := runWatcher(t, e, Config{
		Network: "web", Clock: clk, Dial: e.Dial,
		ProbeInterval: machineProbeInterval, ProbeTimeout: machineProbeTimeout, KillHold: machineKillHold,
		BackoffMin: machineBackoffMin, BackoffMax: machineBackoffMax,
	})
	m := &machine{harness: h, t: t, e: e, clk: clk}
	m.base = m.want(ready...)
	return m
}

// members returns the IDs in s, but for the barrier containers.
func members(s snapshot) []string {
	var ids []string
	for _, b := range s.set {
		if !strings.HasPrefix(b.ID, barrierPrefix) {
			ids = append(ids, b.ID)
		}
	}
	return ids
}

// want waits until the latest published set is exactly ids (sorted) and
// returns its index.
func (m *machine) want(ids ...string) int {
	m.t.Helper()
	_, i := m.rec.wait(m.t, machineWait, fmt.Sprintf("the set is %q", ids),
		func(s snapshot) bool { return slices.Equal(members(s), ids) })
	return i
}

// send streams a container event of id, with attrs ("signal=15").
func (m *machine) send(id, action string, attrs ...string) {
	m.t.Helper()
	m.e.send(m.t, m.e.event(id, action, attrs...))
}

// sendNet streams a network event of container id on network net.
func (m *machine) sendNet(id, action, net string) {
	m.t.Helper()
	m.e.send(m.t, networkEvent(id, action, net))
}

// armed waits until exactly n timers of the fake clock are armed.
func (m *machine) armed(n int) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), machineWait)
	defer cancel()
	if err := m.clk.BlockUntil(ctx, n); err != nil {
		m.t.Fatal(err)
	}
}

// advance moves the fake clock by d and fails the test unless exactly
// fired timers fired.
func (m *machine) advance(d time.Duration, fired int, why string) {
	m.t.Helper()
	if n := m.clk.Advance(d); n != fired {
		m.t.Fatalf("advancing %v fired %d timers, want %d: %s", d, n, fired, why)
	}
}

// barrier returns once the Watcher has handled every event sent before
// and published what they changed. It starts a container whose
// HEALTHCHECK says healthy, which is routed, without a probe, in the step
// that handles its start, and waits until it is published.
func (m *machine) barrier() {
	m.t.Helper()
	m.barriers++
	id := fmt.Sprintf("%s%d", barrierPrefix, m.barriers)
	m.e.add(id, enabled("80"), "web")
	m.e.set(id, health(container.Healthy))
	m.send(id, "start")
	m.rec.waitIn(m.t, id, true, machineWait)
}

// history returns the sets published from the base snapshot on, each as
// its space-separated IDs, barrier containers left out.
func (m *machine) history() []string {
	var h []string
	for _, s := range m.rec.all()[m.base:] {
		ids := strings.Join(members(s), " ")
		if len(h) == 0 || h[len(h)-1] != ids {
			h = append(h, ids)
		}
	}
	return h
}

// wantHistory waits, with a barrier, for every event sent to take effect
// and checks the sets published from the base snapshot on.
func (m *machine) wantHistory(want ...string) {
	m.t.Helper()
	m.barrier()
	if got := m.history(); !slices.Equal(got, want) {
		m.t.Errorf("published %q, want %q", got, want)
	}
}

// Changes of a scripted container's state.
func running(c *scriptedContainer)   { c.state = container.StateRunning }
func paused(c *scriptedContainer)    { c.state = container.StatePaused }
func refusing(c *scriptedContainer)  { c.accepts = false }
func accepting(c *scriptedContainer) { c.accepts = true }

func exited(code int) func(*scriptedContainer) {
	return func(c *scriptedContainer) { c.state, c.exitCode = container.StateExited, code }
}

func attached(nets ...string) func(*scriptedContainer) {
	return func(c *scriptedContainer) { c.networks = nets }
}

func health(status container.HealthStatus) func(*scriptedContainer) {
	return func(c *scriptedContainer) { c.health = status }
}

// engineWith returns a scripted engine with running containers ids on
// network web, their ports accepting connections.
func engineWith(ids ...string) *scriptedEngine {
	e := newScriptedEngine()
	for _, id := range ids {
		e.add(id, enabled("8080"), "web")
	}
	return e
}

// TestMachineSubscribesBeforeListing: the Watcher subscribes to events
// before it lists, so that nothing that happens in between is lost, and
// routes a listed container once its port answered.
func TestMachineSubscribesBeforeListing(t *testing.T) {
	e := engineWith("a")
	startMachine(t, e, "a")
	var calls []string
	for _, c := range e.callLog() {
		if !strings.HasPrefix(c, "ContainerInspect ") || c == "ContainerInspect a" {
			calls = append(calls, c) // not wharf's own container
		}
	}
	want := []string{"Info", "Events", "NetworkInspect", "ContainerList", "ContainerInspect a", "Dial a"}
	if !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}

// TestMachineDockerSequences plays the event sequences of docker commands,
// as DOCKER-NOTES records them, with the engine's state changing as it
// does: the container is out at the first event that says it stops
// serving, stays out through the rest, and is back only once it runs
// again and its port answers.
func TestMachineDockerSequences(t *testing.T) {
	type step struct {
		change func(*scriptedContainer) // the engine's state before the event
		event  string                   // action, or "net " + action on network web
		attrs  []string
		then   string // the set once the event took effect; "" when unchanged
	}
	ev := func(change func(*scriptedContainer), event, then string, attrs ...string) step {
		return step{change, event, attrs, then}
	}
	gone := func(*scriptedContainer) {}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string
		held  bool // a kill hold still runs at the end: its timer is armed
	}{
		{"docker stop", []step{
			ev(nil, "kill", "b", "signal=15"),
			ev(exited(0), "die", "", "exitCode=0"),
			ev(attached(), "net disconnect", ""),
			ev(nil, "stop", ""),
		}, []string{"a b", "b"}, true},
		{"docker stop, SIGTERM ignored until SIGKILL", []step{
			ev(nil, "kill", "b", "signal=15"),
			ev(nil, "kill", "", "signal=9"),
			ev(exited(137), "die", "", "exitCode=137"),
			ev(attached(), "net disconnect", ""),
			ev(nil, "stop", ""),
		}, []string{"a b", "b"}, true},
		{"docker kill", []step{
			ev(nil, "kill", "b", "signal=9"),
			ev(exited(137), "die", "", "exitCode=137"),
			ev(attached(), "net disconnect", ""),
		}, []string{"a b", "b"}, true},
		{"docker rm -f", []step{
			ev(nil, "kill", "b", "signal=9"),
			ev(exited(137), "die", "", "exitCode=137"),
			ev(attached(), "net disconnect", ""),
			ev(gone, "destroy", ""),
		}, []string{"a b", "b"}, false},
		{"removed, its earlier events lost", []step{
			ev(gone, "destroy", "b"),
		}, []string{"a b", "b"}, false},
		{"docker restart", []step{
			ev(nil, "kill", "b", "signal=15"),
			ev(exited(0), "die", "", "exitCode=0"),
			ev(attached(), "net disconnect", ""),
			ev(nil, "stop", ""),
			ev(attached("web"), "net connect", ""),
			ev(running, "start", "a b"),
			ev(nil, "restart", ""),
		}, []string{"a b", "b", "a b"}, false},
		{"docker pause, docker unpause", []step{
			ev(paused, "pause", "b"),
			ev(running, "unpause", "a b"),
		}, []string{"a b", "b", "a b"}, false},
		{"docker stop of a paused container: unpaused to handle SIGTERM, stays out", []step{
			ev(paused, "pause", "b"),
			ev(nil, "kill", "", "signal=15"),
			ev(running, "unpause", ""),
			ev(exited(0), "die", "", "exitCode=0"),
			ev(attached(), "net disconnect", ""),
			ev(nil, "stop", ""),
		}, []string{"a b", "b"}, true},
		{"crash, restarted by its restart policy", []step{
			ev(exited(2), "die", "b", "exitCode=2"),
			ev(running, "start", "a b"),
		}, []string{"a b", "b", "a b"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := engineWith("a", "b")
			m := startMachine(t, e, "a", "b")
			for _, s := range tc.steps {
				if s.change != nil {
					if s.event == "destroy" {
						e.remove("a")
					} else {
						e.set("a", s.change)
					}
				}
				if action, ok := strings.CutPrefix(s.event, "net "); ok {
					m.sendNet("a", action, "web")
				} else {
					m.send("a", s.event, s.attrs...)
				}
				if s.then != "" {
					m.want(strings.Fields(s.then)...)
				}
			}
			m.wantHistory(tc.want...)
			if tc.held {
				m.armed(1)
			} else {
				m.armed(0)
			}
		})
	}
}

// TestMachineKillHold: a terminating signal takes a container out at
// once; while it keeps running it stays out until KillHold has passed on
// the Watcher's clock, and a new start (a new process) ends the hold.
// Signals that do not end a process take nothing out.
func TestMachineKillHold(t *testing.T) {
	t.Run("SIGTERM ignored: back when the hold ends", func(t *testing.T) {
		e := engineWith("a", "b")
		m := startMachine(t, e, "a", "b")
		m.send("a", "kill", "signal=15")
		m.want("b")
		m.armed(1)
		m.advance(machineKillHold-time.Nanosecond, 0, "the hold ended early")
		dials := e.dialed("a")
		m.advance(time.Nanosecond, 1, "the hold did not end on time")
		m.want("a", "b")
		if n := e.dialed("a"); n != dials+1 {
			t.Errorf("%d probe dials after the hold, want 1", n-dials)
		}
		m.armed(0)
		m.wantHistory("a b", "b", "a b")
	})
	t.Run("SIGTERM then die: out for good", func(t *testing.T) {
		e := engineWith("a", "b")
		m := startMachine(t, e, "a", "b")
		m.send("a", "kill", "signal=15")
		m.want("b")
		e.set("a", exited(143))
		m.send("a", "die", "exitCode=143")
		m.armed(1)
		m.advance(machineKillHold, 1, "the hold did not end on time")
		// At the hold's end the Watcher looks at the container again.
		e.waitFor(t, "a second inspection of a", func() bool {
			n := 0
			for _, c := range e.calls {
				if c == "ContainerInspect a" {
					n++
				}
			}
			return n == 2
		})
		m.wantHistory("a b", "b")
		m.armed(0)
	})
	t.Run("unpaused during the hold: stays out", func(t *testing.T) {
		e := engineWith("a", "b")
		m := startMachine(t, e, "a", "b")
		e.set("a", paused)
		m.send("a", "pause")
		m.want("b")
		m.send("a", "kill", "signal=15")
		e.set("a", running)
		m.send("a", "unpause")
		m.wantHistory("a b", "b")
		m.armed(1)
	})
	t.Run("started again during the hold: the hold ends", func(t *testing.T) {
		e := engineWith("a", "b")
		m := startMachine(t, e, "a", "b")
		m.send("a", "kill", "signal=15")
		m.want("b")
		e.set("a", exited(0))
		m.send("a", "die", "exitCode=0")
		e.set("a", running)
		m.send("a", "start")
		m.want("a", "b")
		m.armed(0)
		m.wantHistory("a b", "b", "a b")
	})
	t.Run("two holds end in turn", func(t *testing.T) {
		e := engineWith("a", "b", "c")
		m := startMachine(t, e, "a", "b", "c")
		m.send("a", "kill", "signal=15")
		m.want("b", "c")
		m.armed(1)
		m.advance(machineKillHold/2, 0, "a's hold ended early")
		m.send("b", "kill", "signal=TERM")
		m.want("c")
		m.armed(1)
		m.advance(machineKillHold/2, 1, "a's hold did not end on time")
		m.want("a", "c")
		m.armed(1)
		m.advance(machineKillHold/2-time.Nanosecond, 0, "b's hold ended early")
		m.advance(time.Nanosecond, 1, "b's hold did not end on time")
		m.want("a", "b", "c")
		m.wantHistory("a b c", "b c", "c", "a c", "a b c")
	})
	t.Run("non-terminating signals", func(t *testing.T) {
		e := engineWith("a", "b")
		m := startMachine(t, e, "a", "b")
		for _, sig := range []string{"1", "HUP", "SIGHUP", "10", "USR1", "SIGUSR2", "WINCH", "28", "CONT"} {
			m.send("a", "kill", "signal="+sig)
		}
		m.wantHistory("a b")
		m.armed(0)
	})
}

// TestMachineProbe: a container without a HEALTHCHECK is routed only once
// its port accepts a connection, probed every ProbeInterval for at most
// ProbeTimeout on the Watcher's clock.
func TestMachineProbe(t *testing.T) {
	t.Run("routed once its port accepts", func(t *testing.T) {
		e := engineWith()
		m := startMachine(t, e)
		e.add("a", enabled("8080"), "web")
		e.set("a", refusing)
		m.send("a", "start")
		e.waitDialed(t, "a", 1)
		m.advance(machineProbeInterval-time.Nanosecond, 0, "probed again early")
		m.advance(time.Nanosecond, 1, "not probed again on time")
		e.waitDialed(t, "a", 2)
		e.set("a", accepting)
		m.advance(machineProbeInterval, 1, "not probed again on time")
		m.want("a")
		if n := e.dialed("a"); n != 3 {
			t.Errorf("%d dials, want 3", n)
		}
		m.armed(0)
		m.wantHistory("", "a")
	})
	t.Run("never accepts: not routed, warned, probed again at its next start", func(t *testing.T) {
		e := engineWith()
		m := startMachine(t, e)
		e.add("a", enabled("8080"), "web")
		e.set("a", refusing)
		m.send("a", "start")
		e.waitDialed(t, "a", 1)
		m.advance(machineProbeTimeout, 2, "the probe's deadline and retry")
		warns := m.logs.Wait(t, 1, machineWait, "warn", "port never accepted")
		if w := warns[0].Raw; !strings.Contains(w, `"container":"a"`) || !strings.Contains(w, "192.0.2.1:8080") ||
			!strings.Contains(w, "within 30s") {
			t.Errorf("warning %s: want the container, its address and the timeout", w)
		}
		m.armed(0)
		e.set("a", accepting)
		m.send("a", "restart")
		m.want("a")
		m.wantHistory("", "a")
		if n := len(m.logs.Lines("warn")); n != 1 {
			t.Errorf("%d warnings, want 1", n)
		}
	})
	t.Run("paused and unpaused while probed: the new probe routes it", func(t *testing.T) {
		e := engineWith()
		m := startMachine(t, e)
		e.add("a", enabled("8080"), "web")
		e.set("a", refusing)
		m.send("a", "start")
		e.set("a", paused)
		m.send("a", "pause")
		e.set("a", running)
		e.set("a", accepting)
		m.send("a", "unpause")
		m.want("a")
		m.wantHistory("", "a")
	})
	t.Run("stopped while probed: the probe ends", func(t *testing.T) {
		e := engineWith()
		m := startMachine(t, e)
		e.add("a", enabled("8080"), "web")
		e.set("a", refusing)
		m.send("a", "start")
		e.waitDialed(t, "a", 1)
		e.set("a", exited(0))
		m.send("a", "die", "exitCode=0")
		m.armed(0)
		m.advance(machineProbeTimeout, 0, "a timer of the ended probe")
		m.wantHistory("")
		if n := e.dialed("a"); n != 1 {
			t.Errorf("%d dials, want 1", n)
		}
	})
}

// TestMachineRunEndsItsProbes: when Run returns, the probes it started
// have ended too; none is left dialling or holding a timer.
func TestMachineRunEndsItsProbes(t *testing.T) {
	e := engineWith()
	m := startMachine(t, e)
	e.add("a", enabled("8080"), "web")
	e.set("a", refusing)
	m.send("a", "start")
	e.waitDialed(t, "a", 1)
	m.armed(2)
	m.stop()
	now, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.clk.BlockUntil(now, 0); err != nil {
		t.Errorf("Run returned with a probe's timers armed: %v", err)
	}
}

// TestMachineHealth: a container with a HEALTHCHECK is routed at healthy,
// at once and without a probe, and out at unhealthy.
func TestMachineHealth(t *testing.T) {
	e := engineWith()
	m := startMachine(t, e)
	e.add("h", enabled("8080"), "web")
	e.set("h", health(container.Starting))
	m.send("h", "start")
	for _, s := range []struct {
		status container.HealthStatus
		then   []string
	}{
		{container.Healthy, []string{"h"}},
		{container.Unhealthy, nil},
		{container.Healthy, []string{"h"}},
	} {
		e.set("h", health(s.status))
		m.send("h", "health_status: "+s.status)
		m.want(s.then...)
	}
	m.wantHistory("", "h", "", "h")
	if n := e.dialed("h"); n != 0 {
		t.Errorf("%d probe dials to a container with a HEALTHCHECK, want none", n)
	}
}

// TestMachineNetwork: a disconnect from the network takes a container out
// and a connect brings it back, each also when the engine sends it twice;
// other networks' events change nothing, and a labelled container on
// another network joins when connected to this one.
func TestMachineNetwork(t *testing.T) {
	e := engineWith("a")
	e.add("x", enabled("8080"), "other")
	m := startMachine(t, e, "a")
	e.set("a", attached())
	m.sendNet("a", "disconnect", "web")
	m.want()
	m.sendNet("a", "disconnect", "web")
	e.set("a", attached("web"))
	m.sendNet("a", "connect", "web")
	m.want("a")
	m.sendNet("a", "connect", "web")

	e.set("a", attached("web", "other"))
	m.sendNet("a", "connect", "other")
	e.set("a", attached("web"))
	m.sendNet("a", "disconnect", "other")

	e.set("x", attached("other", "web"))
	m.sendNet("x", "connect", "web")
	m.want("a", "x")
	m.wantHistory("a", "", "a", "a x")
	if n := e.dialed("a"); n != 2 {
		t.Errorf("a dialled %d times, want 2: at the first sync and at its first connect", n)
	}
}

// TestMachineBadLabelWarnedOnce: a container with a bad label is never
// routed and warned about once, whatever events follow.
func TestMachineBadLabelWarnedOnce(t *testing.T) {
	e := engineWith("a")
	m := startMachine(t, e, "a")
	e.add("bad", enabled("8080", "lb.weight=abc"), "web")
	for _, action := range []string{"start", "pause", "unpause", "restart", "health_status: healthy"} {
		m.send("bad", action)
	}
	m.wantHistory("a")
	if warns := m.logs.Lines("warn"); len(warns) != 1 || !strings.Contains(warns[0].Raw, `"container":"bad"`) {
		t.Errorf("warnings, want one naming bad:\n%s", testutil.Raws(warns))
	}
}

// TestMachineStreamCut: when the events stream breaks the Watcher keeps
// the last set, reconnects with capped exponential backoff on its clock,
// and resyncs: what went while it was away is dropped, what did not change
// does not flap, and the outage and the recovery are logged once each.
func TestMachineStreamCut(t *testing.T) {
	cut := fmt.Errorf("read: %w", io.ErrUnexpectedEOF)
	t.Run("reconnected at once: nothing flaps", func(t *testing.T) {
		e := engineWith("a", "b", "c")
		m := startMachine(t, e, "a", "b", "c")
		e.cut(t, cut)
		m.logs.Wait(t, 1, machineWait, "error", "events stream")
		m.armed(1)
		m.advance(machineBackoffMin, 1, "the first retry")
		m.logs.Wait(t, 1, machineWait, "info", "reconnected")
		m.wantHistory("a b c")
		if n := m.w.Resyncs(); n != 2 {
			t.Errorf("%d resyncs, want 2", n)
		}
		if errs := m.logs.Lines("error"); len(errs) != 1 {
			t.Errorf("%d error lines, want 1:\n%s", len(errs), testutil.Raws(errs))
		}
	})
	t.Run("engine away: backoff to the cap, resync to what changed", func(t *testing.T) {
		e := engineWith("a", "b", "c")
		m := startMachine(t, e, "a", "b", "c")
		e.setDown(&net.OpError{Op: "dial", Net: "unix", Err: syscall.ECONNREFUSED})
		e.cut(t, cut)
		m.logs.Wait(t, 1, machineWait, "error", "events stream")
		e.remove("b")
		e.set("c", paused)
		e.add("d", enabled("8080"), "web")

		delays := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
			machineBackoffMax, machineBackoffMax}
		var outage time.Duration
		for i, d := range delays {
			m.armed(1)
			if i == len(delays)-1 {
				e.setDown(nil)
			}
			// The wait is jittered between half the delay and the delay.
			m.advance(d/2-time.Nanosecond, 0, fmt.Sprintf("retry %d before half its delay %v", i+1, d))
			m.advance(d/2+time.Nanosecond, 1, fmt.Sprintf("no retry %d within its delay %v", i+1, d))
			outage += d
		}
		m.want("a", "d")
		m.wantHistory("a b c", "a", "a d")

		var logged []time.Duration
		for _, l := range m.logs.Lines("debug", "engine still unreachable") {
			ms, _ := l.Fields["retry_in"].(float64)
			logged = append(logged, time.Duration(ms*float64(time.Millisecond)))
		}
		if want := delays[1:]; !slices.Equal(logged, want) {
			t.Errorf("retries logged with delays %v, want %v", logged, want)
		}
		if errs := m.logs.Lines("error"); len(errs) != 1 {
			t.Errorf("%d error lines, want 1:\n%s", len(errs), testutil.Raws(errs))
		}
		rec := m.logs.Lines("info", "reconnected")
		if len(rec) != 1 {
			t.Fatalf("%d recovery lines, want 1:\n%s", len(rec), testutil.Raws(rec))
		}
		if ms, _ := rec[0].Fields["outage"].(float64); time.Duration(ms*float64(time.Millisecond)) != outage {
			t.Errorf("outage logged as %vms, want %v", ms, outage)
		}
		if warns := m.logs.Lines("warn"); len(warns) != 0 {
			t.Errorf("warnings during an outage:\n%s", testutil.Raws(warns))
		}
	})
	t.Run("cut while probing: probed again after the resync", func(t *testing.T) {
		e := engineWith("a")
		m := startMachine(t, e, "a")
		e.add("d", enabled("8080"), "web")
		e.set("d", refusing)
		m.send("d", "start")
		e.waitDialed(t, "d", 1)
		e.cut(t, cut)
		m.logs.Wait(t, 1, machineWait, "error", "events stream")
		m.armed(1) // the backoff alone: the probe ended with its session
		e.set("d", accepting)
		m.advance(machineBackoffMin, 1, "the first retry")
		m.want("a", "d")
		m.wantHistory("a", "a d")
	})
}

// TestMachineAddressClash: an engine restarted with live-restore has given
// a new container the address a running one still held. Neither is routed
// while both claim it, one warning names both, and the one left is routed
// once the other lets go of the address.
func TestMachineAddressClash(t *testing.T) {
	sameAddress := func(e *scriptedEngine, as string) func(*scriptedContainer) {
		return func(c *scriptedContainer) { c.ip = e.containers[as].ip }
	}
	t.Run("a new container given a running one's address", func(t *testing.T) {
		e := engineWith("a", "b")
		m := startMachine(t, e, "a", "b")
		e.add("c", enabled("8080"), "web")
		e.set("c", sameAddress(e, "a"))
		m.send("c", "start")
		m.want("b")
		// More events of both change nothing and warn no more.
		m.send("c", "unpause")
		m.send("a", "unpause")
		m.barrier()
		e.set("a", exited(0))
		m.send("a", "die", "exitCode=0")
		m.want("b", "c")
		m.wantHistory("a b", "b", "b c")
		if warns := m.logs.Lines("warn"); len(warns) != 1 || !strings.Contains(warns[0].Raw, `"containers":["a","c"]`) {
			t.Errorf("warnings, want one naming a and c:\n%s", testutil.Raws(warns))
		}
		if ends := m.logs.Lines("info", "claimed by one container again"); len(ends) != 1 {
			t.Errorf("%d lines about the clash ending, want 1", len(ends))
		}
	})
	t.Run("both listed at the start: neither routed until one is removed", func(t *testing.T) {
		e := engineWith("a", "b", "c")
		e.set("c", sameAddress(e, "a"))
		m := startMachine(t, e, "b")
		m.barrier() // a and c claim the address, probed or routed: both out
		e.remove("c")
		m.send("c", "destroy")
		m.want("a", "b")
		m.wantHistory("b", "a b")
		if warns := m.logs.Lines("warn", `"containers":["a","c"]`); len(warns) != 1 {
			t.Errorf("%d warnings naming a and c, want 1:\n%s", len(warns), m.logs.String())
		}
	})
}
