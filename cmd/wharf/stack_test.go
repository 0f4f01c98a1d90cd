package main

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/swarmtest"
)

// TestSwarmStackFile deploys compose/stack.yml with `docker stack deploy`
// on the manager of a real three-node swarm, as the README says, checks
// that the three webtest tasks answer through wharf on the manager's port
// 10000, then runs the changes a swarm goes through under eight keep-alive
// clients that keep asking: rolling updates both ways, scaling, a drained
// node, another service coming and going. No request may fail.
// The one change to the file is the engine socket mounted into wharf: the
// swarm's engine listens on a socket of its own, not the machine's.
func TestSwarmStackFile(t *testing.T) {
	cli := dockertest.Require(t)
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal("the docker CLI is needed for docker stack deploy")
	}
	web := dockertest.WebtestImage(t, cli)
	wharf := dockertest.BuildImage(t, cli, "wharf", dockertest.ImageOptions{})
	sw := swarmtest.Start(t, swarmtest.Options{Nodes: 3, Managers: 1})
	sw.LoadImage(web)
	sw.LoadImage(wharf)
	mgr := sw.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The images the stack file names, as make images builds them.
	for _, n := range sw.Nodes {
		for src, dst := range map[string]string{web: "wharf-webtest:demo", wharf: "wharf:demo"} {
			if err := n.Client.ImageTag(ctx, src, dst); err != nil {
				t.Fatal(err)
			}
		}
	}

	stack, err := os.ReadFile("../../compose/stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	const sock = "/var/run/docker.sock:/var/run/docker.sock:ro"
	if !strings.Contains(string(stack), sock) {
		t.Fatalf("compose/stack.yml does not mount %s", sock)
	}
	file := filepath.Join(t.TempDir(), "stack.yml")
	os.WriteFile(file, []byte(strings.Replace(string(stack), sock, mgr.Socket+":/var/run/docker.sock:ro", 1)), 0o644)
	var st syscall.Stat_t
	if err := syscall.Stat(mgr.Socket, &st); err != nil {
		t.Fatal(err)
	}
	deploy := exec.CommandContext(ctx, docker, "-H", "unix://"+mgr.Socket, "stack", "deploy", "--resolve-image", "never", "-c", file, "wharf")
	deploy.Env = append(os.Environ(), "DOCKER_GID="+strconv.Itoa(int(st.Gid)))
	if out, err := deploy.CombinedOutput(); err != nil {
		t.Fatalf("docker stack deploy: %v\n%s", err, out)
	}
	tasks := sw.WaitTasks("wharf_webtest", 3, 2*time.Minute)
	sw.WaitTasks("wharf_wharf", 1, 2*time.Minute)
	want := map[string]bool{}
	for _, task := range tasks {
		want[task.Status.ContainerStatus.ContainerID[:12]] = true
	}

	hc := mgr.HTTPClient()
	entry := netip.AddrPortFrom(mgr.Addr, 10000).String()
	everyTaskAnswers(t, hc, entry, want)

	// Each scenario runs under keep-alive clients that keep asking, and
	// must fail no request.
	cliRun := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, docker, append([]string{"-H", "unix://" + mgr.Socket}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	node2 := sw.Node(2).Name
	for _, sc := range []struct {
		name string
		do   func()
	}{
		{"rolling update, start-first", func() {
			cliRun("service", "update", "--force", "--no-resolve-image", "--detach=false", "wharf_webtest")
		}},
		{"rolling update, stop-first", func() {
			cliRun("service", "update", "--force", "--no-resolve-image", "--update-order", "stop-first", "--detach=false", "wharf_webtest")
		}},
		{"scale 3 → 9 → 2", func() {
			cliRun("service", "scale", "--detach=false", "wharf_webtest=9")
			cliRun("service", "scale", "--detach=false", "wharf_webtest=2")
			cliRun("service", "scale", "--detach=false", "wharf_webtest=3")
		}},
		{"drain a worker, then active", func() {
			cliRun("node", "update", "--availability", "drain", node2)
			sw.WaitTasks("wharf_webtest", 3, 2*time.Minute)
			cliRun("node", "update", "--availability", "active", node2)
		}},
		{"another service created and removed", func() {
			cliRun("service", "create", "--detach=false", "--name", "other", "--network", "webtest", "--endpoint-mode", "dnsrr",
				"--no-resolve-image", "--label", "lb.enable=true", "--label", "lb.port=6969", "--label", "lb.service=other",
				"--replicas", "2", "wharf-webtest:demo")
			cliRun("service", "rm", "other")
		}},
	} {
		sum := underLoad(t, mgr.HTTPClient, entry, sc.do)
		t.Logf("swarm %-38s sent %6d  failed %d  worst %v", sc.name, sum.sent, sum.failed, sum.worst.Round(100*time.Microsecond))
		if sum.failed != 0 {
			t.Errorf("%s: %d of %d requests failed; first: %v", sc.name, sum.failed, sum.sent, sum.firstErr)
		}
	}
}

// loadSummary is what underLoad saw.
type loadSummary struct {
	sent, failed int
	worst        time.Duration
	firstErr     error
}

// loadClients is how many keep-alive clients underLoad runs, as the chaos
// suite does.
const loadClients = 8

// underLoad runs do while loadClients keep-alive clients (each made by
// newClient) ask through
// wharf at entry, each back to back, and reports their requests.
func underLoad(t *testing.T, newClient func() *http.Client, entry string, do func()) loadSummary {
	t.Helper()
	var (
		mu  sync.Mutex
		sum loadSummary
		wg  sync.WaitGroup
	)
	stop := make(chan struct{})
	for range loadClients {
		wg.Add(1)
		hc := newClient() // a connection of its own, kept alive
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				_, err := getServer(hc, entry)
				took := time.Since(start)
				mu.Lock()
				sum.sent++
				sum.worst = max(sum.worst, took)
				if err != nil {
					sum.failed++
					if sum.firstErr == nil {
						sum.firstErr = err
					}
				}
				mu.Unlock()
			}
		}()
	}
	var once sync.Once
	end := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer end() // also when do fails the test
	do()
	end()
	return sum
}
