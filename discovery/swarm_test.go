package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/internal/clock"
	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
)

// The tests of this file drive the SwarmWatcher on a scripted Swarm
// manager and a fake clock, as machine_test.go does the Watcher: every
// wait is on a signal (a publish, a log line, a timer being armed).

const (
	swFast      = 250 * time.Millisecond
	swSlow      = time.Second
	swFastFor   = time.Second
	swProbeStep = 10 * time.Millisecond
	swNetID     = "webnet0123456789abcdef"
)

// scriptedSwarm is a Swarm manager whose services, tasks and nodes the
// test sets; TaskList answers from them as the Engine does.
type scriptedSwarm struct {
	mu       sync.Mutex
	manager  bool
	down     error
	services map[string]*swarm.Service
	tasks    map[string]*scriptedTask
	nodes    map[string]swarm.NodeState
	stream   *scriptedStream
	calls    []string
	changed  chan struct{}
	ips      int
	// The network web as NetworkInspect describes it.
	netScope, netDriver string
	netDetached         bool // not attachable
}

type scriptedTask struct {
	service, node   string
	slot            int
	state, desired  swarm.TaskState
	ip              string
	accepts         bool
	noNetworkAttach bool
}

func newScriptedSwarm() *scriptedSwarm {
	return &scriptedSwarm{manager: true, services: map[string]*swarm.Service{}, tasks: map[string]*scriptedTask{},
		nodes: map[string]swarm.NodeState{"n1": swarm.NodeStateReady, "n2": swarm.NodeStateReady}, changed: make(chan struct{})}
}

func (e *scriptedSwarm) call(name string) error {
	e.calls = append(e.calls, name)
	close(e.changed)
	e.changed = make(chan struct{})
	return e.down
}

func (e *scriptedSwarm) Info(context.Context) (system.Info, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.call("Info"); err != nil {
		return system.Info{}, err
	}
	i := system.Info{ServerVersion: "20.10.24", SystemTime: time.Now().Format(time.RFC3339Nano)}
	i.Swarm.LocalNodeState = swarm.LocalNodeStateActive
	i.Swarm.ControlAvailable = e.manager
	return i, nil
}

func (e *scriptedSwarm) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &scriptedStream{msgs: make(chan events.Message), errs: make(chan error, 1)}
	if err := e.call("Events"); err != nil {
		s.errs <- err
		return s.msgs, s.errs
	}
	e.stream = s
	context.AfterFunc(ctx, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.stream == s {
			e.stream = nil
		}
	})
	return s.msgs, s.errs
}

func (e *scriptedSwarm) ServiceList(_ context.Context, o swarm.ServiceListOptions) ([]swarm.Service, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.call("ServiceList"); err != nil {
		return nil, err
	}
	var list []swarm.Service
	ids := o.Filters.Get("id")
	for id, s := range e.services {
		if len(ids) == 0 || slices.Contains(ids, id) {
			list = append(list, *s)
		}
	}
	return list, nil
}

func (e *scriptedSwarm) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.call("TaskList"); err != nil {
		return nil, err
	}
	svcs := o.Filters.Get("service")
	for _, s := range svcs {
		if e.services[s] == nil {
			return nil, fmt.Errorf("service %s not found: %w", s, errNotFound{})
		}
	}
	var list []swarm.Task
	for id, st := range e.tasks {
		if !slices.Contains(svcs, st.service) || o.Filters.Contains("desired-state") && !o.Filters.ExactMatch("desired-state", string(st.desired)) {
			continue
		}
		t := swarm.Task{ID: id, ServiceID: st.service, NodeID: st.node, Slot: st.slot, DesiredState: st.desired}
		t.Status.State = st.state
		if !st.noNetworkAttach {
			a := swarm.NetworkAttachment{Addresses: []string{st.ip + "/24"}}
			a.Network.ID = swNetID
			a.Network.Spec.Name = "web"
			t.NetworksAttachments = append(t.NetworksAttachments, a)
		}
		list = append(list, t)
	}
	return list, nil
}

type errNotFound struct{}

func (errNotFound) Error() string { return "not found" }
func (errNotFound) NotFound()     {}

func (e *scriptedSwarm) NodeList(context.Context, swarm.NodeListOptions) ([]swarm.Node, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.call("NodeList"); err != nil {
		return nil, err
	}
	var list []swarm.Node
	for id, st := range e.nodes {
		n := swarm.Node{ID: id}
		n.Status.State = st
		n.Description.Hostname = "host-" + id
		list = append(list, n)
	}
	return list, nil
}

func (e *scriptedSwarm) NetworkInspect(_ context.Context, ref string, opts network.InspectOptions) (network.Inspect, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.call("NetworkInspect"); err != nil {
		return network.Inspect{}, err
	}
	if ref != "web" && ref != swNetID {
		return network.Inspect{}, errNotFound{}
	}
	n := network.Inspect{Name: "web", ID: swNetID, Scope: "swarm", Driver: "overlay", Attachable: !e.netDetached}
	if e.netScope != "" {
		n.Scope, n.Driver = e.netScope, e.netDriver
	}
	if opts.Scope != "" && opts.Scope != n.Scope {
		return network.Inspect{}, errNotFound{} // as the Engine answers
	}
	return n, nil
}

func (e *scriptedSwarm) ClientVersion() string { return "1.41" }
func (e *scriptedSwarm) DaemonHost() string    { return "scripted" }

// Dial connects when the task with the address's IP runs and accepts.
func (e *scriptedSwarm) Dial(_ context.Context, network, address string) (net.Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	host, _, _ := net.SplitHostPort(address)
	for id, t := range e.tasks {
		if t.ip == host {
			e.call("Dial " + id)
			if t.accepts && t.state == swarm.TaskStateRunning {
				c, s := net.Pipe()
				s.Close()
				return c, nil
			}
		}
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
}

// addService adds a service with spec labels (key=value).
func (e *scriptedSwarm) addService(id string, labels ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &swarm.Service{ID: id}
	s.Spec.Name = id
	s.Spec.Labels = map[string]string{}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		s.Spec.Labels[k] = v
	}
	s.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{}
	s.Spec.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: swNetID}}
	e.services[id] = s
}

func (e *scriptedSwarm) setService(id string, change func(*swarm.Service)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	change(e.services[id])
}

// addTask adds a task of service on node, running and accepting.
func (e *scriptedSwarm) addTask(id, service, node string, slot int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ips++
	e.tasks[id] = &scriptedTask{service: service, node: node, slot: slot, state: swarm.TaskStateRunning,
		desired: swarm.TaskStateRunning, ip: fmt.Sprintf("10.0.1.%d", e.ips), accepts: true}
}

func (e *scriptedSwarm) setTask(id string, change func(*scriptedTask)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	change(e.tasks[id])
}

func (e *scriptedSwarm) count(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.calls {
		if c == name {
			n++
		}
	}
	return n
}

func (e *scriptedSwarm) send(t testing.TB, m events.Message) {
	t.Helper()
	deadline := time.NewTimer(machineWait)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		s, changed := e.stream, e.changed
		e.mu.Unlock()
		if s != nil {
			select {
			case s.msgs <- m:
				return
			case <-deadline.C:
				t.Fatalf("the watcher does not read its events")
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no events subscription")
		}
	}
}

func (e *scriptedSwarm) cut(t testing.TB, err error) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stream == nil {
		t.Fatal("cut: no events subscription open")
	}
	e.stream.errs <- err
	e.stream = nil
}

func serviceEvent(id, action string, attrs ...string) events.Message {
	a := map[string]string{"name": id}
	for _, kv := range attrs {
		k, v, _ := strings.Cut(kv, "=")
		a[k] = v
	}
	return events.Message{Type: events.ServiceEventType, Action: events.Action(action), Actor: events.Actor{ID: id, Attributes: a}}
}

func nodeEvent(id string) events.Message {
	return events.Message{Type: events.NodeEventType, Action: events.ActionUpdate,
		Actor: events.Actor{ID: id, Attributes: map[string]string{"name": id}}}
}

// swarmMachine is a SwarmWatcher of network web on a scripted swarm.
type swarmMachine struct {
	t    *testing.T
	e    *scriptedSwarm
	clk  *clock.Fake
	rec  *recorder
	logs *testutil.LogBuffer
	w    *SwarmWatcher

	barriers int
}

// startSwarm runs a SwarmWatcher on e until t ends and waits until it
// published exactly the tasks ready, the poll timer armed.
func startSwarm(t *testing.T, e *scriptedSwarm, ready ...string) *swarmMachine {
	t.Helper()
	m := &swarmMachine{t: t, e: e, clk: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		rec: newRecorder(), logs: &testutil.LogBuffer{}}
	m.w = NewSwarm(e, SwarmConfig{
		Network: "web", Log: zerolog.New(m.logs).Level(zerolog.DebugLevel),
		FastPoll: swFast, SlowPoll: swSlow, FastFor: swFastFor,
		ProbeInterval: swProbeStep, ProbeTimeout: machineProbeTimeout,
		BackoffMin: machineBackoffMin, BackoffMax: machineBackoffMax,
		Clock: m.clk, Dial: e.Dial,
	}, m.rec.publish)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(machineWait):
			t.Errorf("SwarmWatcher.Run did not return after its context was cancelled")
		}
		if t.Failed() {
			t.Logf("watcher log:\n%s", m.logs.String())
		}
	})
	m.want(ready...)
	return m
}

// want waits until the latest published set is exactly the tasks ids.
func (m *swarmMachine) want(ids ...string) {
	m.t.Helper()
	slices.Sort(ids)
	m.rec.wait(m.t, machineWait, fmt.Sprintf("the set is %q", ids), func(s snapshot) bool {
		var got []string
		for _, b := range s.set {
			if !strings.HasPrefix(b.ID, barrierPrefix) {
				got = append(got, b.ID)
			}
		}
		slices.Sort(got)
		return slices.Equal(got, ids)
	})
}

// send streams ev and returns once the watcher handled it, polled and
// published: it then creates a service whose one task has a HEALTHCHECK,
// which is routed in the step that handles its event, and waits until the
// task is published. The barrier's event comes at the same fake time as
// ev, so it moves the end of fast polling nowhere.
func (m *swarmMachine) send(ev events.Message) {
	m.t.Helper()
	m.e.send(m.t, ev)
	m.barriers++
	id := fmt.Sprintf("%s%d", barrierPrefix, m.barriers)
	m.e.addService(id, "lb.enable=true", "lb.port=80")
	m.e.setService(id, func(s *swarm.Service) {
		s.Spec.TaskTemplate.ContainerSpec.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "true"}}
	})
	m.e.addTask(id+"task", id, "nb", 1)
	m.e.send(m.t, serviceEvent(id, "create"))
	m.rec.waitIn(m.t, id+"task", true, machineWait)
}

func (m *swarmMachine) armed(n int) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), machineWait)
	defer cancel()
	if err := m.clk.BlockUntil(ctx, n); err != nil {
		m.t.Fatal(err)
	}
}

// advance waits until the poll timer alone is armed, moves the clock by d
// and checks how many timers fired.
func (m *swarmMachine) advance(d time.Duration, fired int) {
	m.t.Helper()
	m.armed(1)
	if n := m.clk.Advance(d); n != fired {
		m.t.Fatalf("advancing %v fired %d timers, want %d", d, n, fired)
	}
}

// cadence waits for the n-th log line saying that the tasks are polled
// every d.
func (m *swarmMachine) cadence(n int, d time.Duration) {
	m.t.Helper()
	m.logs.Wait(m.t, n, machineWait, "debug", "polling the tasks", fmt.Sprintf(`"every":%d`, d.Milliseconds()))
}

// swarmWith returns a scripted swarm with service web (lb.port 6969) and
// its running tasks ids, on nodes n1, n2, n1...
func swarmWith(ids ...string) *scriptedSwarm {
	e := newScriptedSwarm()
	e.addService("web", "lb.enable=true", "lb.port=6969", "lb.weight=5")
	for i, id := range ids {
		e.addTask(id, "web", []string{"n1", "n2"}[i%2], i+1)
	}
	return e
}

// TestSwarmSync: the watcher subscribes before listing, publishes the
// running tasks' addresses on the network with the service's settings,
// and reads the tasks with one request per poll, slowly when nothing
// happens.
func TestSwarmSync(t *testing.T) {
	e := swarmWith("t1", "t2", "t3")
	m := startSwarm(t, e, "t1", "t2", "t3")
	var calls []string
	for _, c := range e.calls {
		if !strings.HasPrefix(c, "Dial") {
			calls = append(calls, c)
		}
	}
	if want := []string{"Info", "Events", "NetworkInspect", "ServiceList", "NodeList", "TaskList"}; !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
	snaps := m.rec.all()
	last := snaps[len(snaps)-1]
	for i, b := range last.set {
		node := []string{"host-n1", "host-n2"}[i%2]
		if b.Name != fmt.Sprintf("web.%d", i+1) || b.Weight != 5 || b.Addr != fmt.Sprintf("10.0.1.%d:6969", i+1) ||
			b.Task != (lb.Task{Node: node, Slot: i + 1, State: "running", DesiredState: "running"}) {
			t.Errorf("backend %d: %+v", i, b)
		}
	}
	m.cadence(1, swSlow)
	m.advance(swSlow-time.Millisecond, 0)
	m.advance(time.Millisecond, 1)
	m.armed(1)
	if n := e.count("TaskList"); n != 2 {
		t.Errorf("%d task lists after one slow interval, want 2", n)
	}
}

// TestSwarmTaskLeaving: a task whose desired state leaves running (rolling
// update, scale-down) is out at the next poll: fast after the service
// event, and at the next slow one without any event.
func TestSwarmTaskLeaving(t *testing.T) {
	e := swarmWith("t1", "t2", "t3")
	m := startSwarm(t, e, "t1", "t2", "t3")
	m.send(serviceEvent("web", "update", "replicas.old=3", "replicas.new=2"))
	m.cadence(1, swFast)
	e.setTask("t3", func(st *scriptedTask) { st.desired = swarm.TaskStateRemove })
	m.advance(swFast, 1)
	m.want("t1", "t2")

	// No event: the slow poll is enough.
	for range 3 { // the rest of the fast polls
		m.advance(swFast, 1)
	}
	m.cadence(2, swSlow)
	e.setTask("t2", func(st *scriptedTask) { st.desired = swarm.TaskStateShutdown })
	m.advance(swSlow, 1)
	m.want("t1")
}

// TestSwarmNewTaskProbed: a new task is not routed while it starts nor
// before its port accepts a connection; polling is fast while it starts.
func TestSwarmNewTaskProbed(t *testing.T) {
	e := swarmWith("t1")
	m := startSwarm(t, e, "t1")
	m.cadence(1, swSlow)
	e.addTask("t2", "web", "n2", 2)
	e.setTask("t2", func(st *scriptedTask) { st.state, st.accepts = swarm.TaskStateStarting, false })
	m.advance(swSlow, 1)
	m.cadence(1, swFast) // a task is starting
	e.setTask("t2", func(st *scriptedTask) { st.state = swarm.TaskStateRunning })
	m.armed(1)
	m.clk.Advance(swFast)
	m.armed(3) // the poll, the probe's retry and deadline
	e.setTask("t2", func(st *scriptedTask) { st.accepts = true })
	if n := m.clk.Advance(swProbeStep); n != 1 {
		t.Fatalf("the probe's retry did not fire alone: %d timers", n)
	}
	m.want("t1", "t2")
}

// TestSwarmCadenceDecays: a service event makes polling fast for
// FastFor, then it is slow again; a rolling update keeps it fast.
func TestSwarmCadenceDecays(t *testing.T) {
	e := swarmWith("t1")
	m := startSwarm(t, e, "t1")
	before := e.count("TaskList")
	m.send(serviceEvent("web", "update"))
	m.cadence(1, swFast)
	// One poll per step: the barrier's event may share the event's.
	if n := e.count("TaskList") - before; n < 1 || n > 2 {
		t.Errorf("the event and the barrier's made %d task lists, want 1 or 2", n)
	}
	for range 4 {
		m.advance(swFast, 1)
	}
	m.cadence(2, swSlow)
	m.advance(swSlow-time.Millisecond, 0)
	m.advance(time.Millisecond, 1)

	e.setService("web", func(s *swarm.Service) { s.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateUpdating} })
	m.send(serviceEvent("web", "update", "updatestate.new=updating"))
	m.cadence(2, swFast)
	for range 8 { // twice FastFor
		m.advance(swFast, 1)
	}
	e.setService("web", func(s *swarm.Service) { s.UpdateStatus.State = swarm.UpdateStateCompleted })
	m.send(serviceEvent("web", "update", "updatestate.new=completed"))
	for range 4 {
		m.advance(swFast, 1)
	}
	m.cadence(3, swSlow)
}

// TestSwarmNodeDown: a node event saying a node is down takes its tasks
// out at once.
func TestSwarmNodeDown(t *testing.T) {
	e := swarmWith("t1", "t2", "t3") // t1, t3 on n1
	m := startSwarm(t, e, "t1", "t2", "t3")
	e.mu.Lock()
	e.nodes["n1"] = swarm.NodeStateDown
	e.mu.Unlock()
	m.send(nodeEvent("n1"))
	m.want("t2")
	e.mu.Lock()
	e.nodes["n1"] = swarm.NodeStateReady
	e.mu.Unlock()
	m.send(nodeEvent("n1"))
	m.want("t1", "t2", "t3")
}

// TestSwarmServiceRemoved: a removed service's tasks are out at the event.
func TestSwarmServiceRemoved(t *testing.T) {
	e := swarmWith("t1", "t2")
	m := startSwarm(t, e, "t1", "t2")
	e.mu.Lock()
	delete(e.services, "web")
	e.mu.Unlock()
	m.send(serviceEvent("web", "remove"))
	m.want()
}

// TestSwarmStreamCut: a cut stream is logged once, the last set is kept,
// and the resync after the reconnection applies what changed meanwhile.
func TestSwarmStreamCut(t *testing.T) {
	e := swarmWith("t1", "t2")
	m := startSwarm(t, e, "t1", "t2")
	e.mu.Lock()
	e.down = errors.New("connection refused")
	e.mu.Unlock()
	m.e.cut(t, errors.New("unexpected EOF"))
	m.logs.Wait(t, 1, machineWait, "error", "serving the last known peers")
	e.setTask("t1", func(st *scriptedTask) { st.desired = swarm.TaskStateShutdown })
	m.armed(1) // the backoff
	m.clk.Advance(machineBackoffMin)
	m.armed(1) // the next backoff: the engine is still down
	e.mu.Lock()
	e.down = nil
	e.mu.Unlock()
	m.clk.Advance(machineBackoffMax)
	m.want("t2")
	m.logs.Wait(t, 1, machineWait, "info", "reconnected")
	if n := len(m.logs.Lines("error")); n != 1 {
		t.Errorf("%d error lines, want 1", n)
	}
}

// TestSwarmWarnings: labels on the containers instead of the service,
// and a missing lb.port, are each warned once, however often the tasks
// are polled; the other services keep working.
func TestSwarmWarnings(t *testing.T) {
	e := swarmWith("t1")
	e.addService("wrong")
	e.setService("wrong", func(s *swarm.Service) {
		s.Spec.TaskTemplate.ContainerSpec.Labels = map[string]string{"lb.enable": "true", "lb.port": "80"}
	})
	e.addTask("w1", "wrong", "n1", 1)
	e.addService("noport", "lb.enable=true")
	e.addTask("p1", "noport", "n1", 1)
	m := startSwarm(t, e, "t1")
	m.logs.Wait(t, 1, machineWait, "warn", "service wrong", "deploy.labels")
	m.logs.Wait(t, 1, machineWait, "warn", "service noport", "no label lb.port")
	for range 3 {
		m.advance(swSlow, 1)
	}
	m.send(serviceEvent("noport", "update"))
	m.advance(swFast, 1)
	m.armed(1)
	if n := len(m.logs.Lines("warn")); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, m.logs.String())
	}
	// Fixed: the labels moved to the service.
	e.setService("wrong", func(s *swarm.Service) {
		s.Spec.Labels = maps.Clone(s.Spec.TaskTemplate.ContainerSpec.Labels)
	})
	m.send(serviceEvent("wrong", "update"))
	m.want("t1", "w1")
}

// TestSwarmNotManager: a worker's engine is named as such, with the fix.
func TestSwarmNotManager(t *testing.T) {
	e := swarmWith("t1")
	e.manager = false
	m := &swarmMachine{t: t, e: e, clk: clock.NewFake(time.Now()), rec: newRecorder(), logs: &testutil.LogBuffer{}}
	w := NewSwarm(e, SwarmConfig{Network: "web", Log: zerolog.New(m.logs), Clock: m.clk, Dial: e.Dial}, m.rec.publish)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	m.logs.Wait(t, 1, machineWait, "error", "not a Swarm manager", "--constraint node.role==manager")
}

// TestSkipSwarmTasks: beside a SwarmWatcher, the container Watcher leaves
// the containers of Swarm tasks to it, even when they carry lb.* labels,
// so that a task is never balanced twice.
func TestSkipSwarmTasks(t *testing.T) {
	e := newScriptedEngine()
	e.add("task", enabled("80", swarmTaskLabel+"=abc"), "web")
	e.add("plain", enabled("80"), "web")
	h := runWatcher(t, e, Config{Network: "web", SkipSwarmTasks: true, Dial: e.Dial})
	h.rec.wait(t, machineWait, "only the plain container", func(s snapshot) bool {
		return len(s.set) == 1 && s.set[0].ID == "plain"
	})
}

// TestSwarmNetworkErrors: a --network that is not swarm-scoped, or not
// attachable, or missing, is explained once with the fix.
func TestSwarmNetworkErrors(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		e := swarmWith("t1")
		e.netScope, e.netDriver = "local", "bridge"
		m := startSwarm(t, e)
		m.logs.Wait(t, 1, machineWait, "warn", "local-scoped bridge network", "docker network create --driver overlay --attachable")
		m.advance(swSlow, 1)
		m.armed(1)
		if n := len(m.logs.Lines("warn")); n != 1 {
			t.Errorf("%d warnings, want 1", n)
		}
	})
	t.Run("not attachable", func(t *testing.T) {
		e := swarmWith("t1")
		e.netDetached = true
		m := startSwarm(t, e, "t1") // a service can still join it
		m.logs.Wait(t, 1, machineWait, "warn", "not attachable", "--attachable", "run wharf as a service")
	})
	t.Run("missing", func(t *testing.T) {
		e := swarmWith("t1")
		m := &swarmMachine{t: t, e: e, clk: clock.NewFake(time.Now()), rec: newRecorder(), logs: &testutil.LogBuffer{}}
		w := NewSwarm(e, SwarmConfig{Network: "nope", Log: zerolog.New(m.logs), Clock: m.clk, Dial: e.Dial}, m.rec.publish)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(ctx) }()
		defer func() { cancel(); <-done }()
		m.logs.Wait(t, 1, machineWait, "warn", `network \"nope\" not found`, "docker network create --driver overlay --attachable nope")
		m.want()
	})
	t.Run("created later", func(t *testing.T) {
		e := swarmWith("t1")
		e.netScope, e.netDriver = "local", "bridge"
		m := startSwarm(t, e)
		m.logs.Wait(t, 1, machineWait, "warn", "local-scoped")
		e.mu.Lock()
		e.netScope = ""
		e.mu.Unlock()
		m.advance(swSlow, 1)
		m.want("t1")
		m.logs.Wait(t, 1, machineWait, "info", "network found")
	})
}

// TestSwarmOtherServicesCostLittle: an event of a service that is not
// balanced costs one GET /services, no task poll, and leaves polling slow.
func TestSwarmOtherServicesCostLittle(t *testing.T) {
	e := swarmWith("t1")
	e.addService("other")
	m := startSwarm(t, e, "t1")
	m.cadence(1, swSlow)
	services, tasks := e.count("ServiceList"), e.count("TaskList")
	m.e.send(t, serviceEvent("other", "update"))
	m.advance(swSlow, 1) // the event was taken, so it is handled before the poll
	m.armed(1)
	if n := e.count("ServiceList") - services; n != 1 {
		t.Errorf("%d service lists, want 1", n)
	}
	if n := e.count("TaskList") - tasks; n != 1 {
		t.Errorf("%d task lists, want the slow poll's only", n)
	}
	if ls := m.logs.Lines("debug", "polling the tasks", `"every":250`); len(ls) > 0 {
		t.Errorf("polling went fast:\n%s", testutil.Raws(ls))
	}
}
