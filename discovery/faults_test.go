package discovery

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/faultproxy"
	"github.com/wharflb/wharf/internal/testutil"
)

// Backoff of the Watchers under engine faults: short, so that the tests
// see it reach its cap.
const (
	faultBackoffMin = 50 * time.Millisecond
	faultBackoffMax = 400 * time.Millisecond
)

// proxiedEngine returns a proxy in front of the real engine and a client
// that reaches the engine through it.
func proxiedEngine(t *testing.T) (*faultproxy.Proxy, *client.Client) {
	t.Helper()
	p := faultproxy.Start(t)
	cli, err := client.NewClientWithOpts(client.WithHost(p.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return p, cli
}

// TestStreamFaults breaks the events stream twice in a row, by cutting the
// connection and by garbling the stream: each time the Watcher keeps the
// last set (no publish, no flap, also for a container that changed just
// before the fault), reconnects, resyncs, and logs the outage once and the
// recovery once. A container with a bad label is warned about once in all.
func TestStreamFaults(t *testing.T) {
	cli := dockertest.Require(t)
	img := testwebImage(t, cli)
	for _, tc := range []struct {
		name  string
		fault func(*faultproxy.Proxy) int
	}{
		{"cut", (*faultproxy.Proxy).Cut},
		{"garble", (*faultproxy.Proxy).Garble},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, pcli := proxiedEngine(t)
			net := dockertest.Network(t, cli, "fault")
			a := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net, Labels: enabled(TestwebPort)})
			bad := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net,
				Labels: enabled(TestwebPort, "lb.weight=abc")})
			h := startWatcher(t, pcli, Config{Network: net, BackoffMin: faultBackoffMin, BackoffMax: faultBackoffMax})
			h.rec.waitIn(t, a.ID, true, routeTimeout)

			const rounds = 2
			for round := 1; round <= rounds; round++ {
				// Something happened just before the fault: events a
				// resubscription could replay.
				// Wait for each to take effect, so that the fault does not
				// meet the pause still on its way (then a is rightly out
				// until its port answers again).
				a.Pause()
				h.rec.waitIn(t, a.ID, false, routeTimeout)
				a.Unpause()
				h.rec.waitIn(t, a.ID, true, routeTimeout)
				n0 := h.rec.count()

				if n := tc.fault(p); n < 1 {
					t.Fatalf("round %d: the fault hit %d connections", round, n)
				}
				h.logs.Wait(t, round, routeTimeout, "info", "reconnected to the Docker engine")
				sentinel(t, cli, h, net, img)
				for i, s := range h.rec.all()[n0:] {
					if _, in := s.find(a.ID); !in {
						t.Errorf("round %d: %s out of the set published %d after the fault (a replayed event?): %v",
							round, a.Name, i, s.names())
					}
				}
			}
			if errs := h.logs.Lines("error"); len(errs) != rounds {
				t.Errorf("%d error lines, want %d (one per outage):\n%s", len(errs), rounds, testutil.Raws(errs))
			} else {
				for _, l := range errs {
					if !strings.Contains(l.Message, "events stream") {
						t.Errorf("outage logged as %q, want the events stream named", l.Message)
					}
				}
			}
			if rec := h.logs.Lines("info", "reconnected"); len(rec) != rounds {
				t.Errorf("%d recovery lines, want %d:\n%s", len(rec), rounds, testutil.Raws(rec))
			}
			if warns := h.logs.Lines("warn"); len(warns) != 1 || !strings.Contains(warns[0].Raw, bad.Name) {
				t.Errorf("warnings, want one naming %s:\n%s", bad.Name, testutil.Raws(warns))
			}
		})
	}
}

// TestEngineOutage takes the engine away (its socket refusing connections,
// or gone) while one backend is added and one removed on the real engine,
// until the Watcher's retries have reached the backoff cap. The Watcher
// publishes nothing during the outage, retries with capped exponential
// backoff, and after the engine is back resyncs to a set that reflects
// both changes; it logs the outage once and the recovery once.
func TestEngineOutage(t *testing.T) {
	cli := dockertest.Require(t)
	img := testwebImage(t, cli)
	for _, tc := range []struct {
		name string
		down func(*faultproxy.Proxy)
	}{
		{"socket refuses", (*faultproxy.Proxy).Down},
		{"socket gone", (*faultproxy.Proxy).Gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, pcli := proxiedEngine(t)
			net := dockertest.Network(t, cli, "outage")
			keep := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net, Labels: enabled(TestwebPort)})
			old := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net, Labels: enabled(TestwebPort)})
			h := startWatcher(t, pcli, Config{Network: net, BackoffMin: faultBackoffMin, BackoffMax: faultBackoffMax})
			h.rec.wait(t, routeTimeout, "both routed", func(s snapshot) bool {
				return slices.Equal(s.names(), []string{keep.Name, old.Name})
			})
			n0 := h.rec.count()

			down := time.Now()
			tc.down(p)
			h.logs.Wait(t, 1, routeTimeout, "error")
			added := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net, Labels: enabled(TestwebPort)})
			old.Remove()
			h.logs.Wait(t, 1, routeTimeout, "debug", "engine still unreachable",
				fmt.Sprintf(`"retry_in":%d`, faultBackoffMax.Milliseconds()))
			if n := h.rec.count(); n != n0 {
				t.Errorf("%d sets published during the outage, want none:\n%s", n-n0, h.rec.dump())
			}
			if err := p.Up(); err != nil {
				t.Fatal(err)
			}
			up := time.Now()
			after, _ := h.rec.wait(t, routeTimeout, "the set reflects the outage's changes", func(s snapshot) bool {
				return slices.Equal(s.names(), []string{keep.Name, added.Name})
			})
			first := h.rec.all()[n0]
			t.Logf("outage %v; first set after it %v after the engine came back, complete %v after",
				up.Sub(down).Round(time.Millisecond), first.at.Sub(up).Round(time.Millisecond),
				after.at.Sub(up).Round(time.Millisecond))
			if d := first.at.Sub(up); d > faultBackoffMax+actBound {
				t.Errorf("first set %v after the engine came back, want within the backoff cap %v (+%v)", d, faultBackoffMax, actBound)
			}
			for _, s := range h.rec.all()[n0:] {
				if _, in := s.find(keep.ID); !in {
					t.Errorf("%s, untouched during the outage, left the set: %v", keep.Name, s.names())
				}
			}

			// The outage is logged once, by whichever call met it first
			// (the events stream breaking, or an inspect of a container
			// whose event arrived just then); the retries, at debug, say
			// why they fail.
			errs := h.logs.Lines("error")
			if len(errs) != 1 || !strings.Contains(errs[0].Raw, "engine") {
				t.Errorf("outage logged as, want one line naming the engine:\n%s", testutil.Raws(errs))
			}

			if rec := h.logs.Lines("info", "reconnected"); len(rec) != 1 {
				t.Errorf("%d recovery lines, want 1:\n%s", len(rec), testutil.Raws(rec))
			}
			if warns := h.logs.Lines("warn"); len(warns) != 0 {
				t.Errorf("warnings during an outage:\n%s", testutil.Raws(warns))
			}
			// Retries: logged at debug only, with a delay that doubles up
			// to the cap.
			var delays []time.Duration
			for _, l := range h.logs.Lines("debug", "engine still unreachable") {
				d, _ := l.Fields["retry_in"].(float64) // zerolog writes durations in ms
				delays = append(delays, time.Duration(d*float64(time.Millisecond)))
			}
			t.Logf("retry delays %v", delays)
			if len(delays) < 3 || len(delays) > 40 {
				t.Errorf("%d retries in a %v outage, want a handful", len(delays), up.Sub(down).Round(time.Millisecond))
			}
			for i, d := range delays {
				if d > faultBackoffMax || (i > 0 && d < delays[i-1]) {
					t.Errorf("retry delays %v: want non-decreasing, at most %v", delays, faultBackoffMax)
					break
				}
			}
			if len(delays) > 0 && delays[len(delays)-1] != faultBackoffMax {
				t.Errorf("retry delays %v never reached the cap %v", delays, faultBackoffMax)
			}
		})
	}
}

// TestStreamCutWhileProbing cuts the events stream while a started
// container's port is still being probed: after the resync the container
// is routed once its port accepts connections.
func TestStreamCutWhileProbing(t *testing.T) {
	cli := dockertest.Require(t)
	t.Parallel()
	img := testwebImage(t, cli)
	p, pcli := proxiedEngine(t)
	net := dockertest.Network(t, cli, "probecut")
	h := startWatcher(t, pcli, Config{Network: net, BackoffMin: faultBackoffMin, BackoffMax: faultBackoffMax})
	c := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net, Labels: enabled(TestwebPort),
		Cmd: []string{"--listen-after", "2s"}})
	h.logs.Wait(t, 1, routeTimeout, "debug", `"action":"start"`, c.Name)
	p.Cut()
	h.logs.Wait(t, 1, routeTimeout, "info", "reconnected")
	in, _ := h.rec.waitIn(t, c.ID, true, routeTimeout)
	if listening := time.Unix(0, get(t, c.Addr(net, TestwebPort)).Listening); in.at.Before(listening) {
		t.Errorf("routed before its port accepted connections")
	}
}
