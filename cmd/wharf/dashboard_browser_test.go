package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/wharflb/wharf/admin"
	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
)

// requireChromium returns the path of a Chromium or Chrome binary. When
// there is none it skips the test with a one-line reason, or fails it when
// WHARF_REQUIRE_DOCKER=1 (as on CI, which installs Debian's chromium).
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	const reason = "no Chromium on PATH (apt-get install chromium)"
	if os.Getenv(dockertest.RequireEnv) == "1" {
		t.Fatalf("%s; %s=1 requires the browser test", reason, dockertest.RequireEnv)
	}
	t.Skip(reason)
	return ""
}

// browser is one headless Chromium tab. Exceptions thrown by the page and
// console.error calls are collected; the test fails if there are any.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
}

// startBrowser starts Chromium at path, with extra options after the
// project's own.
func startBrowser(t *testing.T, path string, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	b := &browser{}
	// Everything the browser does is bounded by this context.
	root, cancelRoot := context.WithTimeout(context.Background(), 2*time.Minute)
	// The page is this test's own: the sandbox, which does not start as
	// root, protects nothing here.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1200, 800))
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			msg = "console.error:"
			for _, a := range ev.Args {
				msg += " " + string(a.Value) + a.Description
			}
		default:
			return
		}
		b.mu.Lock()
		b.errs = append(b.errs, msg)
		b.mu.Unlock()
	}))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelRoot()
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.errs) > 0 {
			t.Errorf("the page reported errors:\n%s", strings.Join(b.errs, "\n"))
		}
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", path, err)
	}
	t.Logf("%s started in %v", path, time.Since(start).Round(time.Millisecond))
	b.ctx = ctx
	return b
}

func (b *browser) navigate(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
}

// pageRow is one peer row of the dashboard as the page shows it.
type pageRow struct {
	Container string `json:"container"`
	State     string `json:"state"`
	Requests  string `json:"requests"`
	Total     string `json:"total"` // share of the service's requests, all time
	Task      string `json:"task"`  // the Swarm task line, "" when hidden
}

func (r pageRow) String() string {
	return fmt.Sprintf("%s=%s(%s, %s)", r.Container, r.State, r.Requests, r.Total)
}

// rowsJS reads the peer rows: the cells are peer, weight, state, in
// flight, requests, failures, recent share, total share.
const rowsJS = `[...document.querySelectorAll("tr[data-container]")].map((r) => ({
	container: r.dataset.container,
	state: r.dataset.state,
	requests: r.cells[4].textContent.trim(),
	total: r.cells[7].textContent.trim(),
	task: (t => t && !t.hidden ? t.textContent : "")(r.cells[0].querySelector(".task")),
}))`

// waitRows reads the page's rows until ok accepts them, for at most 30s.
// The page lives in Chromium, which tells nothing when it redraws: poll it.
func (b *browser) waitRows(t *testing.T, what string, ok func(map[string]pageRow) bool) map[string]pageRow {
	t.Helper()
	var rows []pageRow
	var byName map[string]pageRow
	var err error
	read := func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		rows, err = chromedp.Run(ctx, chromedp.Evaluate[[]pageRow](rowsJS))
		cancel()
		byName = map[string]pageRow{}
		for _, r := range rows {
			byName[r.Container] = r
		}
		return err == nil && ok(byName)
	}
	if !testutil.Poll(30*time.Second, read) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		conn, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("conn").textContent`))
		cancel()
		t.Fatalf("after 30s, %s: the page shows %v (connection %q, error %v)", what, rows, conn, err)
	}
	return byName
}

// TestDashboardInBrowser runs the demo's set-up on the real engine (three
// labelled webtest containers, weights 5/1/1), loads the dashboard in
// headless Chromium, and watches the peers appear with their spread, and a
// stopped container leave.
func TestDashboardInBrowser(t *testing.T) {
	chromium := requireChromium(t)
	cli := dockertest.Require(t)
	netName := dockertest.Network(t, cli, "webtest")
	img := dockertest.WebtestImage(t, cli)
	base := dockertest.UniqueName("dash")
	var names []string
	var peers []*dockertest.Container
	for i, weight := range []string{"5", "1", "1"} {
		c := dockertest.Run(t, cli, dockertest.ContainerOptions{
			Image: img, Name: fmt.Sprintf("%s%03d", base, i+1), Network: netName,
			Labels: map[string]string{"lb.enable": "true", "lb.port": "6969", "lb.weight": weight},
		})
		peers = append(peers, c)
		names = append(names, c.Name)
	}
	in := startWharf(t, "--network", netName)
	in.waitPeers(t, names...)
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 70; i++ {
		if status, _ := in.server(t, client); status != 200 {
			t.Fatalf("request %d: status %d", i, status)
		}
	}

	b := startBrowser(t, chromium)
	b.navigate(t, in.admin+"/")

	want := map[string]pageRow{
		names[0]: {names[0], "ready", "50", "71%", ""},
		names[1]: {names[1], "ready", "10", "14%", ""},
		names[2]: {names[2], "ready", "10", "14%", ""},
	}
	b.waitRows(t, fmt.Sprintf("want %v", want), func(rows map[string]pageRow) bool {
		return fmt.Sprint(rows) == fmt.Sprint(want)
	})

	stopped := peers[1]
	start := time.Now()
	stopped.Stop(10 * time.Second)
	b.waitRows(t, stopped.Name+" shown gone, the others ready", func(rows map[string]pageRow) bool {
		return rows[stopped.Name].State == "gone" &&
			rows[names[0]].State == "ready" && rows[names[2]].State == "ready"
	})
	t.Logf("%s shown gone %v after docker stop began", stopped.Name, time.Since(start).Round(time.Millisecond))
	b.waitRows(t, stopped.Name+" removed from the page", func(rows map[string]pageRow) bool {
		_, shown := rows[stopped.Name]
		return !shown && len(rows) == 2
	})
	t.Logf("%s removed from the page %v after docker stop began", stopped.Name, time.Since(start).Round(time.Millisecond))
}

// TestDashboardShowsTasks serves the admin page of a table with a Swarm
// task and a container, and checks that the page shows the task's node,
// slot, state and desired state, and nothing of the kind for the
// container.
func TestDashboardShowsTasks(t *testing.T) {
	chromium := requireChromium(t)
	bal := lb.New()
	bal.Update("test", []lb.Backend{
		{ID: "c1", Name: "webtest001", Network: "tcp", Addr: "172.18.0.2:6969", Weight: 1},
		{ID: "t1", Name: "api.3", Network: "tcp", Addr: "10.0.1.7:6969", Weight: 1,
			Task: lb.Task{Node: "node2", Slot: 3, State: "running", DesiredState: "running"}},
	})
	srv := httptest.NewServer(admin.New(bal, func() bool { return true }, admin.Access{}))
	t.Cleanup(srv.Close) // after the browser's cleanup has closed its event stream
	b := startBrowser(t, chromium)
	b.navigate(t, srv.URL+"/")
	b.waitRows(t, "the task's line under api.3 only", func(rows map[string]pageRow) bool {
		return len(rows) == 2 && rows["api.3"].Task == "node2 · slot 3 · running, desired running" && rows["webtest001"].Task == ""
	})
}
