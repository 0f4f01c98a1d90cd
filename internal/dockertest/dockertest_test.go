package dockertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// fakeTB records what Require would do to a test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }

func TestRequireNoEngine(t *testing.T) {
	err := errors.New("docker engine not reachable: Cannot connect to the Docker daemon\nat unix:///var/run/docker.sock.")
	var skip, fail fakeTB
	require(&skip, err, false)
	require(&fail, err, true)
	if skip.failed != "" || !strings.HasPrefix(skip.skipped, "docker engine not reachable: Cannot connect to the Docker daemon at unix:") {
		t.Errorf("without %s: skipped %q, failed %q; want a skip", RequireEnv, skip.skipped, skip.failed)
	}
	if fail.skipped != "" || !strings.Contains(fail.failed, "not reachable") {
		t.Errorf("with %s=1: skipped %q, failed %q; want a failure", RequireEnv, fail.skipped, fail.failed)
	}
	for _, s := range []string{skip.skipped, fail.failed} {
		if strings.Contains(s, "\n") {
			t.Errorf("reason %q is not one line", s)
		}
	}
}

func TestUniqueName(t *testing.T) {
	re := regexp.MustCompile(`^web-` + RunID() + `-\d+$`)
	a, b := UniqueName("web"), UniqueName("web")
	if a == b || !re.MatchString(a) || !re.MatchString(b) {
		t.Errorf("UniqueName = %q, %q; want two distinct names matching %s", a, b, re)
	}
}

func TestDockerfile(t *testing.T) {
	got := dockerfile("webtest", ImageOptions{
		Expose: []string{"6969/tcp"},
		Env:    []string{`A=x "$y" \z`},
		Healthcheck: &Healthcheck{
			Cmd: []string{"/webtest", "healthcheck"}, Interval: 500 * time.Millisecond, Retries: 1,
		},
	})
	want := `FROM scratch
COPY webtest /webtest
EXPOSE 6969/tcp
ENV A="x \"\$y\" \\z"
HEALTHCHECK --interval=500ms --retries=1 CMD ["/webtest","healthcheck"]
ENTRYPOINT ["/webtest"]
`
	if got != want {
		t.Errorf("dockerfile =\n%s\nwant\n%s", got, want)
	}
}

type uuidAnswer struct {
	IsSuccess bool
	Data      string
	Server    string
}

func getUUID(t *testing.T, addr string) uuidAnswer {
	t.Helper()
	resp, err := HTTPClient.Get("http://" + addr + "/webtest?action=get_uuid")
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	var a uuidAnswer
	if err := json.Unmarshal(b, &a); err != nil || resp.StatusCode != 200 || !a.IsSuccess {
		t.Fatalf("GET %s: %s %q (%v), want a get_uuid answer", addr, resp.Status, b, err)
	}
	return a
}

// TestWebtestContainer runs webtest on a fresh network, reaches it at its
// address on the network and at its published port, drives its lifecycle,
// and checks that nothing of the test is left once it has ended.
func TestWebtestContainer(t *testing.T) {
	cli := Require(t)
	img := WebtestImage(t, cli)
	if again := WebtestImage(t, cli); again != img {
		t.Errorf("second WebtestImage = %q, want the cached %q", again, img)
	}

	t.Run("lifecycle", func(t *testing.T) {
		net := Network(t, cli, "net")
		c := Run(t, cli, ContainerOptions{
			Image:   img,
			Network: net,
			Labels:  map[string]string{"lb.enable": "true", "lb.port": "6969"},
			Publish: []string{WebtestPort},
		})
		addr := c.Addr(net, WebtestPort)
		if ip := netip.MustParseAddrPort(addr).Addr(); !ip.Is4() || !ip.IsPrivate() {
			t.Errorf("address on %s = %s, want a private IPv4 bridge address", net, addr)
		}
		WaitTCP(t, addr, 10*time.Second)
		if a := getUUID(t, addr); a.Server != c.Name {
			t.Errorf("Server = %q, want the container name %q", a.Server, c.Name)
		}
		if a := getUUID(t, c.HostAddr(WebtestPort)); a.Server != c.Name {
			t.Errorf("via published port: Server = %q, want %q", a.Server, c.Name)
		}

		info := c.Inspect()
		if got := info.Config.Labels["lb.weight"]; got != "" {
			t.Errorf("label lb.weight = %q, want none", got)
		}
		if got := info.Config.Labels[Label]; got != RunID() {
			t.Errorf("label %s = %q, want %q", Label, got, RunID())
		}

		c.Stop(5 * time.Second) // webtest handles SIGTERM: exits 0 at once
		if info := c.Inspect(); info.State.Running || info.State.ExitCode != 0 {
			t.Errorf("after stop: running %v, exit code %d; want stopped with 0\n%s", info.State.Running, info.State.ExitCode, c.Logs())
		}
		c.Start()
		WaitTCP(t, c.Addr(net, WebtestPort), 10*time.Second)
		getUUID(t, c.Addr(net, WebtestPort))

		c.Kill("KILL")
		c.WaitState("exited", 10*time.Second)
		if code := c.Inspect().State.ExitCode; code != 137 {
			t.Errorf("after kill: exit code %d, want 137", code)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	left, err := Leftovers(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		if !strings.HasPrefix(l, "image ") { // images stay until Main ends
			t.Errorf("left behind after the test: %s", l)
		}
	}
}

// TestWebtestHealthcheck checks that the HEALTHCHECK of the webtest image
// works in a scratch image and follows the /healthz toggle.
func TestWebtestHealthcheck(t *testing.T) {
	cli := Require(t)
	img := WebtestHealthImage(t, cli)
	net := Network(t, cli, "net")
	c := Run(t, cli, ContainerOptions{Image: img, Network: net})
	c.WaitHealth("healthy", 20*time.Second)

	resp, err := HTTPClient.Post("http://"+c.Addr(net, WebtestPort)+"/healthz?fail=1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.WaitHealth("unhealthy", 20*time.Second)

	resp, err = HTTPClient.Post("http://"+c.Addr(net, WebtestPort)+"/healthz?fail=0", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.WaitHealth("healthy", 20*time.Second)
}

// TestStopDrains checks the graceful stop of webtest in a container: a
// request in flight when "docker stop" begins still gets its answer.
func TestStopDrains(t *testing.T) {
	cli := Require(t)
	img := WebtestImage(t, cli)
	net := Network(t, cli, "net")
	c := Run(t, cli, ContainerOptions{Image: img, Network: net})
	addr := c.Addr(net, WebtestPort)
	WaitTCP(t, addr, 10*time.Second)

	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := HTTPClient.Get("http://" + addr + "/webtest?action=get_uuid&delay=1s")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{string(b), err}
	}()
	time.Sleep(300 * time.Millisecond) // let the request reach the container
	c.Stop(5 * time.Second)
	r := <-done
	if r.err != nil || !strings.Contains(r.body, `"IsSuccess":true`) {
		t.Errorf("in-flight request: %q, %v; want a complete answer\n%s", r.body, r.err, c.Logs())
	}
	if code := c.Inspect().State.ExitCode; code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// TestConcurrentBuild checks that parallel tests asking for the same image
// build it once.
func TestConcurrentBuild(t *testing.T) {
	cli := Require(t)
	tags := make(chan string, 4)
	t.Run("group", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				tags <- WebtestImage(t, cli)
			})
		}
	})
	close(tags)
	first := <-tags
	for tag := range tags {
		if tag != first {
			t.Errorf("tags %q and %q, want one image", first, tag)
		}
	}
}
