package swarmtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/wharflb/wharf/internal/dockertest"
)

// crashEnv makes TestSweepCrashedRun play the test process that dies: it
// names the image tar to load.
const crashEnv = "WHARF_SWARMTEST_CRASH_TAR"

// panicEnv makes TestTeardownOnPanic play the test that panics.
const panicEnv = "WHARF_SWARMTEST_PANIC_TAR"

// TestSweepCrashedRun starts a swarm with a running container in a test
// process that then dies by SIGKILL, so that none of its cleanup runs, and
// checks that the sweep every Start begins with removes all of that run:
// its engines, containerd, shims and container, namespaces, cgroups,
// directory and subnet claim.
func TestSweepCrashedRun(t *testing.T) {
	if tar := os.Getenv(crashEnv); tar != "" {
		crash(t, tar)
		return
	}
	requireHost(t)
	tar, img := webtestTar(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The crashing process names its run, then waits for a line on its
	// stdin before it kills itself; this test holds the lock of BaseDir
	// from before that line until its sweep has run, so that no other
	// test process sweeps the crashed run first.
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSweepCrashedRun$", "-test.v")
	cmd.Env = append(os.Environ(), crashEnv+"="+tar, "CRASH_IMAGE="+img)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var out strings.Builder
	var id string
	var containerPID int
	re := regexp.MustCompile(`^SWARMTEST-RUN ([0-9a-f]{6}) (\d+)$`)
	sc := bufio.NewScanner(pr)
	for id == "" && sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			id = m[1]
			containerPID, _ = strconv.Atoi(m[2])
		}
	}
	if id == "" {
		cmd.Wait()
		t.Fatalf("the crashing test process did not name its run:\n%s", out.String())
	}
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(pr)
		rest <- string(b)
	}()

	err = lockBase(func() error {
		fmt.Fprintln(stdin, "crash")
		err := cmd.Wait()
		if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !st.Signaled() || st.Signal() != syscall.SIGKILL {
			t.Fatalf("the crashing test process ended with %v, want SIGKILL:\n%s%s", err, out.String(), <-rest)
		}
		checkSweep(t, id, containerPID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkSweep checks that the dead run id left its engines and container
// (pid) behind, sweeps, and checks that nothing of the run is left. The
// caller holds the lock of BaseDir.
func checkSweep(t *testing.T, id string, containerPID int) {
	t.Helper()
	crashed := &Swarm{ID: id, Dir: filepath.Join(BaseDir, id)}
	nss := runNetns(id)
	if len(nss) != 3 {
		t.Errorf("namespaces of the crashed run: %v, want a hub and 2 nodes", nss)
	}
	nets := map[string]bool{}
	for _, ns := range nss {
		if net, err := nsID("net", "/run/netns/"+ns); err == nil {
			nets[net] = true
		}
	}
	engines := 0
	for _, p := range procs() {
		if nets[p.net] {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.pid)); strings.TrimSpace(string(comm)) == "dockerd" {
				engines++
			}
		}
	}
	if engines != 2 {
		t.Errorf("%d engines of the crashed run running, want 2", engines)
	}
	if err := syscall.Kill(containerPID, 0); err != nil {
		t.Errorf("the crashed run's container (pid %d) is not running: %v", containerPID, err)
	}
	before := crashed.Leftovers()
	t.Logf("the crashed run %s left %d things, e.g. %s", id, len(before), strings.Join(before[:min(3, len(before))], ", "))

	t0 := time.Now()
	if err := sweepLocked(); err != nil {
		t.Errorf("sweep: %v", err)
	}
	t.Logf("swept in %s", since(t0))
	if left := crashed.Leftovers(); len(left) > 0 {
		t.Errorf("left after the sweep:\n%s", strings.Join(left, "\n"))
	}
	if p, ok := readProc(containerPID); ok && p.state != 'Z' {
		t.Errorf("the crashed run's container (pid %d) still runs after the sweep", containerPID)
	}
	ents, _ := os.ReadDir(BaseDir)
	for _, e := range ents {
		if b, _ := os.ReadFile(filepath.Join(BaseDir, e.Name())); strings.HasPrefix(e.Name(), "net-") && string(b) == id {
			t.Errorf("subnet claim %s of the crashed run left after the sweep", e.Name())
		}
	}
}

// webtestTar builds the webtest image on the main engine and saves it to
// a tar file, for a test process that cannot use the main engine (its
// image would outlive it).
func webtestTar(t *testing.T) (tar, img string) {
	t.Helper()
	main := dockertest.Require(t)
	img = dockertest.WebtestImage(t, main)
	tar = filepath.Join(t.TempDir(), "webtest.tar")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, err := main.ImageSave(ctx, []string{img})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.Create(tar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return tar, img
}

// TestTeardownOnPanic checks that a test that panics with a swarm running
// (and a container on it) still removes all of its run: the cleanup runs
// while the panic unwinds the test.
func TestTeardownOnPanic(t *testing.T) {
	if tar := os.Getenv(panicEnv); tar != "" {
		sw, _ := runWithContainer(t, tar)
		fmt.Printf("SWARMTEST-RUN %s\n", sw.ID)
		panic("the test panics with its swarm running")
	}
	requireHost(t)
	tar, img := webtestTar(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestTeardownOnPanic$", "-test.v")
	cmd.Env = append(os.Environ(), panicEnv+"="+tar, "CRASH_IMAGE="+img)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "the test panics with its swarm running") {
		t.Fatalf("the panicking test process ended with %v, want a panic:\n%s", err, out)
	}
	m := regexp.MustCompile(`SWARMTEST-RUN ([0-9a-f]{6})`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("the panicking test process did not name its run:\n%s", out)
	}
	id := string(m[1])
	if !strings.Contains(string(out), "swarmtest: run "+id+" torn down") {
		t.Errorf("the panicking test did not log its teardown:\n%s", out)
	}
	// Without a sweep: the panicking process must have removed it all.
	if nss := runNetns(id); len(nss) > 0 {
		t.Errorf("namespaces of run %s left: %v", id, nss)
	}
	if cgs := runCgroups(id); len(cgs) > 0 {
		t.Errorf("cgroups of run %s left: %v", id, cgs)
	}
	if _, err := os.Stat(filepath.Join(BaseDir, id)); err == nil {
		t.Errorf("directory of run %s left", id)
	}
	for _, p := range procs() {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid)); err == nil && p.state != 'Z' && strings.Contains(string(b), filepath.Join(BaseDir, id)) {
			t.Errorf("process %d of run %s left: %q", p.pid, id, b)
		}
	}
}

// runWithContainer starts a swarm of two nodes and runs a webtest
// container (from the image in tar) on node 1.
func runWithContainer(t *testing.T, tar string) (*Swarm, int) {
	sw := Start(t, Options{Nodes: 2})
	sw.LoadImageTar(tar)
	n := sw.Node(1)
	ctx, cancel := callCtx()
	defer cancel()
	c, err := n.Client.ContainerCreate(ctx, &container.Config{Image: os.Getenv("CRASH_IMAGE")}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := n.Client.ContainerInspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return sw, info.State.Pid
}

// crash starts a swarm of two nodes, runs a container on node 1, prints
// the run's id and the container's pid, and kills its own process.
func crash(t *testing.T, tar string) {
	sw, pid := runWithContainer(t, tar)
	fmt.Printf("SWARMTEST-RUN %s %d\n", sw.ID, pid)
	os.Stdout.Sync()
	bufio.NewReader(os.Stdin).ReadString('\n')
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
