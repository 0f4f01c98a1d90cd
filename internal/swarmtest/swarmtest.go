// Package swarmtest runs a real multi-node Docker Swarm on one machine for
// integration tests: one extra dockerd per node, each in a network
// namespace of its own, joined into one swarm.
//
//	sw := swarmtest.Start(t, swarmtest.Options{Nodes: 3, Managers: 1})
//	sw.LoadImage(dockertest.WebtestImage(t, mainEngine))
//	sw.CreateOverlay("web", true)
//	… sw.Manager().Client.ServiceCreate(…) …
//
// Layout of a run. Every run has a random six-hex-digit id. Its network
// namespaces are named wst-ID-hub and wst-ID-nodeN; node N has the
// address 10.99.X.N/24 on eth0, a veth whose peer is a port of a bridge in
// the hub namespace, so the nodes reach each other and nothing else: no
// interface of a run is in the root namespace, no namespace of a run has a
// default route, and the root namespace's FORWARD policy and iptables are
// never involved. Overlay addresses (10.0.x.x) and node addresses are not
// routable from the root namespace; a request sent there from the test
// process would leave the machine by its default gateway. So clients talk
// to the swarm only from inside a namespace of the run: Node.Exec runs a
// command in a node's namespace, Node.Dial and Node.ContainerHTTPClient
// open sockets inside a node's or a container's namespace.
//
// X is chosen per run (a claim file net-X under BaseDir) so that parallel
// runs never share a subnet, even though their namespaces could not reach
// each other anyway.
//
// The overlay data plane (VXLAN between the namespaces) and tasks.SERVICE
// DNS work. The kernel of the machines this was written on has no IPVS,
// so service VIPs and the ingress routing mesh do not route: reach tasks
// by their own addresses (EndpointSpec mode dnsrr) or publish ports in
// host mode.
//
// Each node's dockerd runs as `ip netns exec NS unshare --uts sh start.sh`
// with its own config file (its own deprecated-key-path: otherwise every
// node would read /etc/docker/key.json and get the same engine ID),
// data-root, exec-root, pidfile, unix socket, the cgroupfs cgroup driver
// and a cgroup parent of its own. `ip netns exec` gives the process a
// private mount namespace and remounts /sys for the network namespace,
// which drops /sys/fs/cgroup; start.sh replays the root namespace's cgroup
// mounts, hides the main engine's state (/run/docker, /run/containerd,
// /var/lib/docker) from the node, sets the hostname, then execs dockerd.
// The main engine and its swarm state are never touched.
//
// Everything a run creates is removed in t.Cleanup, also when the test
// fails or panics: services and containers while the engines still run,
// then the engines (SIGTERM, then SIGKILL), then whatever is left of a
// node — containerd, shims, container processes — found by the node's
// mount namespaces and cgroup parent, never by process name; then the
// namespaces, cgroups and directories. A run that could not clean up (the
// test binary was killed) is swept by the next Start: its directory holds
// a marker naming the owning process, and a run whose owner is gone is
// removed. Leftovers lists what of a run still exists, for tests that
// assert a clean teardown. Only BaseDir and its lock file stay.
//
// Cost, as measured on a 2-CPU machine: three nodes are ready in 1–2 s
// when the machine is idle (up to 4–7 s while other tests load it), and
// torn down in about 2 s; Start and the teardown log theirs. A package
// test that runs a service on them takes 15–25 s.
//
// Start skips the test when it cannot run here (not root, no ip, dockerd
// or unshare), or fails it when WHARF_REQUIRE_DOCKER=1.
//
// The methods of Swarm fail the test that started it on error, so call
// them from that test's goroutine; Node's fields and methods that return
// errors are safe for concurrent use.
package swarmtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/wharflb/wharf/internal/dockertest"
)

// BaseDir holds the directory of every run and the subnet claims.
const BaseDir = "/tmp/wharf-swarmtest"

// namePrefix starts the name of every network namespace and cgroup of a
// run, so that sweeping never touches anything else.
const namePrefix = "wst-"

// callTimeout bounds each engine call.
const callTimeout = 30 * time.Second

// Options describe a swarm for Start.
type Options struct {
	// Nodes is the number of nodes, 1 to 20; 3 when zero. A node costs
	// about 130 MB of memory, a manager also about 123 MB of disk for its
	// raft log.
	Nodes int
	// Managers is how many of the nodes are managers, 1 when zero.
	// Nodes 1..Managers are managers, the others workers; node 1 is the
	// one that initialises the swarm.
	Managers int
	// DaemonConfig adds keys to each node's daemon.json, e.g.
	// {"debug": true}. (Engine 20.10 refuses to form a swarm with
	// live-restore on; use it with NoSwarm.)
	DaemonConfig map[string]any
	// NoSwarm starts the engines in their namespaces without forming a
	// swarm.
	NoSwarm bool
}

// Swarm is a running swarm of Nodes; see the package comment.
type Swarm struct {
	// ID is the run's id, part of every name it creates.
	ID string
	// Dir is the run's directory under BaseDir.
	Dir string
	// Subnet is the nodes' subnet, 10.99.X.0/24.
	Subnet netip.Prefix
	// Nodes are the nodes, Nodes[0] being node 1.
	Nodes []*Node

	tb       testing.TB
	opts     Options
	hub      string
	mu       sync.Mutex
	pins     pins // the mount namespaces the nodes' engines ran in, held open
	netClaim string
}

// Node is one engine of the swarm.
type Node struct {
	// Index is the node's number, from 1.
	Index int
	// Name is the node's hostname, "node1", "node2", …
	Name string
	// Netns is the node's network namespace (ip netns name).
	Netns string
	// Addr is the node's address on the run's subnet.
	Addr netip.Addr
	// Socket is the path of the engine's unix socket.
	Socket string
	// Client is a client of the node's engine, with API version
	// negotiation (the engine may be as old as API 1.41).
	Client *client.Client
	// Manager tells whether the node joined as a manager.
	Manager bool
	// Dir holds the node's config, data-root, exec-root, socket and log.
	Dir string

	sw     *Swarm
	mu     sync.Mutex
	engine *engine // nil while stopped
}

// Start creates the namespaces, starts one engine per node and forms the
// swarm: node 1 initialises it, the others join, and Start returns when
// every node is Ready and every manager reachable. Everything is removed
// when tb ends. It logs what starting cost.
func Start(tb testing.TB, opts Options) *Swarm {
	tb.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Managers == 0 {
		opts.Managers = 1
	}
	if opts.Nodes < 1 || opts.Nodes > 20 || opts.Managers < 1 || opts.Managers > opts.Nodes {
		tb.Fatalf("swarmtest: %d nodes with %d managers: want 1 to 20 nodes, at least one of them a manager", opts.Nodes, opts.Managers)
	}
	requireHost(tb)

	t0 := time.Now()
	if err := sweep(); err != nil {
		tb.Logf("swarmtest: sweeping earlier runs: %v", err)
	}
	tSweep := time.Since(t0)

	s := &Swarm{tb: tb, opts: opts, pins: pins{}}
	if err := s.claim(); err != nil {
		tb.Fatalf("swarmtest: %v", err)
	}
	// From here on every step leaves something that cleanup removes,
	// whichever step fails.
	tb.Cleanup(s.cleanup)

	s.hub = namePrefix + s.ID + "-hub"
	for i := 1; i <= opts.Nodes; i++ {
		n := &Node{
			Index:   i,
			Name:    fmt.Sprintf("node%d", i),
			Netns:   fmt.Sprintf("%s%s-node%d", namePrefix, s.ID, i),
			Addr:    nthAddr(s.Subnet, i),
			Manager: i <= opts.Managers,
			Dir:     filepath.Join(s.Dir, fmt.Sprintf("node%d", i)),
			sw:      s,
		}
		n.Socket = filepath.Join(n.Dir, "docker.sock")
		s.Nodes = append(s.Nodes, n)
	}
	if err := s.createNetwork(); err != nil {
		tb.Fatalf("swarmtest: network: %v", err)
	}
	tNet := time.Since(t0)

	if err := s.parallel(func(n *Node) error { return n.start() }); err != nil {
		tb.Fatalf("swarmtest: %v", err)
	}
	tEngines := time.Since(t0)

	if !opts.NoSwarm {
		if err := s.form(); err != nil {
			tb.Fatalf("swarmtest: forming the swarm: %v", err)
		}
	}
	kind := fmt.Sprintf("managers: %d", opts.Managers)
	if opts.NoSwarm {
		kind = "no swarm"
	}
	tb.Logf("swarmtest: run %s, %d nodes (%s) on %s ready in %s (sweep %s, namespaces %s, engines %s, swarm %s)",
		s.ID, opts.Nodes, kind, s.Subnet, since(t0), round(tSweep), round(tNet-tSweep), round(tEngines-tNet), since(t0.Add(tEngines)))
	return s
}

// Node returns node i, counting from 1.
func (s *Swarm) Node(i int) *Node {
	s.tb.Helper()
	if i < 1 || i > len(s.Nodes) {
		s.tb.Fatalf("swarmtest: no node %d in a swarm of %d", i, len(s.Nodes))
	}
	return s.Nodes[i-1]
}

// Manager returns node 1, the manager that initialised the swarm.
func (s *Swarm) Manager() *Node { return s.Nodes[0] }

// requireHost skips or fails tb when this machine cannot run a swarm.
func requireHost(tb testing.TB) {
	tb.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, bin := range []string{"ip", "dockerd", "unshare", "mount"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) == 0 {
		return
	}
	reason := "swarmtest needs " + strings.Join(missing, ", ")
	if os.Getenv(dockertest.RequireEnv) == "1" {
		tb.Fatalf("%s (%s=1)", reason, dockertest.RequireEnv)
	}
	tb.Skipf("%s (set %s=1 to fail instead)", reason, dockertest.RequireEnv)
}

// form initialises the swarm on node 1 and joins the others: managers one
// after the other (each changes the raft membership), workers together.
func (s *Swarm) form() error {
	m := s.Manager()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	listen := func(n *Node) string { return netip.AddrPortFrom(n.Addr, 2377).String() }
	_, err := m.Client.SwarmInit(ctx, swarm.InitRequest{
		ListenAddr:    listen(m),
		AdvertiseAddr: listen(m),
		// Overlays get their /24s from 10.0.0.0/16, away from the nodes'
		// 10.99.X.0/24 (the default pool is all of 10.0.0.0/8).
		DefaultAddrPool: []string{"10.0.0.0/16"},
		SubnetSize:      24,
	})
	if err != nil {
		return fmt.Errorf("init on %s: %w", m.Name, err)
	}
	info, err := m.Client.SwarmInspect(ctx)
	if err != nil {
		return fmt.Errorf("inspect on %s: %w", m.Name, err)
	}
	join := func(n *Node) error {
		token := info.JoinTokens.Worker
		if n.Manager {
			token = info.JoinTokens.Manager
		}
		err := n.Client.SwarmJoin(ctx, swarm.JoinRequest{
			ListenAddr:    listen(n),
			AdvertiseAddr: listen(n),
			RemoteAddrs:   []string{listen(m)},
			JoinToken:     token,
		})
		if err != nil {
			return fmt.Errorf("join %s: %w", n.Name, err)
		}
		return nil
	}
	var workers []*Node
	for _, n := range s.Nodes[1:] {
		if !n.Manager {
			workers = append(workers, n)
			continue
		}
		if err := join(n); err != nil {
			return err
		}
	}
	if err := parallel(workers, join); err != nil {
		return err
	}
	return s.waitReady(ctx)
}

// waitReady polls the manager until it lists every node Ready, with the
// managers reachable.
func (s *Swarm) waitReady(ctx context.Context) error {
	return poll(ctx, 100*time.Millisecond, func() (bool, string, error) {
		c, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		nodes, err := s.Manager().Client.NodeList(c, swarm.NodeListOptions{})
		if err != nil {
			return false, "", err
		}
		ready, managers := 0, 0
		for _, n := range nodes {
			if n.Status.State == swarm.NodeStateReady {
				ready++
			}
			if n.ManagerStatus != nil && n.ManagerStatus.Reachability == swarm.ReachabilityReachable {
				managers++
			}
		}
		state := fmt.Sprintf("%d of %d nodes listed, %d ready, %d managers reachable", len(nodes), len(s.Nodes), ready, managers)
		return len(nodes) == len(s.Nodes) && ready == len(s.Nodes) && managers == s.opts.Managers, state, nil
	})
}

// poll calls cond every interval until it reports done, returns an error,
// or ctx ends; the error then names the last state cond described.
func poll(ctx context.Context, interval time.Duration, cond func() (done bool, state string, err error)) error {
	var last string
	var lastErr error
	for {
		done, state, err := cond()
		if err == nil && done {
			return nil
		}
		if state != "" {
			last = state
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w (last: %s; %v)", ctx.Err(), last, lastErr)
			}
			return fmt.Errorf("%w (last: %s)", ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// parallel runs f for every node at once and joins the errors.
func (s *Swarm) parallel(f func(*Node) error) error { return parallel(s.Nodes, f) }

func parallel(nodes []*Node, f func(*Node) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func nthAddr(p netip.Prefix, i int) netip.Addr {
	a := p.Addr().As4()
	a[3] = byte(i)
	return netip.AddrFrom4(a)
}

func since(t time.Time) time.Duration { return round(time.Since(t)) }

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}
