// Package dockertest runs integration tests against the real Docker Engine:
// it builds FROM scratch images of this module's commands, creates
// networks and containers, and removes all of them again.
//
// Every object it creates carries the label Label ("wharf.test") with the
// value RunID(), unique to the test binary process, so that test packages
// running in parallel never touch each other's objects. Containers and
// networks are removed in t.Cleanup, also when the test fails; images are
// shared by the tests of a package and removed by Main, which a package
// using this one calls from its TestMain:
//
//	func TestMain(m *testing.M) { dockertest.Main(m) }
//
// Require skips a test when no engine is reachable, or fails it when the
// environment variable WHARF_REQUIRE_DOCKER is 1 (as on CI).
//
// Images need no registry and no BuildKit: the binary is compiled on the
// host (CGO_ENABLED=0) and sent with a generated FROM scratch Dockerfile to
// the engine's classic builder. The client negotiates its API version, so
// an engine as old as API 1.41 works.
//
// All functions are safe for concurrent use by parallel tests. Every engine
// call is bounded by a timeout.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// Label is the label every object created by this package carries; its
// value is RunID().
const Label = "wharf.test"

// CaseLabel names the test that created a container or network.
const CaseLabel = "wharf.test.case"

// RequireEnv is the environment variable that turns a missing engine into
// a test failure instead of a skip.
const RequireEnv = "WHARF_REQUIRE_DOCKER"

// callTimeout bounds each engine call.
const callTimeout = 30 * time.Second

var (
	runID   = newRunID()
	counter atomic.Uint64

	clientOnce sync.Once
	sharedCli  *client.Client
	clientErr  error
)

func newRunID() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// RunID returns the value of Label on the objects of this test binary
// process: eight lower-case hex digits.
func RunID() string { return runID }

// UniqueName returns prefix-RUNID-N, a name no other test and no other test
// process uses. prefix should be short, lower case, letters, digits and '-',
// so that the name is also a valid hostname and image name.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, runID, counter.Add(1))
}

// Client returns the engine client shared by the process, created with
// client.FromEnv and API version negotiation, and an error if the engine
// does not answer a ping. The ping is done once.
func Client() (*client.Client, error) {
	clientOnce.Do(func() {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			clientErr = fmt.Errorf("docker client: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := cli.Ping(ctx); err != nil {
			cli.Close()
			clientErr = fmt.Errorf("docker engine not reachable: %w", err)
			return
		}
		cli.NegotiateAPIVersion(ctx)
		sharedCli = cli
	})
	return sharedCli, clientErr
}

// Require returns the engine client. When no engine is reachable it skips
// the test with a one-line reason, or fails it when WHARF_REQUIRE_DOCKER=1.
func Require(tb testing.TB) *client.Client {
	tb.Helper()
	cli, err := Client()
	if err != nil {
		require(tb, err, os.Getenv(RequireEnv) == "1")
		return nil
	}
	return cli
}

func require(tb testing.TB, err error, must bool) {
	tb.Helper()
	reason := strings.Join(strings.Fields(err.Error()), " ")
	if must {
		tb.Fatalf("%s (%s=1)", reason, RequireEnv)
		return
	}
	tb.Skipf("%s (set %s=1 to fail instead)", reason, RequireEnv)
}

// Main runs the tests of m, then removes every container, network and
// image of this process and the compiled binaries, and exits with the
// tests' code (or 1 when something could not be removed).
func Main(m *testing.M) {
	code := m.Run()
	if err := Teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Teardown removes every container, network and image carrying this
// process's run label, and the compiled binaries. It reports what it could
// not remove. Main calls it; it is exported for a TestMain that needs to do
// more.
func Teardown() error {
	removeBinaries()
	if sharedCli == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []string
	if err := removeAll(ctx, sharedCli); err != nil {
		errs = append(errs, err.Error())
	}
	if left, err := Leftovers(ctx, sharedCli); err != nil {
		errs = append(errs, err.Error())
	} else if len(left) > 0 {
		errs = append(errs, "left behind: "+strings.Join(left, ", "))
	}
	if len(errs) > 0 {
		return fmt.Errorf("teardown of run %s: %s", runID, strings.Join(errs, "; "))
	}
	return nil
}

func runFilter() filters.Args {
	return filters.NewArgs(filters.Arg("label", Label+"="+runID))
}

func removeAll(ctx context.Context, cli *client.Client) error {
	var errs []string
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: runFilter()})
	if err != nil {
		errs = append(errs, fmt.Sprintf("list containers: %v", err))
	}
	for _, c := range cs {
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Sprintf("remove container %s: %v", c.ID[:12], err))
		}
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: runFilter()})
	if err != nil {
		errs = append(errs, fmt.Sprintf("list networks: %v", err))
	}
	for _, n := range ns {
		if err := cli.NetworkRemove(ctx, n.ID); err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Sprintf("remove network %s: %v", n.Name, err))
		}
	}
	is, err := cli.ImageList(ctx, image.ListOptions{All: true, Filters: runFilter()})
	if err != nil {
		errs = append(errs, fmt.Sprintf("list images: %v", err))
	}
	for _, im := range is {
		_, err := cli.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !client.IsErrNotFound(err) {
			errs = append(errs, fmt.Sprintf("remove image %s: %v", im.ID, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Leftovers lists the containers, networks and images of this process that
// still exist, as "container NAME", "network NAME" or "image ID".
func Leftovers(ctx context.Context, cli *client.Client) ([]string, error) {
	var left []string
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: runFilter()})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs {
		left = append(left, "container "+strings.TrimPrefix(strings.Join(c.Names, ","), "/"))
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: runFilter()})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range ns {
		left = append(left, "network "+n.Name)
	}
	is, err := cli.ImageList(ctx, image.ListOptions{All: true, Filters: runFilter()})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	for _, im := range is {
		left = append(left, "image "+im.ID)
	}
	return left, nil
}

// HTTPClient is an HTTP client for talking to test containers: it never
// uses a proxy from the environment and gives up after 10 seconds.
var HTTPClient = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	},
}

// WaitTCP waits until addr accepts a TCP connection, failing tb after
// timeout.
func WaitTCP(tb testing.TB, addr string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("dockertest: %s not accepting connections after %s: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}
