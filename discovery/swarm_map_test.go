package discovery

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/wharflb/wharf/lb"
)

// The services and tasks of testdata/swarm, recorded from a real swarm.
const (
	fixWeb       = "gy2b10pjprub9ybpbp5selnhh" // dnsrr, lb.* on the service
	fixWrong     = "jlemvsbh9qkree9oc5i072x1i" // lb.* on the containers
	fixPublished = "gic8a0zniqdy0yizfgu452hro" // VIP, publishes 6969 as 8080
	fixNetID     = "sbbq36silnhze1z2flqs0u7c0" // the web overlay
	fixIngressID = "nu65n295fespksqdz5b3w1kpy"
	fixNode1     = "y958tn5sc1eybl099bi1gkci1"
)

func loadJSON[T any](t testing.TB, name string) T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "swarm", name))
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return v
}

func fixServices(t testing.TB, name string) map[string]swarm.Service {
	m := map[string]swarm.Service{}
	for _, s := range loadJSON[[]swarm.Service](t, name) {
		m[s.ID] = s
	}
	return m
}

func TestMapServiceFixtures(t *testing.T) {
	svcs := fixServices(t, "services.json")
	web := MapService(svcs[fixWeb], "lb")
	if web.Status != Routable || web.Port != 6969 || web.Peer.Weight != 5 || web.Peer.Service != "default" || web.Name != "web" {
		t.Errorf("web: %+v", web)
	}
	wrong := MapService(svcs[fixWrong], "lb")
	if wrong.Status != Invalid {
		t.Fatalf("wrong: status %v, want invalid", wrong.Status)
	}
	for _, w := range []string{"service wrong", "on its containers", "deploy.labels", "--label on docker service create"} {
		if !strings.Contains(wrong.Err.Error(), w) {
			t.Errorf("wrong: error %q does not say %q", wrong.Err, w)
		}
	}
	pub := MapService(svcs[fixPublished], "lb")
	if pub.Status != Routable || pub.Port != 6969 {
		t.Errorf("published: %+v", pub)
	}
	upd := fixServices(t, "services-updated.json")[fixWeb]
	if r := MapService(upd, ""); r.Updating || r.Status != Routable {
		t.Errorf("completed update: %+v", r)
	}
	upd.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateUpdating}
	if r := MapService(upd, ""); !r.Updating {
		t.Errorf("updating service not marked so: %+v", r)
	}
}

// svcWith returns a service named name with spec labels.
func svcWith(name string, labels map[string]string, ports ...uint32) swarm.Service {
	s := swarm.Service{ID: name + "-id"}
	s.Spec.Name = name
	s.Spec.Labels = labels
	s.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{}
	if len(ports) > 0 {
		s.Spec.EndpointSpec = &swarm.EndpointSpec{}
		for _, p := range ports {
			s.Spec.EndpointSpec.Ports = append(s.Spec.EndpointSpec.Ports, swarm.PortConfig{Protocol: "tcp", TargetPort: p, PublishedPort: p + 1000})
		}
	}
	return s
}

func TestMapServiceCases(t *testing.T) {
	for _, tc := range []struct {
		name   string
		svc    swarm.Service
		status Status
		port   int
		errHas []string
	}{
		{"no labels", svcWith("a", nil), Ignored, 0, nil},
		{"disabled", svcWith("a", map[string]string{"lb.enable": "false", "lb.port": "80"}), Ignored, 0, nil},
		{"port missing", svcWith("api", map[string]string{"lb.enable": "true"}), Invalid, 0,
			[]string{"service api", "no label lb.port", "publishes no port", "deploy.labels"}},
		{"port from the one published", svcWith("a", map[string]string{"lb.enable": "true"}, 8080), Routable, 8080, nil},
		{"two published", svcWith("a", map[string]string{"lb.enable": "true"}, 8080, 9090), Invalid, 0,
			[]string{"service a", "2 target ports (8080, 9090)", "lb.port"}},
		{"bad weight", svcWith("api", map[string]string{"lb.enable": "true", "lb.port": "80", "lb.weight": "abc"}), Invalid, 0,
			[]string{"service api", `lb.weight="abc"`}},
		{"bad port", svcWith("api", map[string]string{"lb.enable": "true", "lb.port": "http"}), Invalid, 0,
			[]string{"service api", `lb.port="http"`}},
		{"label port wins", svcWith("a", map[string]string{"lb.enable": "yes", "lb.port": "81"}, 8080), Routable, 81, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := MapService(tc.svc, "lb")
			if r.Status != tc.status || r.Port != tc.port {
				t.Fatalf("status %v port %d (%v), want %v %d", r.Status, r.Port, r.Err, tc.status, tc.port)
			}
			for _, w := range tc.errHas {
				if r.Err == nil || !strings.Contains(r.Err.Error(), w) {
					t.Errorf("error %v does not say %q", r.Err, w)
				}
			}
			if strings.Contains(tc.name, "bad") {
				var le *LabelError
				if !errors.As(r.Err, &le) {
					t.Errorf("no *LabelError in %v", r.Err)
				}
			}
		})
	}
	// The misplaced labels under another prefix.
	s := svcWith("w", nil)
	s.Spec.TaskTemplate.ContainerSpec.Labels = map[string]string{"edge.enable": "true"}
	if r := MapService(s, "edge"); r.Status != Invalid || !strings.Contains(r.Err.Error(), "--label-add edge.enable=true w") {
		t.Errorf("misplaced edge labels: %v %v", r.Status, r.Err)
	}
	if r := MapService(s, "lb"); r.Status != Ignored {
		t.Errorf("other prefix's labels: %v", r.Status)
	}
}

func TestMapTaskFixtures(t *testing.T) {
	svcs := fixServices(t, "services.json")
	mapped := map[string]ServiceResult{}
	for id, s := range svcs {
		mapped[id] = MapService(s, "lb")
	}
	type want struct {
		status Status
		addr   string
	}
	for _, tc := range []struct {
		file string
		want map[string]want // by task ID prefix; tasks of web and published only
	}{
		{"tasks-running.json", map[string]want{
			"b4x177sjm9": {Routable, "10.0.1.4:6969"},
			"n6wvggiz2a": {Routable, "10.0.1.2:6969"},
			"trcyncvp96": {Routable, "10.0.1.3:6969"},
			"yliqvqq4bi": {Routable, "10.0.1.7:6969"}, // never the ingress 10.0.0.6
		}},
		{"tasks-updating.json", map[string]want{
			"9dmyh1fboy": {Unready, ""}, // pending, desired ready
			"b4x177sjm9": {Routable, "10.0.1.4:6969"},
			"n6wvggiz2a": {Unready, ""}, // running, desired shutdown
			"trcyncvp96": {Routable, "10.0.1.3:6969"},
		}},
		{"tasks-updated.json", map[string]want{
			"9dmyh1fboy": {Routable, "10.0.1.11:6969"},
			"b4x177sjm9": {Unready, ""},
			"n6wvggiz2a": {Unready, ""},
			"owd2i5vgpq": {Routable, "10.0.1.12:6969"},
			"s3rie48ndk": {Routable, "10.0.1.13:6969"},
			"trcyncvp96": {Unready, ""},
		}},
		{"tasks-scaled-down.json", map[string]want{
			"9dmyh1fboy": {Routable, "10.0.1.11:6969"},
			"owd2i5vgpq": {Routable, "10.0.1.12:6969"},
			"s3rie48ndk": {Unready, ""}, // running, desired remove
			"b4x177sjm9": {Unready, ""}, "n6wvggiz2a": {Unready, ""}, "trcyncvp96": {Unready, ""},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			seen := 0
			for _, task := range loadJSON[[]swarm.Task](t, tc.file) {
				svc := mapped[task.ServiceID]
				if svc.Status != Routable {
					continue
				}
				w, ok := tc.want[task.ID[:10]]
				if !ok {
					t.Errorf("task %s not expected", task.ID)
					continue
				}
				seen++
				for _, ref := range []string{"web", fixNetID, fixNetID[:12]} {
					r := MapTask(task, svc, ref, false)
					if r.Status != w.status || r.Backend.Addr != w.addr {
						t.Errorf("task %s on %s: %v %q (%s), want %v %q", task.ID, ref, r.Status, r.Backend.Addr, r.Reason, w.status, w.addr)
					}
					if r.Backend.ID != task.ID || !r.Backend.Started.Equal(task.Status.Timestamp) {
						t.Errorf("task %s: backend %+v", task.ID, r.Backend)
					}
					if want := svc.Name + "." + strconv.Itoa(task.Slot); r.Backend.Name != want {
						t.Errorf("task %s: name %q, want %q", task.ID, r.Backend.Name, want)
					}
				}
				if r := MapTask(task, svc, "ingress", false); r.Status != Ignored {
					t.Errorf("task %s on ingress: %v, want ignored", task.ID, r.Status)
				}
				if r := MapTask(task, svc, fixIngressID, false); r.Status != Ignored {
					t.Errorf("task %s on the ingress ID: %v, want ignored", task.ID, r.Status)
				}
				if r := MapTask(task, svc, "web", true); r.Status == Routable {
					t.Errorf("task %s on a down node routed", task.ID)
				}
			}
			if seen != len(tc.want) {
				t.Errorf("mapped %d tasks, want %d", seen, len(tc.want))
			}
		})
	}
}

func TestMapTaskCases(t *testing.T) {
	svc := MapService(svcWith("api", map[string]string{"lb.enable": "true", "lb.port": "80", "lb.weight": "3"}), "lb")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task := func(change func(*swarm.Task)) swarm.Task {
		tk := swarm.Task{ID: "t1", ServiceID: svc.ID, NodeID: "n1", Slot: 2, DesiredState: swarm.TaskStateRunning}
		tk.Status = swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: at}
		tk.NetworksAttachments = []swarm.NetworkAttachment{{Addresses: []string{"10.0.9.7/24"}}}
		tk.NetworksAttachments[0].Network.ID = "netid0123456789"
		tk.NetworksAttachments[0].Network.Spec.Name = "app"
		if change != nil {
			change(&tk)
		}
		return tk
	}
	r := MapTask(task(nil), svc, "app", false)
	if r.Status != Routable || r.Backend.Addr != "10.0.9.7:80" || r.Backend.Name != "api.2" ||
		r.Backend.Weight != 3 || r.Backend.Service != "default" || r.Backend.Network != "tcp" || !r.Backend.Started.Equal(at) ||
		r.Backend.Task != (lb.Task{Node: "n1", Slot: 2, State: "running", DesiredState: "running"}) {
		t.Errorf("running task: %+v", r)
	}
	for _, tc := range []struct {
		name   string
		change func(*swarm.Task)
		status Status
	}{
		{"starting", func(tk *swarm.Task) { tk.Status.State = swarm.TaskStateStarting }, Unready},
		{"desired shutdown", func(tk *swarm.Task) { tk.DesiredState = swarm.TaskStateShutdown }, Unready},
		{"no address", func(tk *swarm.Task) { tk.NetworksAttachments[0].Addresses = nil }, Invalid},
		{"other network", func(tk *swarm.Task) { tk.NetworksAttachments[0].Network.Spec.Name = "db" }, Ignored},
		{"only ingress", func(tk *swarm.Task) { tk.NetworksAttachments[0].Network.Spec.Ingress = true }, Ignored},
	} {
		if r := MapTask(task(tc.change), svc, "app", false); r.Status != tc.status {
			t.Errorf("%s: %v (%s), want %v", tc.name, r.Status, r.Reason, tc.status)
		}
	}
	if r := MapTask(task(nil), svc, "netid0123456", false); r.Status != Routable {
		t.Errorf("by ID prefix: %v", r.Status)
	}
	if r := MapTask(task(nil), svc, "app", true); r.Status != Unready || !strings.Contains(r.Reason, "down") {
		t.Errorf("node down: %v %q", r.Status, r.Reason)
	}
	g := svcWith("monitor", map[string]string{"lb.enable": "true", "lb.port": "80"})
	g.Spec.Mode.Global = &swarm.GlobalService{}
	if r := MapTask(task(func(tk *swarm.Task) { tk.Slot = 0 }), MapService(g, ""), "app", false); r.Backend.Name != "monitor.n1" {
		t.Errorf("global task named %q, want monitor.n1", r.Backend.Name)
	}
}
