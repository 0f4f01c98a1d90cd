package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/testutil"
)

// Errors that name the fix: each situation a user meets when wiring wharf
// to Docker ends in a log line that says what to do.

// waitLog waits until a line of level contains every word.
func waitLog(t *testing.T, logs *testutil.LogBuffer, level string, words ...string) string {
	t.Helper()
	return logs.Wait(t, 1, 15*time.Second, level, words...)[0].Raw
}

func TestErrorSocketMissing(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "docker.sock"))
	in := startWharfUnready(t, "--network", "webtest")
	waitLog(t, in.logs, "error", "no Docker socket", "-v /var/run/docker.sock:/var/run/docker.sock:ro", "DOCKER_HOST")
}

// A socket wharf may not open: wharf runs as an unprivileged user against a
// socket only root can use, as in a non-root image without group_add.
func TestErrorSocketPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run wharf as another user")
	}
	dir, err := os.MkdirTemp("", "wharf-perm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(sock, 0o660) // root:root, like /var/run/docker.sock without the docker group
	bin := filepath.Join(dir, "wharf")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	os.Chmod(bin, 0o755)
	cmd := exec.Command(bin, "--network", "webtest", "--listen", testutil.FreeAddr(t), "--admin-listen", "", "--log-format", "json")
	cmd.Env = []string{"DOCKER_HOST=unix://" + sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var logs testutil.LogBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitLog(t, &logs, "error", "permission denied", "group")
}

// --network names a network that does not exist yet: wharf says so, keeps
// watching, and balances its containers once it is created.
func TestErrorNetworkNotFoundThenCreated(t *testing.T) {
	cli := dockertest.Require(t)
	name := dockertest.UniqueName("later")
	in := startWharf(t, "--network", name)
	waitLog(t, in.logs, "warn", "not found", "docker network create "+name)

	net := dockertest.NetworkNamed(t, cli, name)
	c := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: dockertest.WebtestImage(t, cli), Network: net,
		Labels: map[string]string{"lb.enable": "true", "lb.port": "6969"}})
	in.waitPeers(t, c.Name)
}

// wharf in a container that is not attached to the network cannot reach
// any peer: it says which command attaches it.
func TestErrorWharfContainerNotAttached(t *testing.T) {
	cli := dockertest.Require(t)
	net := dockertest.Network(t, cli, "webtest")
	img := dockertest.BuildImage(t, cli, "wharf", dockertest.ImageOptions{})
	c := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img,
		Cmd:   []string{"--network", net, "--log-format", "json"},
		Binds: []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}})
	want := "docker network connect " + net + " " + c.Name
	// wharf runs in a container: its log is read from the engine, which
	// gives no signal when a line is added.
	if !testutil.Poll(20*time.Second, func() bool { return strings.Contains(c.Logs(), want) }) {
		t.Fatalf("no %q in the logs:\n%s", want, c.Logs())
	}
}
