package swarmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// createNetwork creates the hub namespace with its bridge, and each node's
// namespace with a veth to the bridge and the node's address on it.
func (s *Swarm) createNetwork() error {
	if err := ipCmd("netns", "add", s.hub); err != nil {
		return err
	}
	if err := ipCmd("-n", s.hub, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := ipCmd("-n", s.hub, "link", "set", "br0", "up"); err != nil {
		return err
	}
	for _, n := range s.Nodes {
		if err := ipCmd("netns", "add", n.Netns); err != nil {
			return err
		}
		// Both ends are created directly in their namespaces; the
		// node's end gets a temporary name unique in the root namespace
		// (where the kernel looks the name up) before it becomes eth0.
		tmp := fmt.Sprintf("wst%s%d", s.ID, n.Index)
		cmds := [][]string{
			{"link", "add", tmp, "netns", n.Netns, "type", "veth", "peer", "name", n.hubPort(), "netns", s.hub},
			{"-n", n.Netns, "link", "set", tmp, "name", "eth0"},
			{"-n", n.Netns, "addr", "add", n.Addr.String() + "/24", "dev", "eth0"},
			{"-n", n.Netns, "link", "set", "eth0", "up"},
			{"-n", n.Netns, "link", "set", "lo", "up"},
			{"-n", s.hub, "link", "set", n.hubPort(), "master", "br0", "up"},
		}
		for _, c := range cmds {
			if err := ipCmd(c...); err != nil {
				return err
			}
		}
	}
	return nil
}

// hubPort is the name of the bridge port of the node's veth in the hub
// namespace.
func (n *Node) hubPort() string { return fmt.Sprintf("wsh%s%d", n.sw.ID, n.Index) }

func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Exec runs argv in the node's network namespace (with `ip netns exec`)
// and returns its combined output. Use it for clients of addresses on the
// node's subnet: such traffic must never be sent from the root namespace.
func (n *Node) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("swarmtest: Exec needs a command")
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Netns}, argv...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %s: %w", n.Name, strings.Join(argv, " "), err)
	}
	return out, nil
}

// Dial connects to addr from inside the node's network namespace, as a
// client on the node's subnet would (addresses of other nodes, ports
// published on a node).
func (n *Node) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f, err := os.Open("/run/netns/" + n.Netns)
	if err != nil {
		return nil, fmt.Errorf("swarmtest: %s: %w", n.Name, err)
	}
	defer f.Close()
	return dialIn(ctx, f, network, addr)
}

// HTTPClient returns an HTTP client whose connections are made from inside
// the node's network namespace. It uses no proxy and gives up after 10
// seconds.
func (n *Node) HTTPClient() *http.Client {
	return httpClient(n.Dial)
}

// ContainerHTTPClient returns an HTTP client whose connections are made
// from inside the network namespace of the node's container id, e.g. a
// container attached to an overlay, which reaches the tasks on it by their
// overlay addresses. The client holds that namespace open until the test
// ends, so that it never dials from another process's namespace should the
// container stop and its pid be reused.
func (n *Node) ContainerHTTPClient(ctx context.Context, id string) (*http.Client, error) {
	pid, err := n.containerPID(ctx, id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, fmt.Errorf("%s: container %s: %w", n.Name, id, err)
	}
	// The namespace opened is the container's if its pid is unchanged
	// after the open.
	if again, err := n.containerPID(ctx, id); err != nil || again != pid {
		f.Close()
		return nil, fmt.Errorf("%s: container %s stopped while its network namespace was opened", n.Name, id)
	}
	n.sw.tb.Cleanup(func() { f.Close() })
	return httpClient(func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialIn(ctx, f, network, addr)
	}), nil
}

func (n *Node) containerPID(ctx context.Context, id string) (int, error) {
	info, err := n.Client.ContainerInspect(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("%s: inspect %s: %w", n.Name, id, err)
	}
	if info.State == nil || !info.State.Running || info.State.Pid == 0 {
		return 0, fmt.Errorf("%s: container %s is not running", n.Name, id)
	}
	return info.State.Pid, nil
}

func httpClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dial,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     10 * time.Second,
		},
	}
}

// dialIn connects to addr with a socket created in the network namespace
// ns. A socket stays in the namespace it was created in, so the connection
// can then be used from any goroutine. It refuses to dial from the
// machine's own namespace (the test's or init's), whose traffic to the
// swarm's addresses would leave the machine.
//
// The dial runs on a thread of its own that enters ns and then returns to
// the namespace it came from. If it cannot return, the thread stays locked
// to the goroutine and ends with it; should that thread be the main one,
// which Go parks instead of ending, /proc/self/ns/net names ns from then
// on: nothing here relies on /proc/self/ns/net after initialisation.
func dialIn(ctx context.Context, ns *os.File, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, err := func() (net.Conn, error) {
			id, err := nsFileID("net", ns)
			if err != nil {
				return nil, err
			}
			if hostNS[id] {
				return nil, errors.New("that is the machine's own network namespace")
			}
			back, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				return nil, err
			}
			defer back.Close()
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
				return nil, fmt.Errorf("setns: %w", err)
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
			return c, err
		}()
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("swarmtest: dial %s from %s: %w", addr, ns.Name(), r.err)
	}
	return r.c, nil
}

// nsFileID returns the id ("net:[inode]") of the namespace open as f.
func nsFileID(kind string, f *os.File) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:[%d]", kind, st.Ino), nil
}

// CutLink makes every packet to and from node i vanish at the bridge, as
// in a network partition: the node's link stays up, so nothing tells the
// node's engine that the network is gone (a veth set down would). It adds
// an nft bridge table to the hub namespace (this kernel has no netem and
// no tc classifiers). RestoreLink undoes it.
func (s *Swarm) CutLink(i int) {
	s.tb.Helper()
	n := s.Node(i)
	rules := fmt.Sprintf(`table bridge %[1]s {
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "%[2]s" drop
		oifname "%[2]s" drop
	}
}
`, n.cutTable(), n.hubPort())
	cmd := exec.Command("ip", "netns", "exec", s.hub, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.tb.Fatalf("swarmtest: cut the link of %s: nft: %v: %s", n.Name, err, out)
	}
}

// RestoreLink lets node i's packets through again after CutLink.
func (s *Swarm) RestoreLink(i int) {
	s.tb.Helper()
	n := s.Node(i)
	out, err := exec.Command("ip", "netns", "exec", s.hub, "nft", "delete", "table", "bridge", n.cutTable()).CombinedOutput()
	if err != nil {
		s.tb.Fatalf("swarmtest: restore the link of %s: nft: %v: %s", n.Name, err, out)
	}
}

func (n *Node) cutTable() string { return fmt.Sprintf("cut_node%d", n.Index) }
