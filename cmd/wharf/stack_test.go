package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/swarmtest"
	"github.com/wharflb/wharf/internal/testutil"
)

// TestSwarmStackFile deploys compose/stack.yml with `docker stack deploy`
// on the manager of a real swarm, as the README says, and checks that the
// three webtest tasks answer through wharf on the manager's port 10000.
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
	sw := swarmtest.Start(t, swarmtest.Options{Nodes: 1, Managers: 1})
	sw.LoadImage(web)
	sw.LoadImage(wharf)
	mgr := sw.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The images the stack file names, as make images builds them.
	for src, dst := range map[string]string{web: "wharf-webtest:demo", wharf: "wharf:demo"} {
		if err := mgr.Client.ImageTag(ctx, src, dst); err != nil {
			t.Fatal(err)
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
	seen := map[string]int{}
	testutil.Eventually(t, time.Minute, "every task answers through wharf at "+entry, func() bool {
		if server, err := getServer(hc, entry); err == nil {
			seen[server]++
		}
		for s := range want {
			if seen[s] == 0 {
				return false
			}
		}
		return true
	})
	for s := range seen {
		if !want[s] {
			t.Errorf("answered by %q, not a webtest task (%v)", s, want)
		}
	}
	t.Logf("answers by task: %v", seen)

	// A rolling update (start-first, as the stack file asks) under a
	// client that keeps asking: no request fails.
	var sent, failed int
	var firstErr error
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			sent++
			if _, err := getServer(hc, entry); err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
	}()
	start := time.Now()
	update := exec.CommandContext(ctx, docker, "-H", "unix://"+mgr.Socket, "service", "update", "--force", "--detach=false", "wharf_webtest")
	out, err := update.CombinedOutput()
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("docker service update: %v\n%s", err, out)
	}
	t.Logf("rolling update of 3 tasks in %v under load: sent %d, failed %d", time.Since(start).Round(time.Millisecond), sent, failed)
	if failed != 0 {
		t.Errorf("%d of %d requests failed during the rolling update; first: %v", failed, sent, firstErr)
	}
}
