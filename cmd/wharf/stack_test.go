package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/faultproxy"
	"github.com/wharflb/wharf/internal/loadgen"
	"github.com/wharflb/wharf/internal/swarmtest"
	"github.com/wharflb/wharf/internal/testutil"
)

// loadClients is how many keep-alive clients ask through wharf during the
// swarm scenarios, as the chaos suite does.
const loadClients = 8

// TestSwarmStackFile deploys compose/stack.yml with `docker stack deploy`
// on the manager of a real three-node swarm, as the README says, checks
// that the three webtest tasks answer through wharf on the manager's port
// 10000, then runs the changes a swarm goes through while eight keep-alive
// clients (internal/loadgen, inside the manager node's network namespace)
// keep asking, and records every request: rolling updates both ways, an
// image change, scaling, a drained node, another service coming and
// going, wharf's engine connection lost and regained, and a worker cut
// off. No request may fail, except, when the worker is cut off, those in
// flight on its tasks at that moment. It also reports how soon a task
// that reached running gets its first request, and checks wharf's helpful
// errors for a --network it is not attached to and a local --network.
//
// The one change to the file is the engine socket mounted into wharf: the
// swarm's engine listens on a socket of its own, not the machine's, and
// wharf reaches it through a proxy that can refuse it.
func TestSwarmStackFile(t *testing.T) {
	cli := dockertest.Require(t)
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal("the docker CLI is needed for docker stack deploy")
	}
	web := dockertest.WebtestImage(t, cli)
	// A second webtest image, differing from the first by its config, for
	// the image change.
	web2 := dockertest.BuildImage(t, cli, "webtest", dockertest.ImageOptions{
		Expose: []string{dockertest.WebtestPort}, Env: []string{"WEBTEST_IMAGE=2"}})
	wharf := dockertest.BuildImage(t, cli, "wharf", dockertest.ImageOptions{})
	sw := swarmtest.Start(t, swarmtest.Options{Nodes: 3, Managers: 1})
	for _, img := range []string{web, web2, wharf} {
		sw.LoadImage(img)
	}
	mgr := sw.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// The images the stack file names, as make images builds them, and
	// the second one.
	for _, n := range sw.Nodes {
		for src, dst := range map[string]string{web: "wharf-webtest:demo", web2: "wharf-webtest:demo2", wharf: "wharf:demo"} {
			if err := n.Client.ImageTag(ctx, src, dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	i1, err1 := mgr.Client.ImageInspect(ctx, "wharf-webtest:demo")
	i2, err2 := mgr.Client.ImageInspect(ctx, "wharf-webtest:demo2")
	if err1 != nil || err2 != nil || i1.ID == i2.ID {
		t.Fatalf("the two webtest images: %v, %v, IDs %s and %s: want two different images", err1, err2, i1.ID, i2.ID)
	}

	var st syscall.Stat_t
	if err := syscall.Stat(mgr.Socket, &st); err != nil {
		t.Fatal(err)
	}
	engine := newEngineProxy(t, mgr.Socket, int(st.Gid))

	stack, err := os.ReadFile("../../compose/stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	const sock = "/var/run/docker.sock:/var/run/docker.sock:ro"
	if !strings.Contains(string(stack), sock) {
		t.Fatalf("compose/stack.yml does not mount %s", sock)
	}
	file := filepath.Join(t.TempDir(), "stack.yml")
	os.WriteFile(file, []byte(strings.Replace(string(stack), sock, engine.dir+":/var/run:ro", 1)), 0o644)
	deploy := exec.CommandContext(ctx, docker, "-H", "unix://"+mgr.Socket, "stack", "deploy", "--resolve-image", "never", "-c", file, "wharf")
	deploy.Env = append(os.Environ(), "DOCKER_GID="+strconv.Itoa(int(st.Gid)))
	if out, err := deploy.CombinedOutput(); err != nil {
		t.Fatalf("docker stack deploy: %v\n%s", err, out)
	}
	tasks := sw.WaitTasks("wharf_webtest", 3, 2*time.Minute)
	wharfTask := sw.WaitTasks("wharf_wharf", 1, 2*time.Minute)[0]
	want := map[string]bool{}
	for _, task := range tasks {
		want[task.Status.ContainerStatus.ContainerID[:12]] = true
	}

	hc := mgr.HTTPClient()
	entry := netip.AddrPortFrom(mgr.Addr, 10000).String()
	everyTaskAnswers(t, hc, entry, want)

	wharfLog := &containerLog{cli: mgr.Client, id: wharfTask.Status.ContainerStatus.ContainerID}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("wharf's log:\n%s", wharfLog.text())
		}
	})
	admin, err := mgr.ContainerHTTPClient(ctx, wharfLog.id)
	if err != nil {
		t.Fatal(err)
	}
	webSvc, _, err := mgr.Client.ServiceInspectWithRaw(ctx, "wharf_webtest", swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodeIndex := map[string]int{} // node ID → index in sw.Nodes, from 1
	for _, n := range sw.Nodes {
		info, err := n.Client.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nodeIndex[info.Swarm.NodeID] = n.Index
	}
	seen := watchTasks(t, mgr.Client, webSvc.ID)

	// Eight keep-alive clients ask from inside the manager's namespace
	// through every scenario; each request is recorded.
	loadStart := time.Now()
	run, err := loadgen.Start(loadgen.Config{Addr: entry, Target: "/webtest?action=get_uuid", Concurrency: loadClients,
		Duration: 10 * time.Minute, MaxRequests: math.MaxInt32, Timeout: 30 * time.Second, Dial: mgr.Dial})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Stop()

	cliRun := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, docker, append([]string{"-H", "unix://" + mgr.Socket}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// scale scales the webtest service and, growing it, waits until each
	// of its tasks has answered a request: every new task is measured
	// before a later step may remove it.
	scale := func(n int) {
		t.Helper()
		cliRun("service", "scale", "--detach", "wharf_webtest="+strconv.Itoa(n))
		tasks := sw.WaitTasks("wharf_webtest", n, 2*time.Minute)
		for _, task := range tasks {
			host := task.Status.ContainerStatus.ContainerID[:12]
			if !run.WaitAnswer(host, time.Time{}, 30*time.Second) {
				t.Fatalf("task %s (%s) reached running but answered no request within 30 s", task.ID, host)
			}
		}
	}
	// everyTaskServes waits until each running webtest task answered a
	// request sent after since.
	everyTaskServes := func(n int, since time.Time) {
		t.Helper()
		for _, task := range sw.WaitTasks("wharf_webtest", n, 2*time.Minute) {
			host := task.Status.ContainerStatus.ContainerID[:12]
			if !run.WaitAnswer(host, since, 30*time.Second) {
				t.Fatalf("task %s (%s) answered no request within 30 s", task.ID, host)
			}
		}
	}

	var (
		outageFrom, outageTo time.Time // wharf without its engine, until it had resynced
		cut                  nodeCut
	)
	node2 := sw.Node(2).Name
	scenarios := []*swarmScenario{
		{name: "rolling update, start-first", do: func() {
			cliRun("service", "update", "--force", "--no-resolve-image", "--detach=false", "wharf_webtest")
		}},
		{name: "rolling update, stop-first", do: func() {
			cliRun("service", "update", "--force", "--no-resolve-image", "--update-order", "stop-first", "--detach=false", "wharf_webtest")
		}},
		{name: "image change, start-first", do: func() {
			at := time.Now()
			// Start-first again (the stop-first update above changed
			// the service's order), which is also the faster.
			cliRun("service", "update", "--image", "wharf-webtest:demo2", "--update-order", "start-first", "--no-resolve-image",
				"--detach=false", "wharf_webtest")
			for _, task := range sw.WaitTasks("wharf_webtest", 3, 2*time.Minute) {
				if img := task.Spec.ContainerSpec.Image; img != "wharf-webtest:demo2" {
					t.Errorf("after the image change, task %s runs %s", task.ID, img)
				}
			}
			everyTaskServes(3, at)
		}},
		{name: "scale 3 → 9 → 2 → 9 → 3", do: func() {
			scale(9)
			scale(2)
			scale(9)
			scale(3)
		}},
		{name: "drain a worker, then active", do: func() {
			cliRun("node", "update", "--availability", "drain", node2)
			sw.WaitTasks("wharf_webtest", 3, 2*time.Minute)
			cliRun("node", "update", "--availability", "active", node2)
		}},
		{name: "another service created and removed", do: func() {
			cliRun("service", "create", "--detach=false", "--name", "other", "--network", "webtest", "--endpoint-mode", "dnsrr",
				"--no-resolve-image", "--label", "lb.enable=true", "--label", "lb.port=6969", "--label", "lb.service=other",
				"--replicas", "2", "wharf-webtest:demo")
			cliRun("service", "rm", "other")
		}},
		{name: "wharf's engine lost, scaled, regained", do: func() {
			// The engine refuses wharf (as when it restarts) while the
			// service grows to 5: wharf keeps serving the tasks it
			// knew, and once back it resyncs and routes the new ones.
			lost := []string{`"source":"swarm"`, "serving the last known peers and retrying"}
			outages, resynced := wharfLog.count(lost...), wharfLog.count("reconnected to the Swarm manager; resynced")
			outageFrom = time.Now()
			engine.down()
			wharfLog.wait(t, outages+1, time.Minute, lost...)
			cliRun("service", "scale", "--detach", "wharf_webtest=5")
			sw.WaitTasks("wharf_webtest", 5, 2*time.Minute)
			engine.up(t)
			wharfLog.wait(t, resynced+1, time.Minute, "reconnected to the Swarm manager; resynced")
			outageTo = time.Now()
			everyTaskServes(5, outageTo)
			scale(3)
		}},
		{name: "a worker cut off, then back", do: func() {
			cut = cutWorker(t, sw, admin, nodeIndex)
			// Back: every task, the replacements included, serves.
			everyTaskServes(3, cut.restored)
			cut.recovered = time.Now()
		}, check: func(s *swarmScenario, rs []loadgen.Result) { cut.check(t, s, rs) }},
	}
	judged := false
	defer func() {
		if !judged { // a scenario stopped the test: show what the load saw until then
			judgeScenarios(t, scenarios, run.Stop(), false)
		}
	}()
	for i, s := range scenarios {
		s.from = time.Now()
		if i == 0 {
			s.from = loadStart
		}
		s.do()
		s.took = time.Since(s.from)
	}
	metrics, metricsAt := get(t, admin, "http://127.0.0.1:8080/metrics"), time.Now()
	checkTaskFields(t, get(t, admin, "http://127.0.0.1:8080/api/services"), sw)
	rs := run.Stop()
	judged = true
	judgeScenarios(t, scenarios, rs, true)

	firstRequests(t, seen(), rs, loadStart, outageFrom, outageTo)

	// The load discovery put on the manager, as wharf counts it.
	polls := -1.0
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, "wharf_swarm_polls_total "); ok {
			polls, _ = strconv.ParseFloat(v, 64)
		}
	}
	elapsed := metricsAt.Sub(loadStart)
	if polls <= 0 {
		t.Errorf("wharf_swarm_polls_total %v, want the task polls counted", polls)
	}
	t.Logf("wharf_swarm_polls_total %v over about %s of scenarios (%.1f a second)", polls, elapsed.Round(time.Second), polls/elapsed.Seconds())

	checkHelpfulErrors(t, sw, wharf, int(st.Gid))
}

// judgeScenarios logs, for each scenario that began, the requests sent
// while it ran: sent, failed, worst latency; with judge, it fails t for
// each failed request (or as the scenario's own check says).
func judgeScenarios(t *testing.T, scenarios []*swarmScenario, rs []loadgen.Result, judge bool) {
	t.Helper()
	// Each request belongs to the scenario that ran when it was sent.
	byScenario := make([][]loadgen.Result, len(scenarios))
	for _, r := range rs {
		i := 0
		for j, s := range scenarios {
			if !s.from.IsZero() && !r.Start.Before(s.from) {
				i = j
			}
		}
		byScenario[i] = append(byScenario[i], r)
	}
	for i, s := range scenarios {
		if s.from.IsZero() {
			break
		}
		sum := loadgen.Summarize(byScenario[i])
		t.Logf("swarm %-38s %v  (%s)", s.name, sum, s.took.Round(100*time.Millisecond))
		switch {
		case !judge && sum.Failed > 0:
			t.Logf("first failure: %s", firstFailure(byScenario[i]))
		case !judge:
		case s.check != nil:
			s.check(s, byScenario[i])
		case sum.Failed != 0:
			t.Errorf("%s: %d of %d requests failed; first: %s", s.name, sum.Failed, sum.Sent, firstFailure(byScenario[i]))
		}
	}
}

// checkTaskFields checks that every peer in the /api/services document
// doc is a webtest task that shows its node, slot, state and desired
// state.
func checkTaskFields(t *testing.T, doc string, sw *swarmtest.Swarm) {
	t.Helper()
	var table struct {
		Services []struct {
			Peers []struct {
				Container, Address string
				Task               *struct {
					Node         string
					Slot         int
					State        string
					DesiredState string `json:"desired_state"`
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(doc), &table); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, n := range sw.Nodes {
		nodes[n.Name] = true
	}
	peers := 0
	for _, s := range table.Services {
		for _, p := range s.Peers {
			peers++
			if tk := p.Task; tk == nil || !nodes[tk.Node] || tk.Slot < 1 || tk.State != "running" || tk.DesiredState != "running" ||
				p.Container != "wharf_webtest."+strconv.Itoa(tk.Slot) {
				t.Errorf("/api/services: peer %s at %s shows task %+v, want its node, slot and states", p.Container, p.Address, tk)
			}
		}
	}
	if peers == 0 {
		t.Errorf("/api/services lists no peer: %s", doc)
	}
}

// swarmScenario is one change the swarm goes through under load.
type swarmScenario struct {
	name string
	do   func()
	from time.Time     // when it began; it ran until the next one began
	took time.Duration // how long its changes took
	// check, when set, judges the scenario's requests instead of the
	// rule that none may fail.
	check func(s *swarmScenario, rs []loadgen.Result)
}

func firstFailure(rs []loadgen.Result) string {
	for _, r := range rs {
		if !r.OK() {
			return fmt.Sprintf("%s status %d %s %q", r.Start.Format("15:04:05.000"), r.Status, r.Err, r.Body)
		}
	}
	return ""
}

// engineProxy is the path from wharf to the manager's engine: a
// fault-injecting proxy whose socket lives in a directory of its own,
// mounted into wharf's container as /var/run. The directory is mounted,
// not the socket: bringing the proxy up again makes a new socket file,
// which a mounted file would not follow.
type engineProxy struct {
	dir string
	p   *faultproxy.Proxy
	gid int
}

func newEngineProxy(t *testing.T, upstream string, gid int) *engineProxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "wharf-engine-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.New(filepath.Join(dir, "docker.sock"), "unix", upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e := &engineProxy{dir: dir, p: p, gid: gid}
	e.share(t)
	return e
}

// share gives the socket to the engine socket's group, as wharf's
// container runs with that group only.
func (e *engineProxy) share(t *testing.T) {
	t.Helper()
	if err := os.Chown(e.p.Path(), 0, e.gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.p.Path(), 0o660); err != nil {
		t.Fatal(err)
	}
}

// down cuts wharf's connections to the engine and refuses new ones.
func (e *engineProxy) down() { e.p.Down() }

// up lets wharf connect again.
func (e *engineProxy) up(t *testing.T) {
	t.Helper()
	if err := e.p.Up(); err != nil {
		t.Fatal(err)
	}
	e.share(t)
}

// containerLog reads a container's log from its engine.
type containerLog struct {
	cli *client.Client
	id  string
}

func (l *containerLog) text() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := l.cli.ContainerLogs(ctx, l.id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer rc.Close()
	var b bytes.Buffer
	stdcopy.StdCopy(&b, &b, rc)
	return b.String()
}

// count returns how many lines of the log hold every one of subs.
func (l *containerLog) count(subs ...string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(l.text()))
	sc.Buffer(nil, 1<<20)
lines:
	for sc.Scan() {
		for _, s := range subs {
			if !strings.Contains(sc.Text(), s) {
				continue lines
			}
		}
		n++
	}
	return n
}

// wait waits until n lines of the log hold every one of subs. The engine
// gives no signal of a new line, so it reads the log every 200 ms.
func (l *containerLog) wait(t *testing.T, n int, timeout time.Duration, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for l.count(subs...) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d log lines with %q", timeout, n, subs)
		}
		<-time.After(200 * time.Millisecond) // polling a log that gives no signal
	}
}

// taskSeen is a task of the webtest service as the manager reported it
// running.
type taskSeen struct {
	id, host string
	node     string
	slot     int
	running  time.Time // the task's status timestamp when it ran
}

// watchTasks records, every 200 ms until the test ends, the tasks of
// service that the manager reports running, with the time they reached
// running: tasks removed by a scale-down leave the manager's list, so
// they are read while they exist. It returns what it recorded so far.
func watchTasks(t *testing.T, cli *client.Client, service string) func() map[string]taskSeen {
	var mu sync.Mutex
	seen := map[string]taskSeen{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			c, ccancel := context.WithTimeout(ctx, 10*time.Second)
			list, err := cli.TaskList(c, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", service))})
			ccancel()
			if err == nil {
				mu.Lock()
				for _, task := range list {
					cs := task.Status.ContainerStatus
					if _, ok := seen[task.ID]; ok || task.Status.State != swarm.TaskStateRunning || cs == nil || len(cs.ContainerID) < 12 {
						continue
					}
					seen[task.ID] = taskSeen{id: task.ID, host: cs.ContainerID[:12], node: task.NodeID, slot: task.Slot,
						running: task.Status.Timestamp}
				}
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() map[string]taskSeen {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
}

// firstRequests reports, over the tasks that reached running while the
// load ran, the time from running to the first request each answered (the
// request's send time): p50 and p99. Tasks that ran while wharf had no
// engine connection are left out: they wait for the reconnection by
// design.
func firstRequests(t *testing.T, seen map[string]taskSeen, rs []loadgen.Result, loadStart, outageFrom, outageTo time.Time) {
	t.Helper()
	first := map[string]time.Time{}
	for _, r := range rs { // in the order sent
		if r.OK() {
			if _, ok := first[r.Server]; !ok {
				first[r.Server] = r.Start
			}
		}
	}
	var delays []time.Duration
	var never []string
	for _, task := range seen {
		if task.running.Before(loadStart) || !task.running.Before(outageFrom) && task.running.Before(outageTo) {
			continue
		}
		f, ok := first[task.host]
		if !ok {
			never = append(never, fmt.Sprintf("%s (slot %d, node %s, running %s)", task.host, task.slot, task.node,
				task.running.Format("15:04:05.000")))
			continue
		}
		delays = append(delays, f.Sub(task.running))
	}
	slices.Sort(delays)
	if len(never) > 0 {
		t.Logf("tasks that reached running and answered no request before the load ended (removed, or not reachable yet): %s", strings.Join(never, ", "))
	}
	if len(delays) < 20 {
		t.Errorf("%d tasks measured from running to their first request, want at least 20", len(delays))
		return
	}
	t.Logf("running → first request, over %d tasks: p50 %v  p99 %v  (min %v, max %v)", len(delays),
		percentile(delays, 50).Round(time.Millisecond), percentile(delays, 99).Round(time.Millisecond),
		delays[0].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(i, 0)]
}

// nodeCut is what cutWorker measured.
type nodeCut struct {
	node                  string
	tasks                 int       // webtest tasks on the node
	at, atEnd             time.Time // the cut took effect between these two
	passive, down, gone   time.Time // first task held out by passive health; node marked down; every task out of wharf's table
	restored, recovered   time.Time // the link back; every task serving again
	unackedLimit, maxWait time.Duration
}

// cutWorker cuts off the worker that runs the most webtest tasks, while
// the load runs, and measures how its tasks leave wharf's table (read from
// /api/services every 100 ms through admin): held out by passive health,
// then removed once the manager marks the node down. Then it restores the
// link and waits for the node and three running tasks.
func cutWorker(t *testing.T, sw *swarmtest.Swarm, admin *http.Client, nodeIndex map[string]int) nodeCut {
	t.Helper()
	mgr := sw.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	onNode := map[int][]string{} // node index → its tasks' addresses on the overlay
	for _, task := range sw.WaitTasks("wharf_webtest", 3, 2*time.Minute) {
		for _, a := range task.NetworksAttachments {
			if a.Network.Spec.Name == "webtest" && len(a.Addresses) > 0 {
				ip, _, _ := strings.Cut(a.Addresses[0], "/")
				onNode[nodeIndex[task.NodeID]] = append(onNode[nodeIndex[task.NodeID]], ip+":6969")
			}
		}
	}
	k := 2
	if len(onNode[3]) > len(onNode[2]) {
		k = 3
	}
	addrs := onNode[k]
	if len(addrs) == 0 {
		t.Fatalf("no webtest task on a worker to cut off: %v", onNode)
	}
	var nodeID string
	for id, i := range nodeIndex {
		if i == k {
			nodeID = id
		}
	}
	c := nodeCut{node: sw.Node(k).Name, tasks: len(addrs), unackedLimit: 5 * time.Second}
	// A request may wait for each of the node's tasks in turn, up to the
	// limit on unacknowledged data each, before an answer elsewhere.
	c.maxWait = time.Duration(len(addrs))*c.unackedLimit + 3*time.Second

	c.at = time.Now()
	sw.CutLink(k)
	c.atEnd = time.Now()
	restored := false
	defer func() {
		if !restored {
			sw.RestoreLink(k)
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond) // sampling the table and the node's state
	defer tick.Stop()
	deadline := time.Now().Add(90 * time.Second)
	for c.gone.IsZero() || c.down.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s: %s's tasks %v out of wharf's table at %v, node down at %v", c.node, addrs, c.gone, c.down)
		}
		<-tick.C
		now := time.Now()
		if c.down.IsZero() {
			if n, _, err := mgr.Client.NodeInspectWithRaw(ctx, nodeID); err == nil && n.Status.State == swarm.NodeStateDown {
				c.down = now
			}
		}
		var table struct {
			Services []struct {
				Peers []struct{ Address, State string }
			}
		}
		if err := json.Unmarshal([]byte(get(t, admin, "http://127.0.0.1:8080/api/services")), &table); err != nil {
			t.Fatal(err)
		}
		present := 0
		for _, s := range table.Services {
			for _, p := range s.Peers {
				if slices.Contains(addrs, p.Address) {
					present++
					if p.State == "down" && c.passive.IsZero() {
						c.passive = now
					}
				}
			}
		}
		if present == 0 && c.gone.IsZero() {
			c.gone = now
		}
	}
	sw.RestoreLink(k)
	restored = true
	c.restored = time.Now()
	testutil.Eventually(t, 2*time.Minute, c.node+" is ready again", func() bool {
		n, _, err := mgr.Client.NodeInspectWithRaw(ctx, nodeID)
		return err == nil && n.Status.State == swarm.NodeStateReady
	})
	sw.WaitTasks("wharf_webtest", 3, 2*time.Minute)
	return c
}

// check judges the requests of the cut: only those in flight at the cut
// may fail, and no request waits longer than the node's tasks can hold it.
// The cut took effect at some moment while CutLink ran: a request counts
// as in flight at the cut when it was in flight at any time then.
func (c *nodeCut) check(t *testing.T, s *swarmScenario, rs []loadgen.Result) {
	t.Helper()
	inFlight, held, failed, slow := 0, 0, 0, 0
	var worst time.Duration
	for _, r := range rs {
		worst = max(worst, r.Latency)
		if r.Latency >= c.unackedLimit-time.Second {
			slow++
		}
		atCut := r.Start.Before(c.atEnd) && r.End().After(c.at)
		if atCut {
			inFlight++
			// Nothing comes back from the node after the cut: a
			// request it held failed or was answered elsewhere after
			// wharf gave it up.
			if !r.OK() || r.Latency >= c.unackedLimit-time.Second {
				held++
			}
		}
		if !r.OK() {
			failed++
			if !atCut {
				t.Errorf("%s: a request sent %s after the cut failed: status %d %s %q", s.name,
					r.Start.Sub(c.atEnd).Round(time.Millisecond), r.Status, r.Err, r.Body)
			}
		}
	}
	t.Logf("swarm %s: %d of %d tasks on %s; %d requests in flight at the cut (made in %v), %d of them held by its tasks; %d failed; "+
		"%d requests in all waited %v or more, the longest %v",
		s.name, c.tasks, 3, c.node, inFlight, c.atEnd.Sub(c.at).Round(time.Millisecond), held, failed,
		slow, c.unackedLimit-time.Second, worst.Round(time.Millisecond))
	t.Logf("swarm %s: its tasks held out by passive health %v after the cut; node down at the manager after %v; out of wharf's table after %v; "+
		"every task serving %v after the link came back",
		s.name, sinceCut(c.passive, c.at), sinceCut(c.down, c.at), sinceCut(c.gone, c.at), sinceCut(c.recovered, c.restored))
	if failed > held {
		t.Errorf("%s: %d requests failed, more than the %d in flight on %s's tasks at the cut", s.name, failed, held, c.node)
	}
	if worst > c.maxWait {
		t.Errorf("%s: a client waited %v, more than %v (%d tasks on the node × %v without acknowledgement, and a margin)",
			s.name, worst.Round(time.Millisecond), c.maxWait, c.tasks, c.unackedLimit)
	}
}

func sinceCut(t, from time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Sub(from).Round(time.Millisecond).String()
}

// get fetches url with hc and returns the body; it fails t unless the
// answer is 200.
func get(t *testing.T, hc *http.Client, url string) string {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b.String())
	}
	return b.String()
}

// checkHelpfulErrors runs wharf as a plain container on the manager twice,
// each time with a mistake, and checks that its log names the mistake and
// the fix: a --network it is not attached to, and a local --network.
func checkHelpfulErrors(t *testing.T, sw *swarmtest.Swarm, image string, gid int) {
	t.Helper()
	mgr := sw.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	local := "wharf-local"
	if _, err := mgr.Client.NetworkCreate(ctx, local, network.CreateOptions{Driver: "bridge"}); err != nil {
		t.Fatalf("create network %s: %v", local, err)
	}
	run := func(name, netMode string, args ...string) *containerLog {
		t.Helper()
		c, err := mgr.Client.ContainerCreate(ctx, &container.Config{Image: image, Cmd: args},
			&container.HostConfig{NetworkMode: container.NetworkMode(netMode), GroupAdd: []string{strconv.Itoa(gid)},
				Binds: []string{mgr.Socket + ":/var/run/docker.sock:ro"}}, nil, nil, name)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if err := mgr.Client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		return &containerLog{cli: mgr.Client, id: c.ID}
	}
	// Not attached to the overlay: it could reach no task.
	detached := run("wharf-detached", "none", "--network", "webtest", "--swarm", "on")
	// A bridge network of the manager's own, which no task can join.
	onLocal := run("wharf-on-local", local, "--network", local, "--swarm", "on")
	detached.wait(t, 1, time.Minute, "error", `wharf's own container is not attached to network \"webtest\"`,
		"docker network connect webtest")
	onLocal.wait(t, 1, time.Minute, "warn", "--network "+local+" is a local-scoped bridge network, which Swarm tasks cannot join",
		"docker network create --driver overlay --attachable")
	t.Logf("wharf not attached to the overlay: %s", firstLine(detached, "not attached"))
	t.Logf("wharf on a local --network: %s", firstLine(onLocal, "local-scoped"))
}

func firstLine(l *containerLog, sub string) string {
	for _, line := range strings.Split(l.text(), "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
