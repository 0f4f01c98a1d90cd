package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
)

// scriptedEngine is an Engine whose world the test writes: its containers,
// whether each one's port accepts connections, the events it streams, and
// whether it can be reached at all. Its Dial stands for the network, so a
// Watcher given it probes the scripted ports. It records every call, and
// lets a test wait for one. Safe for concurrent use.
type scriptedEngine struct {
	mu         sync.Mutex
	containers map[string]*scriptedContainer
	down       error           // while set, every call fails with it
	stream     *scriptedStream // the open events subscription
	calls      []string        // "Info", "Events", "ContainerInspect <id>"...
	dials      map[string]int  // probe dials by container ID
	changed    chan struct{}   // closed and replaced at every call
	added      int             // containers added so far, for their addresses
}

// scriptedContainer is what the engine knows of a container; ContainerInspect
// builds fresh inspect data from it at every call, so that the test can
// change it while the Watcher reads an earlier answer.
type scriptedContainer struct {
	labels   map[string]string
	ip       string
	networks []string // names of the networks it is attached to
	state    container.ContainerState
	exitCode int
	health   container.HealthStatus // "" when the image has no HEALTHCHECK
	accepts  bool                   // its port accepts connections
}

type scriptedStream struct {
	msgs chan events.Message
	errs chan error
}

func newScriptedEngine() *scriptedEngine {
	return &scriptedEngine{
		containers: map[string]*scriptedContainer{},
		dials:      map[string]int{},
		changed:    make(chan struct{}),
	}
}

// call records a call and returns the error it fails with; e.mu is held.
func (e *scriptedEngine) call(name string) error {
	e.calls = append(e.calls, name)
	close(e.changed)
	e.changed = make(chan struct{})
	return e.down
}

func (e *scriptedEngine) Info(context.Context) (system.Info, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.call("Info"); err != nil {
		return system.Info{}, err
	}
	return system.Info{ServerVersion: "20.10.24", SystemTime: time.Now().Format(time.RFC3339Nano)}, nil
}

// Events opens a new subscription, which the test feeds with send and ends
// with cut; it is also dropped when ctx ends.
func (e *scriptedEngine) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
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

// ContainerList lists the containers that have the label keys of
// options' label filters, by ID.
func (e *scriptedEngine) ContainerList(_ context.Context, options container.ListOptions) ([]container.Summary, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.call("ContainerList"); err != nil {
		return nil, err
	}
	var list []container.Summary
	for id, c := range e.containers {
		ok := true
		for _, key := range options.Filters.Get("label") {
			_, has := c.labels[key]
			ok = ok && has
		}
		if ok {
			list = append(list, container.Summary{ID: id, Names: []string{"/" + id}, Labels: c.labels, State: c.state})
		}
	}
	slices.SortFunc(list, func(a, b container.Summary) int { return strings.Compare(a.ID, b.ID) })
	return list, nil
}

func (e *scriptedEngine) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.call("ContainerInspect " + id); err != nil {
		return container.InspectResponse{}, err
	}
	c, ok := e.containers[id]
	if !ok {
		return container.InspectResponse{}, fmt.Errorf("no such container: %s: %w", id, cerrdefs.ErrNotFound)
	}
	return c.inspect(id), nil
}

func (c *scriptedContainer) inspect(id string) container.InspectResponse {
	st := &container.State{Status: c.state, Running: c.state == container.StateRunning,
		Paused: c.state == container.StatePaused, ExitCode: c.exitCode}
	cfg := &container.Config{Labels: c.labels}
	if c.health != "" {
		cfg.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "/healthcheck"}}
		st.Health = &container.Health{Status: c.health}
	}
	nets := map[string]*network.EndpointSettings{}
	for _, n := range c.networks {
		nets[n] = &network.EndpointSettings{NetworkID: n + "netid", IPAddress: c.ip}
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: id, Name: "/" + id, State: st},
		Config:            cfg,
		NetworkSettings:   &container.NetworkSettings{Networks: nets},
	}
}

func (e *scriptedEngine) NetworkInspect(context.Context, string, network.InspectOptions) (network.Inspect, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.call("NetworkInspect"); err != nil {
		return network.Inspect{}, err
	}
	return network.Inspect{Name: "web", ID: "webnetid"}, nil
}

func (e *scriptedEngine) ClientVersion() string { return "1.41" }
func (e *scriptedEngine) DaemonHost() string    { return "scripted" }

// Dial connects to a scripted container's port when it accepts
// connections, and is refused otherwise; it is a Config.Dial.
func (e *scriptedEngine) Dial(_ context.Context, network, address string) (net.Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	host, _, _ := net.SplitHostPort(address)
	for id, c := range e.containers {
		if c.ip == host && len(c.networks) > 0 {
			e.dials[id]++
			e.call("Dial " + id)
			if c.accepts && c.state == container.StateRunning {
				client, server := net.Pipe()
				server.Close()
				return client, nil
			}
		}
	}
	return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
}

// add describes a running container with labels on network net, whose port
// accepts connections.
func (e *scriptedEngine) add(id string, labels map[string]string, net string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.added++
	e.containers[id] = &scriptedContainer{
		labels: maps.Clone(labels), ip: fmt.Sprintf("192.0.2.%d", e.added),
		networks: []string{net}, state: container.StateRunning, accepts: true,
	}
}

// set changes what the engine knows of container id.
func (e *scriptedEngine) set(id string, change func(*scriptedContainer)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	change(e.containers[id])
}

func (e *scriptedEngine) remove(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.containers, id)
}

// setDown makes every call fail with err from now on; nil brings the
// engine back.
func (e *scriptedEngine) setDown(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.down = err
}

// cut ends the open events subscription with err.
func (e *scriptedEngine) cut(t testing.TB, err error) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stream == nil {
		t.Fatal("cut: no events subscription open")
	}
	e.stream.errs <- err
	e.stream = nil
}

// send streams m on the open subscription, waiting for the Watcher to
// subscribe and to take m.
func (e *scriptedEngine) send(t testing.TB, m events.Message) {
	t.Helper()
	var s *scriptedStream
	e.waitFor(t, "an events subscription", func() bool { s = e.stream; return s != nil })
	select {
	case s.msgs <- m:
	case <-time.After(10 * time.Second):
		t.Fatalf("the watcher does not read its events; %s %s not taken", m.Actor.ID, m.Action)
	}
}

// waitFor waits until ok, called with e.mu held after each call to the
// engine, returns true, failing t after 10s.
func (e *scriptedEngine) waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		done, changed := ok(), e.changed
		e.mu.Unlock()
		if done {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s after 10s; calls:\n%s", what, strings.Join(e.callLog(), "\n"))
		}
	}
}

// callLog returns the calls so far, in order.
func (e *scriptedEngine) callLog() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

// dialed returns the number of probe dials to container id so far.
func (e *scriptedEngine) dialed(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dials[id]
}

// waitDialed waits until container id's port was dialled n times.
func (e *scriptedEngine) waitDialed(t testing.TB, id string, n int) {
	t.Helper()
	e.waitFor(t, fmt.Sprintf("dial %d of %s", n, id), func() bool { return e.dials[id] >= n })
}

// waitInspected waits until id was inspected and returns every inspection
// of a container the engine knows so far.
func (e *scriptedEngine) waitInspected(t *testing.T, id string) []string {
	t.Helper()
	var got []string
	e.waitFor(t, "inspection of "+id, func() bool {
		got = got[:0]
		for _, c := range e.calls {
			if g, ok := strings.CutPrefix(c, "ContainerInspect "); ok && (e.containers[g] != nil || g == "unlabelled") {
				got = append(got, g)
			}
		}
		return slices.Contains(got, id)
	})
	return got
}

// event returns a container event of id as the engine sends it: its name
// and labels as attributes, plus attrs ("signal=15").
func (e *scriptedEngine) event(id, action string, attrs ...string) events.Message {
	e.mu.Lock()
	var labels map[string]string
	if c := e.containers[id]; c != nil {
		labels = c.labels
	}
	e.mu.Unlock()
	m := containerEvent(id, action, labels)
	for _, kv := range attrs {
		k, v, _ := strings.Cut(kv, "=")
		m.Actor.Attributes[k] = v
	}
	return m
}

// networkEvent returns a connect or disconnect of container id to or from
// network net.
func networkEvent(id, action, net string) events.Message {
	return events.Message{Type: events.NetworkEventType, Action: events.Action(action),
		Actor: events.Actor{ID: net + "netid", Attributes: map[string]string{"name": net, "container": id}}}
}

func containerEvent(id, action string, labels map[string]string) events.Message {
	attrs := map[string]string{"name": id}
	for k, v := range labels {
		attrs[k] = v
	}
	return events.Message{Type: events.ContainerEventType, Action: events.Action(action),
		Actor: events.Actor{ID: id, Attributes: attrs}}
}

// TestOtherContainersCostNothing: the events of containers that are not
// backends of this network (no enable label; or labelled but on another
// network, once seen) are judged from the event alone, so that their churn
// never holds up an event of a backend behind an engine request.
func TestOtherContainersCostNothing(t *testing.T) {
	e := newScriptedEngine()
	startMachine(t, e) // the containers below start after the first sync
	lbl := map[string]string{"lb.enable": "true", "lb.port": "8080"}
	e.add("elsewhere", lbl, "other")
	e.add("ours", lbl, "web")
	e.add("marker1", lbl, "web")
	e.add("marker2", lbl, "web")
	send := func(msg events.Message) { e.send(t, msg) }

	for _, a := range []string{"create", "start", "health_status: healthy", "unpause", "restart", "rename", "kill", "die", "destroy"} {
		send(containerEvent("unlabelled", a, map[string]string{"com.example": "x"}))
	}
	send(events.Message{Type: events.NetworkEventType, Action: "connect",
		Actor: events.Actor{ID: "othernetid", Attributes: map[string]string{"name": "other", "container": "elsewhere"}}})
	for _, a := range []string{"start", "unpause", "health_status: healthy", "restart"} {
		send(containerEvent("elsewhere", a, lbl))
	}
	send(containerEvent("marker1", "start", lbl))
	if got := e.waitInspected(t, "marker1"); !equalStrings(got, []string{"elsewhere", "marker1"}) {
		t.Errorf("inspected %v, want [elsewhere marker1]: only the first event of the labelled container on another network", got)
	}

	// Connected to our network, it is a candidate again.
	send(events.Message{Type: events.NetworkEventType, Action: "connect",
		Actor: events.Actor{ID: "webnetid", Attributes: map[string]string{"name": "web", "container": "elsewhere"}}})
	send(containerEvent("marker2", "start", lbl))
	if got := e.waitInspected(t, "marker2"); !equalStrings(got, []string{"elsewhere", "marker1", "elsewhere", "marker2"}) {
		t.Errorf("inspected %v, want elsewhere inspected again after its connect to the network", got)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLostEngine tells the engine's answers from failures to get one.
func TestLostEngine(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"not found", ctx, cerrdefs.ErrNotFound, false},
		{"engine error", ctx, errors.New("Error response from daemon: boom"), false},
		{"timeout", ctx, context.DeadlineExceeded, true},
		{"cut mid-answer", ctx, fmt.Errorf("decode: %w", io.ErrUnexpectedEOF), true},
		{"refused", ctx, &net.OpError{Op: "dial", Net: "unix", Err: syscall.ECONNREFUSED}, true},
		{"shutting down", cancelled, cerrdefs.ErrNotFound, true},
	} {
		if got := lostEngine(tc.ctx, tc.err); got != tc.want {
			t.Errorf("%s: lostEngine(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
