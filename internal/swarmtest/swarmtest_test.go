package swarmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"

	"github.com/wharflb/wharf/internal/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// TestSwarm starts three nodes (one manager), runs three webtest replicas
// on an overlay with DNS round-robin endpoints, and checks from a
// container on the overlay, on another node, that each task answers at its
// own overlay address. It then cuts and restores a link, stops and starts
// an engine, and checks that nothing of the run is left once the swarm's
// test has ended.
func TestSwarm(t *testing.T) {
	var sw *Swarm
	t.Run("run", func(t *testing.T) {
		img := dockertest.WebtestImage(t, dockertest.Require(t))
		sw = Start(t, Options{Nodes: 3, Managers: 1})
		checkRootNamespace(t, sw)
		sw.LoadImage(img)
		const net = "web"
		sw.CreateOverlay(net, true)

		m := sw.Manager().Client
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		replicas := uint64(3)
		_, err := m.ServiceCreate(ctx, swarm.ServiceSpec{
			Annotations: swarm.Annotations{Name: "webtest"},
			TaskTemplate: swarm.TaskSpec{
				ContainerSpec: &swarm.ContainerSpec{Image: img},
				Networks:      []swarm.NetworkAttachmentConfig{{Target: net}},
			},
			Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
			EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
		}, swarm.ServiceCreateOptions{QueryRegistry: false})
		if err != nil {
			t.Fatal(err)
		}
		tasks := sw.WaitTasks("webtest", 3, time.Minute)

		// The client runs on node 2 and reaches every task, also those
		// on the other nodes, through the overlay's VXLAN.
		n2 := sw.Node(2)
		cl, err := n2.Client.ContainerCreate(ctx, &container.Config{Image: img},
			&container.HostConfig{NetworkMode: container.NetworkMode(net)},
			&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {}}}, nil, "client")
		if err != nil {
			t.Fatal(err)
		}
		if err := n2.Client.ContainerStart(ctx, cl.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		hc, err := n2.ContainerHTTPClient(ctx, cl.ID)
		if err != nil {
			t.Fatal(err)
		}

		nodesUsed := map[string]bool{}
		for _, task := range tasks {
			nodesUsed[task.NodeID] = true
			addr := overlayAddr(t, task, net)
			if !netip.MustParsePrefix("10.0.0.0/16").Contains(addr) {
				t.Errorf("task %d: overlay address %s, want one of 10.0.0.0/16", task.Slot, addr)
			}
			want := task.Status.ContainerStatus.ContainerID[:12] // a task's default hostname
			got := getServer(t, hc, netip.AddrPortFrom(addr, 6969).String())
			if got != want {
				t.Errorf("task %d at %s answered as %q, want its hostname %q", task.Slot, addr, got, want)
			}
		}
		t.Logf("3 tasks on %d nodes answered at their overlay addresses", len(nodesUsed))
		checkNodeRoutes(t, sw) // with the overlay and docker_gwbridge in place

		t.Run("cut link", func(t *testing.T) {
			// Node 1 reaches node 3's gossip port, not while node 3's
			// link is cut, and again once it is restored.
			addr := netip.AddrPortFrom(sw.Node(3).Addr, 7946).String()
			dial := func(timeout time.Duration) error {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				c, err := sw.Node(1).Dial(ctx, "tcp", addr)
				if err == nil {
					c.Close()
				}
				return err
			}
			if err := dial(5 * time.Second); err != nil {
				t.Fatalf("before the cut: %v", err)
			}
			sw.CutLink(3)
			if err := dial(500 * time.Millisecond); err == nil {
				t.Errorf("node1 reached %s while node3's link was cut", addr)
			}
			sw.RestoreLink(3)
			if err := dial(5 * time.Second); err != nil {
				t.Errorf("after the restore: %v", err)
			}
		})

		t.Run("stop engine", func(t *testing.T) {
			n3 := sw.Node(3)
			sw.StopEngine(3)
			pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := n3.Client.Ping(pctx); err == nil {
				t.Errorf("node3's engine answers after StopEngine")
			}
			sw.StartEngine(3)
			info, err := n3.Client.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive && info.Swarm.LocalNodeState != swarm.LocalNodeStatePending {
				t.Errorf("node3 after restart: swarm state %q, want active or pending", info.Swarm.LocalNodeState)
			}
		})
	})
	if sw == nil {
		return // skipped or failed before Start
	}
	if left := sw.Leftovers(); len(left) > 0 {
		t.Errorf("left behind by run %s:\n%s", sw.ID, strings.Join(left, "\n"))
	}
}

// checkRootNamespace checks that the test process's network namespace has
// no interface of the run and no address on its subnet: nothing sent from
// here can reach the swarm, and the swarm reaches nothing here.
func checkRootNamespace(t *testing.T, sw *Swarm) {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		if strings.Contains(ifc.Name, sw.ID) {
			t.Errorf("interface %s of run %s in the root namespace", ifc.Name, sw.ID)
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && sw.Subnet.Overlaps(p) {
				t.Errorf("root namespace interface %s has %s, on the run's subnet %s", ifc.Name, a, sw.Subnet)
			}
		}
	}
}

// checkNodeRoutes checks, with Exec, that each node has its address and
// no default route: whatever a node or a container on it sends to an
// address outside the run finds no way out.
func checkNodeRoutes(t *testing.T, sw *Swarm) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range sw.Nodes {
		out, err := n.Exec(ctx, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
		if err != nil || !strings.Contains(string(out), " "+n.Addr.String()+"/24 ") {
			t.Errorf("%s: eth0 %q (%v), want %s/24", n.Name, out, err, n.Addr)
		}
		out, err = n.Exec(ctx, "ip", "route", "show", "default")
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("%s: default route %q (%v), want none", n.Name, out, err)
		}
	}
}

// overlayAddr returns the task's address on the network named nw.
func overlayAddr(t *testing.T, task swarm.Task, nw string) netip.Addr {
	t.Helper()
	for _, a := range task.NetworksAttachments {
		if a.Network.Spec.Name != nw {
			continue
		}
		for _, cidr := range a.Addresses {
			if p, err := netip.ParsePrefix(cidr); err == nil {
				return p.Addr()
			}
		}
	}
	t.Fatalf("task %d has no address on %s: %+v", task.Slot, nw, task.NetworksAttachments)
	return netip.Addr{}
}

// getServer asks webtest at addr for a uuid and returns the Server it
// names, retrying for up to 20 s: a task runs before its server listens,
// and a node learns where an overlay peer lives through gossip.
func getServer(t *testing.T, hc *http.Client, addr string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		server, err := func() (string, error) {
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
				return "", fmt.Errorf("%s %q, want a get_uuid answer", resp.Status, b)
			}
			return a.Server, nil
		}()
		if err == nil {
			return server
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
