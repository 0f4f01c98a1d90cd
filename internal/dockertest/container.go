package dockertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

func labels(tb testing.TB, extra map[string]string) map[string]string {
	l := map[string]string{Label: runID, CaseLabel: tb.Name()}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// Network creates a user-defined bridge network with a unique name made
// from prefix (see UniqueName) and returns the name. It is removed when tb
// ends, after the containers tb started on it.
func Network(tb testing.TB, cli *client.Client, prefix string) string {
	tb.Helper()
	return NetworkNamed(tb, cli, UniqueName(prefix))
}

// NetworkNamed is Network with the exact name given (make it unique with
// UniqueName).
func NetworkNamed(tb testing.TB, cli *client.Client, name string) string {
	tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	resp, err := cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels(tb, nil)})
	if err != nil {
		tb.Fatalf("dockertest: create network %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := callCtx()
		defer cancel()
		if err := cli.NetworkRemove(ctx, resp.ID); err != nil && !client.IsErrNotFound(err) {
			tb.Errorf("dockertest: remove network %s: %v", name, err)
		}
	})
	return name
}

// ContainerOptions describe a container for Run.
type ContainerOptions struct {
	// Image is required.
	Image string
	// Name defaults to UniqueName("c"). Hostname defaults to Name, so that
	// webtest's Server field is the container's name.
	Name     string
	Hostname string
	// Labels are added to the run labels.
	Labels map[string]string
	// Network, if set, is the network the container is attached to when
	// created (otherwise Docker's default bridge).
	Network string
	// Aliases are DNS names of the container on Network.
	Aliases []string
	// Cmd are the arguments given to the image's entrypoint.
	Cmd []string
	Env []string
	// Expose adds exposed ports to those of the image ("8080/tcp").
	Expose []string
	// Publish lists container ports ("6969/tcp") published on random ports
	// of 127.0.0.1; see Container.HostAddr.
	Publish []string
	// Healthcheck, if not nil, replaces the image's HEALTHCHECK.
	Healthcheck *container.HealthConfig
	// Binds are volume binds, e.g.
	// "/var/run/docker.sock:/var/run/docker.sock:ro".
	Binds []string
	// StopTimeout is the grace period of a plain "docker stop" (Docker's
	// default, 10s, when zero).
	StopTimeout time.Duration
	// NoStart creates the container without starting it.
	NoStart bool
}

// Container is a container created by Run. Its methods fail the test
// that created it on error, so call them from that test's goroutine (or
// use the engine client directly elsewhere).
type Container struct {
	ID   string
	Name string

	tb  testing.TB
	cli *client.Client
}

// Run creates and starts a container and returns it; it is force-removed
// when tb ends, also when the test fails.
func Run(tb testing.TB, cli *client.Client, opts ContainerOptions) *Container {
	tb.Helper()
	if opts.Image == "" {
		tb.Fatal("dockertest: Run needs an image")
	}
	name := opts.Name
	if name == "" {
		name = UniqueName("c")
	}
	hostname := opts.Hostname
	if hostname == "" && len(name) <= 63 {
		hostname = name
	}

	exposed := nat.PortSet{}
	bindings := nat.PortMap{}
	for i, p := range append(append([]string(nil), opts.Expose...), opts.Publish...) {
		port, err := nat.NewPort(nat.SplitProtoPort(p))
		if err != nil {
			tb.Fatalf("dockertest: port %q of %s: %v", p, name, err)
		}
		exposed[port] = struct{}{}
		if i >= len(opts.Expose) {
			// Published on a random port of the loopback interface.
			bindings[port] = []nat.PortBinding{{HostIP: "127.0.0.1"}}
		}
	}

	cfg := &container.Config{
		Hostname:     hostname,
		Image:        opts.Image,
		Cmd:          opts.Cmd,
		Env:          opts.Env,
		Labels:       labels(tb, opts.Labels),
		ExposedPorts: exposed,
		Healthcheck:  opts.Healthcheck,
	}
	if opts.StopTimeout > 0 {
		s := int((opts.StopTimeout + time.Second - 1) / time.Second)
		cfg.StopTimeout = &s
	}
	hostCfg := &container.HostConfig{PortBindings: bindings, Binds: opts.Binds}
	var netCfg *network.NetworkingConfig
	if opts.Network != "" {
		hostCfg.NetworkMode = container.NetworkMode(opts.Network)
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			opts.Network: {Aliases: opts.Aliases},
		}}
	}

	ctx, cancel := callCtx()
	defer cancel()
	resp, err := cli.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, name)
	if err != nil {
		tb.Fatalf("dockertest: create container %s: %v", name, err)
	}
	c := &Container{ID: resp.ID, Name: name, tb: tb, cli: cli}
	tb.Cleanup(func() {
		ctx, cancel := callCtx()
		defer cancel()
		err := cli.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !client.IsErrNotFound(err) && !strings.Contains(err.Error(), "is already in progress") {
			tb.Errorf("dockertest: remove container %s: %v", name, err)
		}
	})
	if !opts.NoStart {
		if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
			tb.Fatalf("dockertest: start container %s: %v", name, err)
		}
	}
	return c
}

func (c *Container) fail(op string, err error) {
	c.tb.Helper()
	if err != nil {
		c.tb.Fatalf("dockertest: %s %s: %v", op, c.Name, err)
	}
}

// Start starts the container.
func (c *Container) Start() {
	c.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	c.fail("start", c.cli.ContainerStart(ctx, c.ID, container.StartOptions{}))
}

// Stop stops the container as "docker stop -t" does: SIGTERM, then SIGKILL
// after timeout (whole seconds, rounded up). It returns when the container
// has stopped.
func (c *Container) Stop(timeout time.Duration) {
	c.tb.Helper()
	s := int((timeout + time.Second - 1) / time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout+timeout)
	defer cancel()
	c.fail("stop", c.cli.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &s}))
}

// Kill sends signal ("KILL", "TERM", …) to the container's main process.
func (c *Container) Kill(signal string) {
	c.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	c.fail("kill", c.cli.ContainerKill(ctx, c.ID, signal))
}

// Restart restarts the container, waiting at most timeout for it to stop.
func (c *Container) Restart(timeout time.Duration) {
	c.tb.Helper()
	s := int((timeout + time.Second - 1) / time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout+timeout)
	defer cancel()
	c.fail("restart", c.cli.ContainerRestart(ctx, c.ID, container.StopOptions{Timeout: &s}))
}

// Pause freezes the container's processes.
func (c *Container) Pause() {
	c.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	c.fail("pause", c.cli.ContainerPause(ctx, c.ID))
}

// Unpause resumes a paused container.
func (c *Container) Unpause() {
	c.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	c.fail("unpause", c.cli.ContainerUnpause(ctx, c.ID))
}

// Remove force-removes the container now instead of when the test ends.
func (c *Container) Remove() {
	c.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	err := c.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if client.IsErrNotFound(err) {
		err = nil
	}
	c.fail("remove", err)
}

// Connect attaches the container to network.
func (c *Container) Connect(network string) {
	c.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	c.fail("connect "+network, c.cli.NetworkConnect(ctx, network, c.ID, nil))
}

// Disconnect detaches the container from network.
func (c *Container) Disconnect(network string) {
	c.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	c.fail("disconnect "+network, c.cli.NetworkDisconnect(ctx, network, c.ID, false))
}

// Inspect returns the engine's current view of the container.
func (c *Container) Inspect() container.InspectResponse {
	c.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	info, err := c.cli.ContainerInspect(ctx, c.ID)
	c.fail("inspect", err)
	return info
}

// IP returns the container's IPv4 address on network; it fails the test
// when the container is not attached to it (or not running).
func (c *Container) IP(network string) string {
	c.tb.Helper()
	info := c.Inspect()
	if info.NetworkSettings != nil {
		if ep := info.NetworkSettings.Networks[network]; ep != nil && ep.IPAddress != "" {
			return ep.IPAddress
		}
	}
	c.tb.Fatalf("dockertest: %s has no address on network %s", c.Name, network)
	return ""
}

// Addr returns IP:PORT of the container on network for a container port
// such as "6969/tcp" or "6969".
func (c *Container) Addr(network, port string) string {
	c.tb.Helper()
	_, p := nat.SplitProtoPort(port)
	return net.JoinHostPort(c.IP(network), p)
}

// HostAddr returns the 127.0.0.1:PORT where the container port ("6969/tcp")
// is published (see ContainerOptions.Publish).
func (c *Container) HostAddr(port string) string {
	c.tb.Helper()
	p, err := nat.NewPort(nat.SplitProtoPort(port))
	c.fail("port "+port, err)
	info := c.Inspect()
	if info.NetworkSettings != nil {
		for _, b := range info.NetworkSettings.Ports[p] {
			if b.HostPort != "" {
				ip := b.HostIP
				if ip == "" || ip == "0.0.0.0" {
					ip = "127.0.0.1"
				}
				return net.JoinHostPort(ip, b.HostPort)
			}
		}
	}
	c.tb.Fatalf("dockertest: port %s of %s is not published", port, c.Name)
	return ""
}

// WaitHealth waits until the container's health status is status
// ("healthy", "unhealthy"), failing the test after timeout.
func (c *Container) WaitHealth(status string, timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		info := c.Inspect()
		if info.State != nil && info.State.Health != nil {
			last = info.State.Health.Status
			if last == status {
				return
			}
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("dockertest: %s not %s after %s (last status %q)", c.Name, status, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitState waits until the container's state is status ("running",
// "exited", "paused", …), failing the test after timeout.
func (c *Container) WaitState(status string, timeout time.Duration) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		info := c.Inspect()
		if info.State != nil {
			last = info.State.Status
			if last == status {
				return
			}
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("dockertest: %s not %s after %s (last state %q)", c.Name, status, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Logs returns the container's stdout and stderr so far, for a failure
// message.
func (c *Container) Logs() string {
	c.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	rc, err := c.cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return fmt.Sprintf("(logs of %s: %v)", c.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return fmt.Sprintf("(logs of %s: %v)", c.Name, err)
	}
	return demux(b)
}

// demux strips the 8-byte frame headers of a non-TTY log stream.
func demux(b []byte) string {
	var out strings.Builder
	for len(b) >= 8 {
		n := int(b[4])<<24 | int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		b = b[8:]
		if n > len(b) {
			n = len(b)
		}
		out.Write(b[:n])
		b = b[n:]
	}
	return out.String()
}
