package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/admin"
	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/testutil"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// instance is a wharf running in the test process.
type instance struct {
	url, admin string
	logs       *testutil.LogBuffer
	// stop shuts wharf down as SIGTERM does and returns serve's result.
	stop func() error
}

func startWharf(t *testing.T, args ...string) *instance {
	t.Helper()
	in := startWharfUnready(t, args...)
	// wharf's first sync waits on the engine: poll its health endpoint.
	healthy := func() bool {
		res, err := http.Get(in.admin + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	}
	if !testutil.Poll(15*time.Second, healthy) {
		t.Fatalf("wharf not healthy after 15s; logs:\n%s", in.logs.String())
	}
	return in
}

// startWharfUnready starts wharf without waiting for its first sync.
func startWharfUnready(t *testing.T, args ...string) *instance {
	t.Helper()
	in := &instance{logs: &testutil.LogBuffer{}}
	listen, adminAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	in.url, in.admin = "http://"+listen, "http://"+adminAddr
	cfg, err := parseConfig(append([]string{"--listen", listen, "--admin-listen", adminAddr}, args...),
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(in.logs).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log) }()
	var once sync.Once
	var result error
	in.stop = func() error {
		once.Do(func() { cancel(); result = <-done })
		return result
	}
	t.Cleanup(func() {
		if err := in.stop(); err != nil && !strings.Contains(t.Name(), "Shutdown") {
			t.Errorf("wharf: %v", err)
		}
	})
	return in
}

// server sends one request through wharf and returns the status and the
// Server field of webtest's answer.
func (in *instance) server(t *testing.T, client *http.Client) (int, string) {
	t.Helper()
	res, err := client.Get(in.url + "/webtest?action=get_uuid")
	if err != nil {
		t.Fatalf("GET through wharf: %v", err)
	}
	defer res.Body.Close()
	var body struct {
		IsSuccess bool
		Server    string
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == 200 {
		if err := json.Unmarshal(b, &body); err != nil || !body.IsSuccess {
			t.Fatalf("answer %s: %v", b, err)
		}
	}
	return res.StatusCode, body.Server
}

func (in *instance) services(t *testing.T) []admin.Service {
	t.Helper()
	res, err := http.Get(in.admin + "/api/services")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct{ Services []admin.Service }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Services
}

// waitPeers waits until the default service has exactly the named peers.
// wharf logs each peer that joins or leaves its table, just after the new
// table is in place: the table is read again at each line of its log.
func (in *instance) waitPeers(t *testing.T, names ...string) []admin.Peer {
	t.Helper()
	want := strings.Join(names, ",")
	var got []string
	var peers []admin.Peer
	match := func() bool {
		got, peers = got[:0], nil
		for _, s := range in.services(t) {
			if s.Name == "default" {
				peers = s.Peers
				for _, p := range s.Peers {
					got = append(got, p.Container)
				}
			}
		}
		return strings.Join(got, ",") == want
	}
	if !in.logs.Until(20*time.Second, match) {
		t.Fatalf("peers %v, want %v", got, names)
	}
	return peers
}

// TestDiscoveryEndToEnd is the set-up of the nginx write-up, on the real
// engine: three labelled webtest backends with weights 5/1/1 and internal
// port 6969 published on random host ports, plus three containers that must
// not be balanced.
func TestDiscoveryEndToEnd(t *testing.T) {
	cli := dockertest.Require(t)
	netName := dockertest.Network(t, cli, "webtest")
	otherNet := dockertest.Network(t, cli, "other")
	img := dockertest.WebtestImage(t, cli)
	base := dockertest.UniqueName("webtest")
	backend := func(n int, weight string) *dockertest.Container {
		return dockertest.Run(t, cli, dockertest.ContainerOptions{
			Image: img, Name: fmt.Sprintf("%s%03d", base, n), Network: netName,
			Labels:  map[string]string{"lb.enable": "true", "lb.port": "6969", "lb.weight": weight},
			Publish: []string{"6969/tcp"},
		})
	}
	b1, b2, b3 := backend(1, "5"), backend(2, "1"), backend(3, "1")
	dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Name: base + "-unlabelled", Network: netName})
	dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Name: base + "-elsewhere", Network: otherNet,
		Labels: map[string]string{"lb.enable": "true", "lb.port": "6969"}})
	bad := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Name: base + "-bad", Network: netName,
		Labels: map[string]string{"lb.enable": "true", "lb.port": "6969", "lb.weight": "abc"}})

	// The access log tells when a request's counters are up to date (see
	// the metrics subtest).
	in := startWharf(t, "--network", netName, "--access-log")
	peers := in.waitPeers(t, b1.Name, b2.Name, b3.Name)

	t.Run("addresses are container IP and internal port", func(t *testing.T) {
		for i, c := range []*dockertest.Container{b1, b2, b3} {
			if want := c.IP(netName) + ":6969"; peers[i].Address != want {
				t.Errorf("%s: address %s, want %s (published port %s must not be used)",
					c.Name, peers[i].Address, want, c.HostAddr("6969/tcp"))
			}
		}
	})

	t.Run("bad label warned once", func(t *testing.T) {
		warns := in.logs.Lines("warn", bad.Name, "lb.weight", "abc")
		if len(warns) != 1 {
			t.Fatalf("%d warnings naming %s, lb.weight and abc, want 1:\n%s", len(warns), bad.Name, testutil.Raws(warns))
		}
	})

	t.Run("700 requests split 500/100/100", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		count := map[string]int{}
		for i := 0; i < 700; i++ {
			status, server := in.server(t, client)
			if status != 200 {
				t.Fatalf("request %d: status %d", i, status)
			}
			count[server]++
		}
		want := map[string]int{b1.Name: 500, b2.Name: 100, b3.Name: 100}
		if fmt.Sprint(count) != fmt.Sprint(want) {
			t.Fatalf("spread %v, want %v", count, want)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		want := []string{
			"wharf_engine_connected 1\n",
			"wharf_discovery_resyncs_total 1\n",
			fmt.Sprintf(`wharf_peer_attempts_total{address="%s:6969",code="2xx",container="%s",service="default"} 500`, b1.IP(netName), b1.Name),
			`wharf_requests_total{code="2xx",service="default"} 700`,
		}
		// wharf updates a request's counters just after its answer went
		// out, and then writes its access log line: once the 700 lines
		// are written, the counters hold the 700 requests.
		in.logs.Wait(t, 700, 5*time.Second, "info", `"message":"request"`)
		res, err := http.Get(in.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var missing []string
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				missing = append(missing, w)
			}
		}
		for _, w := range missing {
			t.Errorf("/metrics lacks %s", w)
		}
	})

	t.Run("a container started later receives traffic", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		start := time.Now()
		b4 := backend(4, "1")
		runReturned := time.Since(start)
		deadline := time.Now().Add(20 * time.Second)
		for {
			status, server := in.server(t, client)
			if status != 200 {
				t.Fatalf("status %d while a backend joined", status)
			}
			if server == b4.Name {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never received a request", b4.Name)
			}
		}
		t.Logf("first request routed to the new container %v after docker run began (run itself took %v)",
			time.Since(start).Round(time.Millisecond), runReturned.Round(time.Millisecond))
	})

	t.Run("a stopped container receives nothing", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		b2.Stop(10 * time.Second)
		for i := 0; i < 100; i++ {
			status, server := in.server(t, client)
			if status != 200 || server == b2.Name {
				t.Fatalf("request %d after stop: status %d server %s", i, status, server)
			}
		}
	})
}
