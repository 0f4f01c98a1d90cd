package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/go-connections/nat"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/swarmtest"
	"github.com/wharflb/wharf/internal/testutil"
)

// TestSwarmWharfContainer runs wharf itself as a container on the manager
// of a real three-node swarm, attached to the overlay with a port
// published on the node, and sends requests from inside the manager
// node's network namespace to the node's address: each of a dnsrr
// service's three tasks, spread over the nodes, answers.
func TestSwarmWharfContainer(t *testing.T) {
	cli := dockertest.Require(t)
	web := dockertest.WebtestImage(t, cli)
	wharf := dockertest.BuildImage(t, cli, "wharf", dockertest.ImageOptions{})
	sw := swarmtest.Start(t, swarmtest.Options{Nodes: 3, Managers: 1})
	sw.LoadImage(web)
	sw.LoadImage(wharf)
	const netName = "web"
	sw.CreateOverlay(netName, true)
	mgr := sw.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	replicas := uint64(3)
	if _, err := mgr.Client.ServiceCreate(ctx, swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "api", Labels: map[string]string{"lb.enable": "true", "lb.port": "6969"}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: web},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: netName}},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}, swarm.ServiceCreateOptions{QueryRegistry: false}); err != nil {
		t.Fatalf("create service api: %v", err)
	}
	tasks := sw.WaitTasks("api", 3, 2*time.Minute)
	want := map[string]bool{} // the tasks' hostnames: their containers' short IDs
	for _, task := range tasks {
		want[task.Status.ContainerStatus.ContainerID[:12]] = true
	}

	c, err := mgr.Client.ContainerCreate(ctx, &container.Config{
		Image:        wharf,
		Cmd:          []string{"--network", netName, "--swarm", "on", "--log-format", "json", "--log-level", "debug"},
		ExposedPorts: nat.PortSet{"10000/tcp": {}},
	}, &container.HostConfig{
		NetworkMode:  container.NetworkMode(netName),
		Binds:        []string{mgr.Socket + ":/var/run/docker.sock:ro"},
		PortBindings: nat.PortMap{"10000/tcp": {{HostPort: "10000"}}},
	}, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {}}}, nil, "wharf")
	if err != nil {
		t.Fatalf("create the wharf container: %v", err)
	}
	if err := mgr.Client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start the wharf container: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		rc, err := mgr.Client.ContainerLogs(context.Background(), c.ID, container.LogsOptions{ShowStderr: true, ShowStdout: true})
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Logf("wharf's log:\n%s", b)
		}
	})

	hc := mgr.HTTPClient()
	entry := netip.AddrPortFrom(mgr.Addr, 10000).String()
	everyTaskAnswers(t, hc, entry, want)
}

// everyTaskAnswers asks through wharf at entry until each of the tasks in
// want (by hostname, their containers' short IDs) has answered, and fails
// t when one that is not in want answers.
func everyTaskAnswers(t *testing.T, hc *http.Client, entry string, want map[string]bool) {
	t.Helper()
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
			t.Errorf("answered by %q, not one of the tasks (%v)", s, want)
		}
	}
	t.Logf("answers by task: %v", seen)
}

// getServer asks webtest, through wharf at addr, for a uuid and returns
// the Server that answered.
func getServer(hc *http.Client, addr string) (string, error) {
	resp, err := hc.Get("http://" + addr + "/webtest?action=get_uuid")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var a struct {
		IsSuccess bool
		Server    string
	}
	if err := json.Unmarshal(b, &a); err != nil || !a.IsSuccess {
		return "", fmt.Errorf("%s %q, want a get_uuid answer", resp.Status, strings.TrimSpace(string(b)))
	}
	return a.Server, nil
}
