package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"

	"github.com/wharflb/wharf/lb"
)

// scriptedEngine is an Engine whose events the test sends and whose
// containers it describes; it counts the inspections. Only the event
// filtering of the Watcher is tested with it: everything else is tested
// on the real engine.
type scriptedEngine struct {
	msgs chan events.Message

	mu         sync.Mutex
	containers map[string]container.InspectResponse
	inspected  []string
	notify     chan struct{}
}

func newScriptedEngine() *scriptedEngine {
	return &scriptedEngine{
		msgs:       make(chan events.Message),
		containers: map[string]container.InspectResponse{},
		notify:     make(chan struct{}, 1),
	}
}

func (e *scriptedEngine) Info(context.Context) (system.Info, error) {
	return system.Info{SystemTime: time.Now().Format(time.RFC3339Nano)}, nil
}

func (e *scriptedEngine) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	return e.msgs, make(chan error)
}

func (e *scriptedEngine) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return nil, nil
}

func (e *scriptedEngine) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inspected = append(e.inspected, id)
	select {
	case e.notify <- struct{}{}:
	default:
	}
	c, ok := e.containers[id]
	if !ok {
		return c, cerrdefs.ErrNotFound
	}
	return c, nil
}

func (e *scriptedEngine) NetworkInspect(context.Context, string, network.InspectOptions) (network.Inspect, error) {
	return network.Inspect{Name: "web", ID: "webnetid"}, nil
}

func (e *scriptedEngine) ClientVersion() string { return "1.41" }
func (e *scriptedEngine) DaemonHost() string    { return "scripted" }

// add describes a running container with labels on network net.
func (e *scriptedEngine) add(id string, labels map[string]string, net string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.containers[id] = container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: id, Name: "/" + id,
			State: &container.State{Status: container.StateRunning, Running: true}},
		Config: &container.Config{Labels: labels},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			net: {NetworkID: net + "netid", IPAddress: "127.0.0.1"},
		}},
	}
}

// waitInspected waits until id was inspected and returns every inspection
// so far.
func (e *scriptedEngine) waitInspected(t *testing.T, id string) []string {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		var got []string
		for _, g := range e.inspected {
			if _, ok := e.containers[g]; ok || g == "unlabelled" {
				got = append(got, g)
			}
		}
		e.mu.Unlock()
		for _, g := range got {
			if g == id {
				return got
			}
		}
		select {
		case <-e.notify:
		case <-deadline.C:
			t.Fatalf("%s never inspected; inspected %v", id, got)
		}
	}
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
	lbl := map[string]string{"lb.enable": "true", "lb.port": "8080"}
	e.add("elsewhere", lbl, "other")
	e.add("ours", lbl, "web")
	e.add("marker1", lbl, "web")
	e.add("marker2", lbl, "web")
	w := New(e, Config{Network: "web"}, func([]lb.Backend) {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	send := func(m events.Message) {
		select {
		case e.msgs <- m:
		case <-time.After(10 * time.Second):
			t.Fatal("the watcher does not read its events")
		}
	}

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
