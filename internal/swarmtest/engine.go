package swarmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/client"
)

// engine is one running dockerd of a node.
type engine struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
	mnt  string        // its mount namespace, "mnt:[…]"
}

// stopTimeout is how long StopEngine gives an engine to stop after
// SIGTERM before it kills it.
const stopTimeout = 20 * time.Second

// teardownGrace is how long an engine gets to stop after SIGTERM when the
// run is removed. Its containers are gone by then, so a graceful stop
// would only spare the kill of its containerd, and in a swarm it takes
// 2–4 s (leaving the gossip cluster, removing the ingress sandbox): not
// worth waiting for at the end of every test.
const teardownGrace = time.Second

// start writes the node's config and start script and starts its engine,
// returning once the engine answers a ping.
func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.engine != nil {
		return fmt.Errorf("%s: engine already running", n.Name)
	}
	if err := n.writeFiles(); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	logf, err := os.OpenFile(filepath.Join(n.Dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Every program in the chain execs the next, so cmd's process ends up
	// being dockerd itself.
	cmd := exec.Command("ip", "netns", "exec", n.Netns, "unshare", "--uts", "/bin/sh", filepath.Join(n.Dir, "start.sh"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// setsid: a terminal's signals meant for the test are not
	// for the engine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start dockerd: %w", n.Name, err)
	}
	e := &engine{cmd: cmd, done: make(chan struct{})}
	go func() {
		e.err = cmd.Wait()
		close(e.done)
	}()
	n.engine = e

	if n.Client == nil {
		cli, err := client.NewClientWithOpts(client.WithHost("unix://"+n.Socket), client.WithAPIVersionNegotiation())
		if err != nil {
			return fmt.Errorf("%s: client: %w", n.Name, err)
		}
		n.Client = cli
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = poll(ctx, 50*time.Millisecond, func() (bool, string, error) {
		select {
		case <-e.done:
			return false, "", fmt.Errorf("dockerd exited: %v", e.err)
		default:
		}
		if e.mnt == "" {
			// Once its mount namespace differs from ours, ip netns exec
			// has made the one dockerd will run in.
			running := func() bool {
				select {
				case <-e.done:
					return false
				default:
					return true
				}
			}
			if mnt, ok := n.sw.pinEngine(cmd.Process.Pid, running); ok {
				e.mnt = mnt
			}
		}
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := n.Client.Ping(c)
		return err == nil, "", err
	})
	if err != nil {
		return fmt.Errorf("%s: engine not answering: %w\n%s", n.Name, err, n.logTail(15))
	}
	n.Client.NegotiateAPIVersion(ctx)
	return nil
}

// stop sends the engine SIGTERM and waits for it to exit, killing it after
// grace; it reports whether it had to. Without live-restore, dockerd
// stops its containers and its containerd before it exits.
func (n *Node) stop(grace time.Duration) (killed bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.engine
	if e == nil {
		return false, nil
	}
	n.engine = nil
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
		return false, nil
	case <-time.After(grace):
	}
	_ = e.cmd.Process.Kill()
	select {
	case <-e.done:
		return true, nil
	case <-time.After(10 * time.Second):
		return true, fmt.Errorf("%s: dockerd (pid %d) still running after SIGKILL", n.Name, e.cmd.Process.Pid)
	}
}

// running tells whether the node's engine was started and not stopped.
func (n *Node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.engine != nil
}

// writeFiles writes daemon.json and start.sh into the node's directory.
func (n *Node) writeFiles() error {
	for _, d := range []string{"data", "exec"} {
		if err := os.MkdirAll(filepath.Join(n.Dir, d), 0o700); err != nil {
			return err
		}
	}
	cfg := map[string]any{}
	for k, v := range n.sw.opts.DaemonConfig {
		cfg[k] = v
	}
	// Not /etc/docker/key.json: the key is the engine's ID, which must
	// differ between the nodes of a swarm.
	cfg["deprecated-key-path"] = filepath.Join(n.Dir, "key.json")
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "daemon.json"), b, 0o644); err != nil {
		return err
	}
	script, err := n.script()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.Dir, "start.sh"), []byte(script), 0o755)
}

// script returns start.sh, run by `ip netns exec NS unshare --uts`, so in
// the node's network namespace, a fresh UTS namespace and a mount
// namespace of its own whose mounts do not propagate back to the root
// namespace.
func (n *Node) script() (string, error) {
	cg, err := cgroupMounts()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# Written by swarmtest; run by ip netns exec " + n.Netns + " unshare --uts.\nset -e\n")
	fmt.Fprintf(&b, "hostname %s\n", n.Name)
	b.WriteString("# ip netns exec remounted /sys for the namespace, without the cgroup mounts.\n")
	for _, m := range cg {
		fmt.Fprintf(&b, "mkdir -p %s && mount -t %s -o %s %s %s\n", quote(m.target), quote(m.fstype), quote(m.opts), quote(m.fstype), quote(m.target))
	}
	b.WriteString(`# Drop this namespace's copies of the main engine's mounts (so the node
# does not keep its containers' filesystems and namespaces alive) and hide its
# state: its sockets, and containerd's shim sockets in /run/containerd/s.
awk '{print $5}' /proc/self/mountinfo | grep -E '^(/var/lib/docker|/run/docker|/var/run/docker|/run/containerd)/' | sort -r |
  while read -r m; do umount -l "$m" 2>/dev/null || true; done
for d in /run/docker /run/containerd /var/lib/docker; do
  if [ -d "$d" ]; then mount -t tmpfs -o mode=0700 tmpfs "$d"; fi
done
`)
	fmt.Fprintf(&b, "exec dockerd --config-file %s --data-root %s --exec-root %s --pidfile %s -H %s \\\n",
		quote(filepath.Join(n.Dir, "daemon.json")), quote(filepath.Join(n.Dir, "data")), quote(filepath.Join(n.Dir, "exec")),
		quote(filepath.Join(n.Dir, "docker.pid")), quote("unix://"+n.Socket))
	fmt.Fprintf(&b, "  --storage-driver overlay2 --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent %s\n", quote("/"+n.cgroupParent()))
	return b.String(), nil
}

// cgroupParent is the cgroup under which the node's engine puts its
// containers, in every hierarchy.
func (n *Node) cgroupParent() string { return n.Netns }

type mount struct{ target, fstype, opts string }

// cgroupMounts returns the mounts at and below /sys/fs/cgroup of the test
// process's mount namespace (which ip netns exec copies), parents first,
// with their superblock options.
func cgroupMounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT TARGET OPTS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTS
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(fields) < sep+4 {
			continue
		}
		target := fields[4]
		if target != "/sys/fs/cgroup" && !strings.HasPrefix(target, "/sys/fs/cgroup/") {
			continue
		}
		ms = append(ms, mount{target: target, fstype: fields[sep+1], opts: fields[sep+3]})
	}
	return ms, sc.Err()
}

// quote quotes s for sh.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// logTail returns the last n lines of the node's dockerd log, for an error
// message.
func (n *Node) logTail(lines int) string {
	b, err := os.ReadFile(filepath.Join(n.Dir, "dockerd.log"))
	if err != nil {
		return fmt.Sprintf("(dockerd log: %v)", err)
	}
	l := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return string(bytes.Join(l, []byte("\n")))
}

// selfMnt is the mount namespace of the test process.
var selfMnt = sync.OnceValue(func() string {
	mnt, _ := os.Readlink("/proc/thread-self/ns/mnt")
	return mnt
})
