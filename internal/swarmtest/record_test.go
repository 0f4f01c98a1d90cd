package swarmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/wharflb/wharf/internal/dockertest"
)

// recordEnv turns TestRecordFixtures on.
const recordEnv = "WHARF_RECORD_SWARM"

// fixtureDir is where TestRecordFixtures writes, from this package's
// directory.
const fixtureDir = "../../testdata/swarm"

// TestRecordFixtures regenerates testdata/swarm from a real three-node
// swarm (one manager), for the pure mapping tests of the Swarm source:
//
//	WHARF_RECORD_SWARM=1 go test -run TestRecordFixtures ./internal/swarmtest/
//
// It records the engine's own JSON (pretty-printed, not decoded and
// encoded again, so that fields the Go types do not know are kept) of:
// /info of a manager and of a worker; /nodes; /networks of swarm scope;
// /services with "web" (routing labels in Spec.Labels, as compose's
// deploy.labels puts them), "wrong" (the same labels on the container
// spec, where they do not belong) and "published" (a port published
// through the ingress network); the tasks of all of them running, of
// "web" during a rolling update (old tasks desired shutdown while still
// running) and after it, and of "web" scaled down (desired remove); and
// the service and node events of all that, one JSON object a line.
func TestRecordFixtures(t *testing.T) {
	if os.Getenv(recordEnv) != "1" {
		t.Skipf("set %s=1 to record testdata/swarm from a real swarm", recordEnv)
	}
	img := dockertest.WebtestImage(t, dockertest.Require(t))
	sw := Start(t, Options{Nodes: 3, Managers: 1})
	sw.LoadImage(img)
	const nw = "web"
	sw.CreateOverlay(nw, true)

	mgr, worker := sw.Manager(), sw.Node(3)
	api := newRawAPI(t, mgr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Events are read from before the first service exists.
	evs := api.events(ctx, `{"type":["service","node"]}`)

	cli := mgr.Client
	create := func(spec swarm.ServiceSpec) {
		t.Helper()
		if _, err := cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{QueryRegistry: false}); err != nil {
			t.Fatalf("create service %s: %v", spec.Name, err)
		}
	}
	replicas := func(n uint64) swarm.ServiceMode {
		return swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}}
	}
	lbLabels := map[string]string{"lb.enable": "true", "lb.port": "6969", "lb.weight": "5"}
	onNet := []swarm.NetworkAttachmentConfig{{Target: nw}}
	create(swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "web", Labels: lbLabels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: img, Labels: map[string]string{"role": "backend"}},
			Networks:      onNet,
		},
		Mode:         replicas(3),
		UpdateConfig: &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStopFirst},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	})
	create(swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "wrong"},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: img, Labels: lbLabels},
			Networks:      onNet,
		},
		Mode:         replicas(1),
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	})
	create(swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "published", Labels: map[string]string{"lb.enable": "true", "lb.port": "6969"}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: img},
			Networks:      onNet,
		},
		Mode: replicas(1),
		EndpointSpec: &swarm.EndpointSpec{Ports: []swarm.PortConfig{{
			Protocol: swarm.PortConfigProtocolTCP, TargetPort: 6969, PublishedPort: 8080,
			PublishMode: swarm.PortConfigPublishModeIngress,
		}}},
	})
	sw.WaitTasks("web", 3, time.Minute)
	sw.WaitTasks("wrong", 1, time.Minute)
	sw.WaitTasks("published", 1, time.Minute)

	files := map[string][]byte{}
	files["info-manager.json"] = api.get(ctx, "/info")
	files["info-worker.json"] = newRawAPI(t, worker).get(ctx, "/info")
	files["services.json"] = api.get(ctx, "/services")
	files["tasks-running.json"] = api.get(ctx, "/tasks?filters="+url.QueryEscape(`{"desired-state":["running"]}`))
	files["networks.json"] = api.get(ctx, "/networks?filters="+url.QueryEscape(`{"scope":["swarm"]}`))

	// A rolling update, one task at a time, stop-first: the old task is
	// told to shut down while it still runs, then stopped.
	web, _, err := cli.ServiceInspectWithRaw(ctx, "web", swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := web.Spec
	spec.TaskTemplate.ForceUpdate++
	if _, err := cli.ServiceUpdate(ctx, web.ID, web.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	webTasks := "/tasks?filters=" + url.QueryEscape(`{"service":["web"]}`)
	files["tasks-updating.json"] = pollGet(ctx, api, webTasks, func(tasks []swarm.Task) bool {
		for _, task := range tasks {
			if task.DesiredState == swarm.TaskStateShutdown && task.Status.State == swarm.TaskStateRunning {
				return true
			}
		}
		return false
	})
	pollGet(ctx, api, "/services/web", func(svc swarm.Service) bool {
		return svc.UpdateStatus != nil && svc.UpdateStatus.State == swarm.UpdateStateCompleted
	})
	files["services-updated.json"] = api.get(ctx, "/services")
	files["tasks-updated.json"] = api.get(ctx, webTasks)

	// Scaling down tells the surplus task to go away: desired "remove".
	web, _, err = cli.ServiceInspectWithRaw(ctx, "web", swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec = web.Spec
	two := uint64(2)
	spec.Mode.Replicated.Replicas = &two
	if _, err := cli.ServiceUpdate(ctx, web.ID, web.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	files["tasks-scaled-down.json"] = pollGet(ctx, api, webTasks, func(tasks []swarm.Task) bool {
		for _, task := range tasks {
			if task.DesiredState == swarm.TaskStateRemove {
				return true
			}
		}
		return false
	})

	// Node events: a label and an availability change on a worker.
	n, _, err := cli.NodeInspectWithRaw(ctx, worker.Name)
	if err != nil {
		t.Fatal(err)
	}
	nspec := n.Spec
	nspec.Labels = map[string]string{"zone": "b"}
	nspec.Availability = swarm.NodeAvailabilityPause
	if err := cli.NodeUpdate(ctx, n.ID, n.Version, nspec); err != nil {
		t.Fatal(err)
	}
	files["nodes.json"] = api.get(ctx, "/nodes")
	n, _, err = cli.NodeInspectWithRaw(ctx, worker.Name)
	if err != nil {
		t.Fatal(err)
	}
	nspec = n.Spec
	nspec.Availability = swarm.NodeAvailabilityActive
	if err := cli.NodeUpdate(ctx, n.ID, n.Version, nspec); err != nil {
		t.Fatal(err)
	}

	if err := cli.ServiceRemove(ctx, "wrong"); err != nil {
		t.Fatal(err)
	}
	// The remove event is the last one asked for; wait for it.
	got := evs.waitFor(t, func(ev map[string]any) bool {
		actor, _ := ev["Actor"].(map[string]any)
		attrs, _ := actor["Attributes"].(map[string]any)
		return ev["Type"] == "service" && ev["Action"] == "remove" && attrs["name"] == "wrong"
	})
	var svcEvents, nodeEvents bytes.Buffer
	for _, line := range got {
		var ev struct{ Type string }
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case "service":
			svcEvents.Write(line)
			svcEvents.WriteByte('\n')
		case "node":
			nodeEvents.Write(line)
			nodeEvents.WriteByte('\n')
		}
	}
	files["events-service.jsonl"] = svcEvents.Bytes()
	files["events-node.jsonl"] = nodeEvents.Bytes()

	if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b := files[name]
		if !strings.HasSuffix(name, ".jsonl") {
			var out bytes.Buffer
			if err := json.Indent(&out, b, "", "  "); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out.WriteByte('\n')
			b = out.Bytes()
		}
		if err := os.WriteFile(filepath.Join(fixtureDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", filepath.Join("testdata/swarm", name), len(b))
	}
}

// rawAPI reads the Engine API of a node as raw JSON, at the version the
// node's client negotiated.
type rawAPI struct {
	t       *testing.T
	hc      *http.Client
	version string
}

func newRawAPI(t *testing.T, n *Node) *rawAPI {
	return &rawAPI{
		t: t,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", n.Socket)
			},
		}},
		version: n.Client.ClientVersion(),
	}
}

func (a *rawAPI) do(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://engine/v"+a.version+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return resp, nil
}

func (a *rawAPI) get(ctx context.Context, path string) []byte {
	a.t.Helper()
	resp, err := a.do(ctx, path)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	return b
}

// pollGet gets path until its answer, decoded into a T, satisfies ok, and
// returns that answer. It reads every 20 ms, to catch short-lived states.
func pollGet[T any](ctx context.Context, a *rawAPI, path string, ok func(T) bool) []byte {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		b := a.get(ctx, path)
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			a.t.Fatalf("GET %s: %v", path, err)
		}
		if ok(v) {
			return b
		}
		select {
		case <-ctx.Done():
			a.t.Fatalf("GET %s: the awaited state did not come: %v\n%s", path, ctx.Err(), b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// eventLog collects the lines of an /events stream.
type eventLog struct {
	mu    sync.Mutex
	lines [][]byte
	more  chan struct{} // signalled on every new line
	err   error
}

func (a *rawAPI) events(ctx context.Context, filters string) *eventLog {
	a.t.Helper()
	resp, err := a.do(ctx, "/events?filters="+url.QueryEscape(filters))
	if err != nil {
		a.t.Fatal(err)
	}
	l := &eventLog{more: make(chan struct{}, 1)}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, append([]byte(nil), sc.Bytes()...))
			l.mu.Unlock()
			select {
			case l.more <- struct{}{}:
			default:
			}
		}
		l.mu.Lock()
		l.err = sc.Err()
		l.mu.Unlock()
	}()
	return l
}

// waitFor returns the lines up to the first event that satisfies last,
// failing the test when none comes within 30 s.
func (l *eventLog) waitFor(t *testing.T, last func(map[string]any) bool) [][]byte {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		for i, line := range l.lines {
			var ev map[string]any
			if json.Unmarshal(line, &ev) == nil && last(ev) {
				out := l.lines[:i+1]
				l.mu.Unlock()
				return out
			}
		}
		n, err := len(l.lines), l.err
		l.mu.Unlock()
		select {
		case <-l.more:
		case <-timeout:
			t.Fatalf("events: the last awaited event did not come in 30 s (%d events, stream error %v)", n, err)
		}
	}
}
