package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/internal/dockertest"
	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy"
)

// LatencyCyclesEnv sets the number of cycles of TestDiscoveryLatency
// (default 10; 50 for the figures of record).
const LatencyCyclesEnv = "WHARF_LATENCY_CYCLES"

// latencyLanes is how many cycles run at the same time, each lane with its
// own network, watcher, balancer, proxy and load.
const latencyLanes = 2

// TestDiscoveryLatency measures discovery's two latencies on the real
// engine, through a Watcher, a Balancer and the proxy's data path wired as
// wharf wires them, under continuous load from 127.0.0.1 (two clients per
// lane, each sending a request every millisecond):
//
//   - join: from a backend's port accepting connections (learnt by
//     dialling it from the host every millisecond; the backend opens it
//     300ms after it starts, so the Watcher is already probing) to the
//     arrival at the backend of its first request routed by wharf;
//   - leave: from the kill event of docker stop (its timeNano) to the
//     arrival of the last request wharf sent to it (the backend keeps
//     serving for 400ms after SIGTERM, so any request sent to it late is
//     seen). The publish that took it out is reported too.
//
// The backend stamps arrivals with its clock, which is the host's. The
// figures are reported, not asserted, beyond a generous sanity bound.
func TestDiscoveryLatency(t *testing.T) {
	cli := dockertest.Require(t)
	cycles := 10
	if v := os.Getenv(LatencyCyclesEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of cycles", LatencyCyclesEnv, v)
		}
		cycles = n
	}
	img := testwebImage(t, cli)
	start := time.Now()

	var mu sync.Mutex
	var all []cycleResult
	t.Run("lanes", func(t *testing.T) {
		for lane := 0; lane < latencyLanes; lane++ {
			n := cycles / latencyLanes
			if lane < cycles%latencyLanes {
				n++
			}
			t.Run(fmt.Sprint(lane), func(t *testing.T) {
				t.Parallel()
				rs := runLane(t, cli, img, n)
				mu.Lock()
				all = append(all, rs...)
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}

	var join, leave, pub []float64
	failed, after := 0, 0
	for _, r := range all {
		join = append(join, ms(r.join))
		leave = append(leave, ms(r.leave))
		pub = append(pub, ms(r.published))
		failed += r.failed
		if r.leave > 0 {
			after++
		}
	}
	t.Logf("%d cycles in %v (%d lanes)", len(all), time.Since(start).Round(time.Second), latencyLanes)
	t.Logf("join:    port accepting -> first routed request arrived:  p50 %.2fms p99 %.2fms max %.2fms (target <= 50ms)",
		pct(join, 50), pct(join, 99), pct(join, 100))
	t.Logf("leave:   kill event -> last request arrived (<= 0: none after the event, %d of %d cycles had one after): p50 %.2fms p99 %.2fms max %.2fms (target <= 10ms)",
		after, len(all), pct(leave, 50), pct(leave, 99), pct(leave, 100))
	t.Logf("publish: kill event -> set without it published:          p50 %.2fms p99 %.2fms max %.2fms",
		pct(pub, 50), pct(pub, 99), pct(pub, 100))
	if pct(join, 99) > 1000 || pct(leave, 99) > 1000 {
		t.Errorf("p99 beyond the sanity bound of 1s")
	}
	if failed > 0 {
		t.Errorf("%d requests failed while backends joined and left", failed)
	}
}

type cycleResult struct {
	join      time.Duration // port accepting -> first routed request arrived
	leave     time.Duration // kill event -> last request arrived (<= 0: none after the event)
	published time.Duration // kill event -> set without it published
	failed    int
}

// arrivals records, per backend, when the first and the last request
// routed to it arrived.
type arrivals struct {
	mu     sync.Mutex
	first  map[string]int64
	last   map[string]int64
	count  map[string]int
	failed int
	notify chan struct{}
}

func (a *arrivals) add(server string, received int64) {
	a.mu.Lock()
	if _, ok := a.first[server]; !ok {
		a.first[server] = received
	}
	a.last[server] = max(a.last[server], received)
	a.count[server]++
	a.mu.Unlock()
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// waitCount waits until server answered n requests; it returns the arrival
// of the first and of the last one.
func (a *arrivals) waitCount(t *testing.T, server string, n int, timeout time.Duration) (first, last int64) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		c, f, l := a.count[server], a.first[server], a.last[server]
		a.mu.Unlock()
		if c >= n {
			return f, l
		}
		select {
		case <-a.notify:
		case <-deadline.C:
			t.Fatalf("%s answered %d requests through wharf after %s, want %d", server, c, timeout, n)
		}
	}
}

func (a *arrivals) lastOf(server string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last[server]
}

// runLane runs n join-and-leave cycles on a network of its own and returns
// their figures.
func runLane(t *testing.T, cli *client.Client, img string, n int) []cycleResult {
	net := dockertest.Network(t, cli, "lat")
	evs := watchEvents(t, cli)
	bal := lb.New(lb.OnRemove(proxy.ClosePeer))
	rec := newRecorder()
	logs := &testutil.LogBuffer{}
	w := New(cli, Config{Network: net, Log: zerolog.New(logs).Level(zerolog.InfoLevel)}, func(set []lb.Backend) {
		bal.Update("docker", set)
		rec.publish(set)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	url := serveProxy(t, bal)
	defer func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("watcher log:\n%s", logs.String())
		}
	}()

	base := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: img, Network: net, Labels: enabled(TestwebPort)})
	rec.waitIn(t, base.ID, true, routeTimeout)

	arr := &arrivals{first: map[string]int64{}, last: map[string]int64{}, count: map[string]int{}, notify: make(chan struct{}, 1)}
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	for range 2 {
		load.Add(1)
		go func() {
			defer load.Done()
			sendLoad(loadCtx, url, arr)
		}()
	}
	defer func() {
		stopLoad()
		load.Wait()
	}()
	arr.waitCount(t, base.Name, 10, routeTimeout)

	var rs []cycleResult
	for i := 0; i < n; i++ {
		rs = append(rs, runCycle(t, cli, img, net, evs, rec, arr))
	}
	return rs
}

// serveProxy serves the data path for bal on 127.0.0.1, until the test
// ends, and returns its URL.
func serveProxy(t *testing.T, bal *lb.Balancer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.NewFastServer(bal, proxy.Config{Log: zerolog.Nop()})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// sendLoad sends a GET through wharf every millisecond until ctx is done,
// at most 10 minutes, recording where each answer came from.
func sendLoad(ctx context.Context, url string, arr *arrivals) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
	defer c.CloseIdleConnections()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	end := time.After(10 * time.Minute)
	for {
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
		res, err := c.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				arr.mu.Lock()
				arr.failed++
				arr.mu.Unlock()
			}
			continue
		}
		var a answer
		err = json.NewDecoder(res.Body).Decode(&a)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			arr.mu.Lock()
			arr.failed++
			arr.mu.Unlock()
			continue
		}
		arr.add(a.Server, a.Received)
	}
}

// runCycle starts a backend that opens its port 300ms late, measures when
// the port accepts and when wharf routes the first request to it, lets it
// take some traffic, stops it and measures when wharf sent it the last
// request.
func runCycle(t *testing.T, cli *client.Client, img, netName string, evs *eventLog, rec *recorder, arr *arrivals) cycleResult {
	t.Helper()
	arr.mu.Lock()
	failed0 := arr.failed
	arr.mu.Unlock()

	c := dockertest.Run(t, cli, dockertest.ContainerOptions{
		Image: img, Network: netName, Labels: enabled(TestwebPort), Name: dockertest.UniqueName("lat"),
		Cmd: []string{"--listen-after", "300ms", "--on-term", "drain", "--drain", "400ms"},
	})
	addr := c.Addr(netName, TestwebPort)
	accepting := pollAccept(t, addr)
	first, _ := arr.waitCount(t, c.Name, 20, routeTimeout)

	c.Stop(5 * time.Second)
	kill := evs.wait(t, c.ID, "kill", routeTimeout)
	out, _ := rec.waitIn(t, c.ID, false, routeTimeout)
	last := arr.lastOf(c.Name)
	c.Remove()

	arr.mu.Lock()
	failed := arr.failed - failed0
	arr.mu.Unlock()
	return cycleResult{
		join:      time.Unix(0, first).Sub(accepting),
		leave:     time.Unix(0, last).Sub(evTime(kill)),
		published: out.at.Sub(evTime(kill)),
		failed:    failed,
	}
}

// pollAccept dials addr from the host every millisecond, for at most 20s,
// and returns when the attempt that first succeeded began.
func pollAccept(t *testing.T, addr string) time.Time {
	t.Helper()
	d := net.Dialer{Timeout: 100 * time.Millisecond}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(routeTimeout)
	for time.Now().Before(deadline) {
		began := time.Now()
		c, err := d.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return began
		}
		<-tick.C
	}
	t.Fatalf("%s never accepted a connection", addr)
	return time.Time{}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct returns the p-th percentile of xs by the nearest-rank method.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
