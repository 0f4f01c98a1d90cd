package discovery

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/swarmtest"
	"github.com/wharflb/wharf/internal/testutil"
)

// TestSwarmRealScale runs a SwarmWatcher against the manager of a real
// three-node swarm (one manager) and checks that it publishes exactly the
// overlay addresses of a dnsrr service's running tasks as the service is
// scaled from 3 to 5 and to 2, and that a forced rolling update takes each
// old task out of the published set before its container gets SIGTERM. The watcher's probes dial from a container
// attached to the overlay on the manager: the overlay's addresses are not
// reachable from the test's own network namespace, and nothing is sent
// there from it.
func TestSwarmRealScale(t *testing.T) {
	r := startRealSwarm(t, 3)
	sw, mgr, netID, netName := r.sw, r.sw.Manager(), r.netID, realNet
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	created := r.service
	rec, logs, w := r.rec, r.logs, r.w
	started := r.started

	// wantTasks waits until the published set is exactly the overlay
	// addresses of the service's n running tasks.
	wantTasks := func(n int, since time.Time) {
		t.Helper()
		tasks := sw.WaitTasks("api", n, 2*time.Minute)
		running := time.Now()
		var want []string
		for _, task := range tasks {
			for _, a := range task.NetworksAttachments {
				if a.Network.ID == netID && len(a.Addresses) > 0 {
					ip, _, _ := strings.Cut(a.Addresses[0], "/")
					want = append(want, net.JoinHostPort(ip, "6969"))
				}
			}
		}
		slices.Sort(want)
		if len(want) != n {
			t.Fatalf("%d tasks with an address on %s, want %d: %+v", len(want), netName, n, tasks)
		}
		s, _ := rec.wait(t, 30*time.Second, "the set is "+strings.Join(want, " "), func(s snapshot) bool {
			var got []string
			for _, b := range s.set {
				got = append(got, b.Addr)
			}
			slices.Sort(got)
			return slices.Equal(got, want)
		})
		for _, b := range s.set {
			if !strings.HasPrefix(b.Name, "api.") || b.Service != "default" {
				t.Errorf("backend %+v", b)
			}
		}
		t.Logf("%d tasks published %s after the change, %s after the test saw them all running",
			n, s.at.Sub(since).Round(time.Millisecond), s.at.Sub(running).Round(time.Millisecond))
	}
	wantTasks(3, time.Now())

	scale := func(n uint64) time.Time {
		t.Helper()
		svc, _, err := mgr.Client.ServiceInspectWithRaw(ctx, created.ID, swarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Spec.Mode.Replicated.Replicas = &n
		at := time.Now()
		if _, err := mgr.Client.ServiceUpdate(ctx, created.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{}); err != nil {
			t.Fatalf("scale api to %d: %v", n, err)
		}
		return at
	}
	wantTasks(5, scale(5))
	wantTasks(2, scale(2))
	rollingUpdate(t, sw, rec, created.ID)
	if warns := logs.Lines("warn"); len(warns) > 0 {
		t.Errorf("warnings:\n%s", testutil.Raws(warns))
	}
	// The load on the manager: never more than one task list per fast
	// interval, plus one per step that handled events, plus the resyncs'.
	elapsed := time.Since(started)
	polls, evs := w.Polls(), w.EventsApplied()
	if bound := uint64(elapsed/DefaultSwarmFastPoll) + evs + 2*w.Resyncs(); polls > bound {
		t.Errorf("%d task polls in %s with %d events, more than %d", polls, elapsed.Round(time.Millisecond), evs, bound)
	}
	t.Logf("%d task polls in %s (%.1f/s) with %d events", polls, elapsed.Round(time.Millisecond),
		float64(polls)/elapsed.Seconds(), evs)

	// Once quiet, the tasks are read once a second.
	n := len(logs.Lines("debug", "polling the tasks", `"every":1000`))
	logs.Wait(t, n+1, DefaultSwarmFastFor+30*time.Second, "debug", "polling the tasks", `"every":1000`)
	before, t0 := w.Polls(), time.Now()
	<-time.After(3 * time.Second) // a measuring window, not a wait for a state
	steady := float64(w.Polls()-before) / time.Since(t0).Seconds()
	if steady > 1.5 {
		t.Errorf("%.1f task polls a second in the steady state, want 1", steady)
	}
	t.Logf("steady state: %.2f task polls a second", steady)
}

// realNet is the overlay of the real-swarm tests.
const realNet = "web"

// realSwarm is a three-node swarm (one manager) with an attachable
// overlay, a dnsrr service api of webtest replicas labelled lb.enable=true
// lb.port=6969, and a SwarmWatcher of the overlay on the manager whose
// probes dial from a container attached to the overlay on the manager.
type realSwarm struct {
	sw      *swarmtest.Swarm
	netID   string
	service swarm.ServiceCreateResponse
	rec     *recorder
	logs    *testutil.LogBuffer
	w       *SwarmWatcher
	started time.Time // when the watcher started
}

func startRealSwarm(t *testing.T, replicas uint64) *realSwarm {
	t.Helper()
	img := dockertest.WebtestImage(t, dockertest.Require(t))
	r := &realSwarm{sw: swarmtest.Start(t, swarmtest.Options{Nodes: 3, Managers: 1})}
	r.sw.LoadImage(img)
	r.netID = r.sw.CreateOverlay(realNet, true)
	mgr := r.sw.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The probes' vantage point: a container on the overlay, on the manager.
	cl, err := mgr.Client.ContainerCreate(ctx, &container.Config{Image: img},
		&container.HostConfig{NetworkMode: container.NetworkMode(realNet)},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{realNet: {}}}, nil, "prober")
	if err != nil {
		t.Fatalf("create the prober container: %v", err)
	}
	if err := mgr.Client.ContainerStart(ctx, cl.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start the prober container: %v", err)
	}
	hc, err := mgr.ContainerHTTPClient(ctx, cl.ID)
	if err != nil {
		t.Fatal(err)
	}
	dial := hc.Transport.(*http.Transport).DialContext

	r.service, err = mgr.Client.ServiceCreate(ctx, swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "api", Labels: map[string]string{"lb.enable": "true", "lb.port": "6969"}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: img},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: realNet}},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}, swarm.ServiceCreateOptions{QueryRegistry: false})
	if err != nil {
		t.Fatalf("create service api: %v", err)
	}

	r.rec, r.logs = newRecorder(), &testutil.LogBuffer{}
	r.started = time.Now()
	r.w = NewSwarm(mgr.Client, SwarmConfig{Network: realNet, Dial: dial,
		Log: zerolog.New(r.logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()}, r.rec.publish)
	wctx, wcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.w.Run(wctx)
	}()
	t.Cleanup(func() {
		wcancel()
		<-done
		if t.Failed() {
			t.Logf("watcher log:\n%s", r.logs.String())
		}
	})
	return r
}

// TestSwarmRealNodeDown: when a worker is cut off from the swarm, the
// manager marks it down and the watcher takes its tasks out, while the
// other nodes' tasks stay.
func TestSwarmRealNodeDown(t *testing.T) {
	r := startRealSwarm(t, 3)
	mgr := r.sw.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tasks := r.sw.WaitTasks("api", 3, 2*time.Minute)
	var all []string
	for _, task := range tasks {
		all = append(all, task.ID)
	}
	slices.Sort(all)
	hasIDs := func(ids []string) func(snapshot) bool {
		return func(s snapshot) bool {
			var got []string
			for _, b := range s.set {
				got = append(got, b.ID)
			}
			slices.Sort(got)
			return slices.Equal(got, ids)
		}
	}
	r.rec.wait(t, 30*time.Second, "the three tasks are published", hasIDs(all))

	n3, err := r.sw.Node(3).Client.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var onN3, others []string
	for _, task := range tasks {
		if task.NodeID == n3.Swarm.NodeID {
			onN3 = append(onN3, task.ID)
		} else {
			others = append(others, task.ID)
		}
	}
	slices.Sort(others)
	if len(onN3) == 0 {
		t.Fatalf("no task of api on node3 (%s): %+v", n3.Swarm.NodeID, tasks)
	}
	from := r.rec.count() - 1
	cut := time.Now()
	r.sw.CutLink(3)
	defer r.sw.RestoreLink(3)
	var down time.Time
	testutil.Eventually(t, 2*time.Minute, "the manager marks node3 down", func() bool {
		n, _, err := mgr.Client.NodeInspectWithRaw(ctx, n3.Swarm.NodeID)
		if err == nil && n.Status.State == swarm.NodeStateDown {
			down = time.Now()
			return true
		}
		return false
	})
	s, _ := r.rec.wait(t, 30*time.Second, "node3's tasks are out", func(s snapshot) bool {
		for _, id := range onN3 {
			if _, in := s.find(id); in {
				return false
			}
		}
		return true
	})
	for _, id := range others {
		if ts := r.rec.transitions(id, from); len(ts) != 1 || !ts[0].in {
			t.Errorf("task %s on another node: membership %s, want in", id, seq(ts))
		}
	}
	reasons := r.logs.Lines("debug", "out of selection")
	t.Logf("node3's %d tasks out %s after the cut, %s after the test saw node3 down; %s",
		len(onN3), s.at.Sub(cut).Round(time.Millisecond), s.at.Sub(down).Round(time.Millisecond), testutil.Raws(reasons))
}

// rollingUpdate forces a rolling update (one task at a time, stop first)
// of service id and checks that every old task was out of the published
// set before its container was sent a signal, as the engine of its node
// reports it, and logs how long after reaching running each new task was
// published.
func rollingUpdate(t *testing.T, sw *swarmtest.Swarm, rec *recorder, id string) {
	t.Helper()
	mgr := sw.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var kills []*eventLog
	for _, n := range sw.Nodes {
		kills = append(kills, watchEvents(t, n.Client))
	}
	old := sw.WaitTasks("api", 2, time.Minute)
	from := rec.count() - 1
	svc, _, err := mgr.Client.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.TaskTemplate.ForceUpdate++
	if _, err := mgr.Client.ServiceUpdate(ctx, id, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{}); err != nil {
		t.Fatalf("update api: %v", err)
	}
	testutil.Eventually(t, 2*time.Minute, "the rolling update of api completes", func() bool {
		s, _, err := mgr.Client.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
		return err == nil && s.UpdateStatus != nil && s.UpdateStatus.State == swarm.UpdateStateCompleted
	})
	fresh := sw.WaitTasks("api", 2, time.Minute)
	var want []string
	for _, task := range fresh {
		want = append(want, task.ID)
	}
	slices.Sort(want)
	rec.wait(t, 30*time.Second, "the new tasks are published", func(s snapshot) bool {
		var got []string
		for _, b := range s.set {
			got = append(got, b.ID)
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})

	for _, task := range old {
		cid := task.Status.ContainerStatus.ContainerID
		var kill time.Time
		for _, l := range kills {
			if ms := l.all(cid, "kill"); len(ms) > 0 {
				kill = evTime(ms[0])
			}
		}
		ts := rec.transitions(task.ID, from)
		switch {
		case kill.IsZero():
			t.Errorf("old task %s: no kill event for its container %s", task.ID, short(cid))
		case len(ts) != 2 || !ts[0].in || ts[1].in:
			t.Errorf("old task %s: membership %s, want in,out", task.ID, seq(ts))
		case !ts[1].at.Before(kill):
			t.Errorf("old task %s: out %s after its container's SIGTERM", task.ID, ts[1].at.Sub(kill))
		default:
			t.Logf("old task %s (slot %d): out %s before its container's SIGTERM", short(task.ID), task.Slot,
				kill.Sub(ts[1].at).Round(time.Millisecond))
		}
	}
	for _, task := range fresh {
		ts := rec.transitions(task.ID, from)
		if len(ts) < 2 || !ts[1].in {
			t.Errorf("new task %s: membership %s", task.ID, seq(ts))
			continue
		}
		t.Logf("new task %s (slot %d): published %s after it reached running", short(task.ID), task.Slot,
			ts[1].at.Sub(task.Status.Timestamp).Round(time.Millisecond))
	}
}
