package discovery

import (
	"encoding/json"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/client"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/testutil"
)

// Bounds of the lifecycle tests. They are generous on purpose: the tests
// assert the order of things, and the measured latencies are reported by
// TestDiscoveryLatency.
const (
	routeTimeout = 20 * time.Second // a container starting and being routed
	actBound     = time.Second      // from an event to the Watcher acting on it
	holdBack     = 600 * time.Millisecond
)

// get asks a testweb container directly, from the host.
func get(t testing.TB, addr string) answer {
	t.Helper()
	res, err := dockertest.HTTPClient.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	defer res.Body.Close()
	var a answer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	return a
}

// TestLifecycle drives one testweb container through each way of leaving
// and rejoining the balanced set, on the real engine, and checks the
// sequence of sets the Watcher published: the container is out at the
// first event of the sequence (kill, not die; pause; disconnect), stays
// out while the rest of the sequence happens, and is back only after it
// started again and its port accepts connections.
//
// To prove which event took the container out, the Watcher's engine holds
// back the later events of the sequence (die, stop, destroy, disconnect
// after a kill) for a while: the container must be out before the first of
// them reaches the Watcher.
func TestLifecycle(t *testing.T) {
	cli := dockertest.Require(t)
	img := testwebImage(t, cli)
	type step func(t *testing.T, c *dockertest.Container, net string)
	for _, tc := range []struct {
		name  string
		cmd   []string
		first string   // the event that must take the container out
		held  []string // the events after it, held back from the Watcher
		out   step
		back  string // the event after which it is back ("" = never)
		again step
		want  string // membership sequence from the first routed set
	}{
		{
			name: "stop then start", cmd: []string{"--on-term", "drain", "--drain", "1s"},
			first: "kill", held: []string{"die", "disconnect", "stop"},
			out:  func(t *testing.T, c *dockertest.Container, _ string) { c.Stop(10 * time.Second) },
			back: "start", again: func(t *testing.T, c *dockertest.Container, _ string) { c.Start() },
			want: "in,out,in",
		},
		{
			name: "kill then start", first: "kill", held: []string{"die", "disconnect"},
			out:  func(t *testing.T, c *dockertest.Container, _ string) { c.Kill("KILL") },
			back: "start", again: func(t *testing.T, c *dockertest.Container, _ string) { c.Start() },
			want: "in,out,in",
		},
		{
			name: "restart", cmd: []string{"--on-term", "drain", "--drain", "1s"},
			first: "kill", held: []string{"die", "disconnect", "stop"},
			out:  func(t *testing.T, c *dockertest.Container, _ string) { c.Restart(10 * time.Second) },
			back: "start",
			want: "in,out,in",
		},
		{
			name: "rm -f", first: "kill", held: []string{"die", "disconnect", "destroy"},
			out:  func(t *testing.T, c *dockertest.Container, _ string) { c.Remove() },
			want: "in,out",
		},
		{
			name: "pause then unpause", first: "pause",
			out:  func(t *testing.T, c *dockertest.Container, _ string) { c.Pause() },
			back: "unpause", again: func(t *testing.T, c *dockertest.Container, _ string) { c.Unpause() },
			want: "in,out,in",
		},
		{
			name: "disconnect then connect", first: "disconnect",
			out:  func(t *testing.T, c *dockertest.Container, net string) { c.Disconnect(net) },
			back: "connect", again: func(t *testing.T, c *dockertest.Container, net string) { c.Connect(net) },
			want: "in,out,in",
		},
		{
			// docker stop of a paused container sends SIGTERM, then
			// unpauses it so that it can handle the signal: the unpause
			// must not bring back a container that is shutting down.
			name: "stop while paused", cmd: []string{"--on-term", "drain", "--drain", "1s"},
			first: "pause", held: []string{"die", "disconnect", "stop"},
			out: func(t *testing.T, c *dockertest.Container, _ string) {
				c.Pause()
				c.Stop(10 * time.Second)
			},
			want: "in,out",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			net := dockertest.Network(t, cli, "lc")
			evs := watchEvents(t, cli)
			var target atomic.Value // the container's ID
			target.Store("")
			de := &delayEngine{Engine: cli, delay: holdBack, hold: func(m events.Message) bool {
				return about(m, target.Load().(string)) && slices.Contains(tc.held, string(m.Action))
			}}
			h := startWatcher(t, de, Config{Network: net})
			c := dockertest.Run(t, cli, dockertest.ContainerOptions{
				Image: img, Network: net, Labels: enabled(TestwebPort),
				Cmd: append([]string{"--listen-after", "300ms"}, tc.cmd...),
			})
			target.Store(c.ID)
			_, i0 := h.rec.waitIn(t, c.ID, true, routeTimeout)
			addr := c.Addr(net, TestwebPort)
			if in, a := h.rec.all()[i0].at, get(t, addr); in.Before(time.Unix(0, a.Listening)) {
				t.Errorf("routed at %s, before its port accepted connections at %s",
					in.Format("15:04:05.000000"), time.Unix(0, a.Listening).Format("15:04:05.000000"))
			}

			tc.out(t, c, net)
			first := evs.wait(t, c.ID, tc.first, routeTimeout)
			out, _ := h.rec.waitIn(t, c.ID, false, routeTimeout)
			lag := out.at.Sub(evTime(first))
			if lag < 0 || lag > actBound {
				t.Errorf("out %v after the %s event, want within [0, %v]", lag, tc.first, actBound)
			}
			if len(tc.held) > 0 {
				// The held-back events reach the Watcher holdBack after
				// they happened; the container was out before.
				evs.wait(t, c.ID, tc.held[0], routeTimeout)
				if rel := de.firstRelease(t, routeTimeout); !out.at.Before(rel) {
					t.Errorf("out at %s, not before the first %s event reached the Watcher at %s: it waited for a later event",
						out.at.Format("15:04:05.000000"), tc.held[0], rel.Format("15:04:05.000000"))
				}
			}
			if die := evs.all(c.ID, "die"); len(die) > 0 && tc.first != "kill" && !out.at.Before(evTime(die[0])) {
				t.Errorf("out only at die")
			}

			if tc.again != nil {
				tc.again(t, c, net)
			}
			if tc.back != "" {
				back := evs.wait(t, c.ID, tc.back, routeTimeout)
				in, _ := h.rec.waitIn(t, c.ID, true, routeTimeout)
				if in.at.Before(evTime(back)) {
					t.Errorf("back in at %s, before the %s event at %s", in.at.Format("15:04:05.000000"),
						tc.back, evTime(back).Format("15:04:05.000000"))
				}
				addr := c.Addr(net, TestwebPort)
				if a := get(t, addr); in.at.Before(time.Unix(0, a.Listening)) {
					t.Errorf("back in at %s, before its port accepted connections at %s",
						in.at.Format("15:04:05.000000"), time.Unix(0, a.Listening).Format("15:04:05.000000"))
				}
			} else {
				// Wait for the sequence to end: its last event is held
				// back, and whatever the Watcher does with it is published
				// before the next event is handled.
				last := tc.held[len(tc.held)-1]
				evs.wait(t, c.ID, last, routeTimeout)
				sentinel(t, cli, h, net, img)
			}
			if got := seq(h.rec.transitions(c.ID, i0)); got != tc.want {
				t.Errorf("membership %s, want %s; snapshots:\n%s", got, tc.want, h.rec.dump())
			}
		})
	}
}

// sentinel starts a labelled container on net and waits until the Watcher
// routes it: every event before its start has been handled by then.
func sentinel(t *testing.T, cli *client.Client, h *harness, net, img string) {
	t.Helper()
	s := dockertest.Run(t, cli, dockertest.ContainerOptions{
		Image: img, Network: net, Labels: enabled(TestwebPort), Name: dockertest.UniqueName("sentinel"),
	})
	h.rec.waitIn(t, s.ID, true, routeTimeout)
}

// TestRoutedOnlyOnceListening starts a container whose process opens its
// port late: the Watcher routes it only once the port accepts connections.
func TestRoutedOnlyOnceListening(t *testing.T) {
	cli := dockertest.Require(t)
	t.Parallel()
	img := testwebImage(t, cli)
	net := dockertest.Network(t, cli, "late")
	h := startWatcher(t, cli, Config{Network: net})
	evs := watchEvents(t, cli)
	const after = 1500 * time.Millisecond
	c := dockertest.Run(t, cli, dockertest.ContainerOptions{
		Image: img, Network: net, Labels: enabled(TestwebPort), Cmd: []string{"--listen-after", after.String()},
	})
	start := evs.wait(t, c.ID, "start", routeTimeout)
	in, _ := h.rec.waitIn(t, c.ID, true, routeTimeout)
	listening := time.Unix(0, get(t, c.Addr(net, TestwebPort)).Listening)
	t.Logf("start event %s, port open %s (+%v), routed %s (+%v after the port opened)",
		evTime(start).Format("15:04:05.000"), listening.Format("15:04:05.000"),
		listening.Sub(evTime(start)).Round(time.Millisecond), in.at.Format("15:04:05.000"),
		in.at.Sub(listening).Round(time.Microsecond))
	if in.at.Before(listening) {
		t.Fatalf("routed before its port accepted connections")
	}
	if d := in.at.Sub(listening); d > actBound {
		t.Errorf("routed %v after the port opened, want within %v", d, actBound)
	}
	if got := seq(h.rec.transitions(c.ID, 0)); got != "out,in" {
		t.Errorf("membership %s, want out,in", got)
	}
}

// TestHealthcheck: a container with a HEALTHCHECK is routed at healthy
// (not when it starts), out at unhealthy, back at healthy.
func TestHealthcheck(t *testing.T) {
	cli := dockertest.Require(t)
	t.Parallel()
	img := dockertest.WebtestHealthImage(t, cli)
	net := dockertest.Network(t, cli, "health")
	h := startWatcher(t, cli, Config{Network: net})
	evs := watchEvents(t, cli)
	c := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net, Labels: enabled("6969")})
	healthy := evs.wait(t, c.ID, "health_status: healthy", routeTimeout)
	in, _ := h.rec.waitIn(t, c.ID, true, routeTimeout)
	if in.at.Before(evTime(healthy)) {
		t.Errorf("routed at %s, before healthy at %s", in.at.Format("15:04:05.000000"), evTime(healthy).Format("15:04:05.000000"))
	}
	if d := in.at.Sub(evTime(healthy)); d > actBound {
		t.Errorf("routed %v after healthy, want within %v", d, actBound)
	}

	addr := c.Addr(net, "6969")
	setFail := func(v string) {
		res, err := dockertest.HTTPClient.Post("http://"+addr+"/healthz?fail="+v, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		// It answers with the new state: 503 once failing.
		if want := map[string]int{"1": http.StatusServiceUnavailable, "0": http.StatusOK}[v]; res.StatusCode != want {
			t.Fatalf("POST /healthz?fail=%s: %s", v, res.Status)
		}
	}
	setFail("1")
	unhealthy := evs.wait(t, c.ID, "health_status: unhealthy", routeTimeout)
	out, _ := h.rec.waitIn(t, c.ID, false, routeTimeout)
	if d := out.at.Sub(evTime(unhealthy)); d < 0 || d > actBound {
		t.Errorf("out %v after unhealthy, want within [0, %v]", d, actBound)
	}
	setFail("0")
	h.rec.waitIn(t, c.ID, true, routeTimeout)
	if n := len(evs.all(c.ID, "health_status: healthy")); n != 2 {
		t.Errorf("%d healthy events, want 2", n)
	}
	if got := seq(h.rec.transitions(c.ID, 0)); got != "out,in,out,in" {
		t.Errorf("membership %s, want out,in,out,in; snapshots:\n%s", got, h.rec.dump())
	}
}

// TestBadLabelWarnedOnce: a container with a bad label is skipped with one
// warning naming it, the label and the value, however often it changes
// state; a good neighbour is unaffected.
func TestBadLabelWarnedOnce(t *testing.T) {
	cli := dockertest.Require(t)
	t.Parallel()
	img := testwebImage(t, cli)
	net := dockertest.Network(t, cli, "bad")
	h := startWatcher(t, cli, Config{Network: net})
	good := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net, Labels: enabled(TestwebPort)})
	bad := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net,
		Labels: enabled(TestwebPort, "lb.weight=abc")})
	h.rec.waitIn(t, good.ID, true, routeTimeout)
	bad.Pause()
	bad.Unpause()
	bad.Restart(5 * time.Second)
	sentinel(t, cli, h, net, img)
	for _, s := range h.rec.all() {
		if _, in := s.find(bad.ID); in {
			t.Fatalf("the container with a bad label was routed: %v", s.names())
		}
	}
	warns := h.logs.Lines("warn", bad.Name, "lb.weight", "abc")
	if len(warns) != 1 {
		t.Fatalf("%d warnings naming %s, lb.weight and abc, want 1:\n%s", len(warns), bad.Name, testutil.Raws(warns))
	}
	if all := h.logs.Lines("warn"); len(all) != 1 {
		t.Errorf("%d warnings in all, want 1:\n%s", len(all), testutil.Raws(all))
	}
	if got := seq(h.rec.transitions(good.ID, 0)); got != "out,in" {
		t.Errorf("the good neighbour's membership %s, want out,in", got)
	}
}

// TestKillHold: a terminating signal takes a container out at once. One
// that ignores it and keeps running comes back after KillHold; one stopped
// with docker stop stays out through the grace period until it dies.
func TestKillHold(t *testing.T) {
	cli := dockertest.Require(t)
	img := testwebImage(t, cli)
	for _, tc := range []struct {
		name     string
		killHold time.Duration
		signal   func(c *dockertest.Container)
		want     string
		back     bool
	}{
		{"SIGTERM ignored, back after the hold", time.Second,
			func(c *dockertest.Container) { c.Kill("TERM") }, "in,out,in", true},
		{"docker stop -t 2, out until it dies", 10 * time.Second,
			func(c *dockertest.Container) { c.Stop(2 * time.Second) }, "in,out", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			net := dockertest.Network(t, cli, "hold")
			h := startWatcher(t, cli, Config{Network: net, KillHold: tc.killHold})
			evs := watchEvents(t, cli)
			c := dockertest.Run(t, cli, dockertest.ContainerOptions{
				Image: img, Network: net, Labels: enabled(TestwebPort), Cmd: []string{"--on-term", "ignore"},
			})
			_, i0 := h.rec.waitIn(t, c.ID, true, routeTimeout)
			tc.signal(c)
			kill := evs.wait(t, c.ID, "kill", routeTimeout)
			if sig := kill.Actor.Attributes["signal"]; sig != "15" {
				t.Fatalf("first kill event with signal %s, want 15", sig)
			}
			out, _ := h.rec.waitIn(t, c.ID, false, routeTimeout)
			if d := out.at.Sub(evTime(kill)); d < 0 || d > actBound {
				t.Errorf("out %v after the kill event, want within [0, %v]", d, actBound)
			}
			if tc.back {
				in, _ := h.rec.waitIn(t, c.ID, true, routeTimeout)
				held := in.at.Sub(evTime(kill))
				t.Logf("out %v after SIGTERM, back after %v (KillHold %v)", out.at.Sub(evTime(kill)), held, tc.killHold)
				if held < tc.killHold || held > tc.killHold+actBound {
					t.Errorf("back %v after SIGTERM, want within [%v, %v]", held, tc.killHold, tc.killHold+actBound)
				}
			} else {
				die := evs.wait(t, c.ID, "die", routeTimeout)
				if d := evTime(die).Sub(evTime(kill)); d < 2*time.Second {
					t.Errorf("died %v after SIGTERM; the test needs a container that ignores it", d)
				}
				if kills := evs.all(c.ID, "kill"); len(kills) != 2 || kills[1].Actor.Attributes["signal"] != "9" {
					t.Errorf("kill events %v, want SIGTERM then SIGKILL", kills)
				}
				evs.wait(t, c.ID, "stop", routeTimeout)
				sentinel(t, cli, h, net, img)
			}
			if got := seq(h.rec.transitions(c.ID, i0)); got != tc.want {
				t.Errorf("membership %s, want %s; snapshots:\n%s", got, tc.want, h.rec.dump())
			}
		})
	}
}

// TestJoinsWhenConnected: a labelled container running on another network
// is not a backend until it is connected to the network, and is one as
// soon as it is (once its port accepts connections).
func TestJoinsWhenConnected(t *testing.T) {
	cli := dockertest.Require(t)
	t.Parallel()
	img := testwebImage(t, cli)
	net := dockertest.Network(t, cli, "join")
	other := dockertest.Network(t, cli, "joinother")
	h := startWatcher(t, cli, Config{Network: net})
	evs := watchEvents(t, cli)
	c := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: other, Labels: enabled(TestwebPort)})
	evs.wait(t, c.ID, "start", routeTimeout)
	c.Pause()
	c.Unpause()
	c.Connect(net)
	in, _ := h.rec.waitIn(t, c.ID, true, routeTimeout)
	if want := c.Addr(net, TestwebPort); in.set[0].Addr != want {
		t.Errorf("address %s, want %s (its address on %s)", in.set[0].Addr, want, net)
	}
	c.Disconnect(net)
	h.rec.waitIn(t, c.ID, false, routeTimeout)
	if got := seq(h.rec.transitions(c.ID, 0)); got != "out,in,out" {
		t.Errorf("membership %s, want out,in,out", got)
	}
}
