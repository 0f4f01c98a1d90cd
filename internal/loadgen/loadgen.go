// Package loadgen sends a bounded stream of HTTP/1.1 requests from a fixed
// number of workers, each over its own keep-alive connection, and records
// the outcome of every request: when it was sent, how long it took, the
// status, the error, and the Server field of a webtest answer (which
// backend answered).
//
// It speaks HTTP/1.1 itself over a net.Conn instead of using net/http's
// Transport, because the Transport silently sends an idempotent request a
// second time when a reused connection breaks: here each request is written
// exactly once, and a broken connection is a failed request.
//
// A run stops by itself after Config.Duration or Config.MaxRequests,
// whichever comes first, or earlier when Stop is called.
package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes a run.
type Config struct {
	// Addr is the HOST:PORT requests are sent to.
	Addr string
	// Method is GET when empty.
	Method string
	// Target is the request-target, e.g. "/webtest?action=get_uuid".
	Target string
	// Body is sent with every request (with Content-Length) when not empty.
	Body string
	// IDPrefix, when set, gives every request a unique id
	// IDPrefix-WORKER-SEQ, sent as the query parameter id and kept in its
	// Result.
	IDPrefix string
	// Concurrency is the number of workers; 8 when zero.
	Concurrency int
	// Duration and MaxRequests bound the run; both are required.
	Duration    time.Duration
	MaxRequests int
	// Timeout bounds each request, connecting included; 10s when zero.
	Timeout time.Duration
	// Dial opens the workers' connections; nil means a net.Dialer. Set it
	// to send from elsewhere than the test's own network namespace (e.g.
	// swarmtest's Node.Dial). It is called from the workers' goroutines.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Result is the outcome of one request.
type Result struct {
	ID      string    // the id sent, when Config.IDPrefix is set
	Worker  int       // which worker sent it
	Start   time.Time // when the request was about to be written
	Latency time.Duration
	Status  int    // 0 when no answer came
	Server  string // the Server field of the answer's JSON body, if any
	// Err is why the request got no complete answer ("" when it got one).
	Err string
	// Body is the beginning of the answer of a request that failed.
	Body   string
	Reused bool // sent on a connection that had carried a request before
}

// OK reports whether the request got a 200 answer whose JSON body has
// "IsSuccess": true.
func (r *Result) OK() bool { return r.Err == "" && r.Status == 200 && r.Server != "" }

// End is when the answer was complete, or the request gave up.
func (r *Result) End() time.Time { return r.Start.Add(r.Latency) }

// Run is a running load. Its methods are safe for concurrent use.
type Run struct {
	cfg     Config
	stop    chan struct{}
	once    sync.Once
	done    chan struct{}
	sent    atomic.Int64
	bounded atomic.Bool // stopped by its own bound, not by Stop

	mu      sync.Mutex
	results [][]Result       // per worker
	last    map[string]int64 // server → Start (unix ns) of its latest answer

	inflight []atomic.Int64 // per worker: Start (unix ns) of its request in flight, 0 when none

	// completed counts the requests that got an answer or gave up. A
	// worker that brings it to wakeAt or past it wakes the waiters of
	// WaitCompleted whose count is reached; wakeAt is the smallest count
	// waited for (math.MaxInt64 when none), so that the workers do
	// nothing more than an atomic add and load while no one waits.
	completed atomic.Int64
	wakeAt    atomic.Int64
	waitMu    sync.Mutex
	waiters   []completedWaiter
}

// completedWaiter is a WaitCompleted call: ch is closed once n requests
// completed.
type completedWaiter struct {
	n  int64
	ch chan struct{}
}

// Start begins sending. It returns an error for an incomplete Config.
func Start(cfg Config) (*Run, error) {
	if cfg.Addr == "" || cfg.Target == "" {
		return nil, errors.New("loadgen: Addr and Target are required")
	}
	if cfg.Duration <= 0 || cfg.MaxRequests <= 0 {
		return nil, errors.New("loadgen: Duration and MaxRequests must bound the run")
	}
	if cfg.Method == "" {
		cfg.Method = http.MethodGet
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	r := &Run{
		cfg:      cfg,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		results:  make([][]Result, cfg.Concurrency),
		last:     map[string]int64{},
		inflight: make([]atomic.Int64, cfg.Concurrency),
	}
	r.wakeAt.Store(math.MaxInt64)
	deadline := time.Now().Add(cfg.Duration)
	var wg sync.WaitGroup
	for i := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.results[i] = r.work(i, deadline)
		}()
	}
	go func() {
		wg.Wait()
		close(r.done)
	}()
	return r, nil
}

// Sent returns how many requests were begun so far.
func (r *Run) Sent() int64 { return min(r.sent.Load(), int64(r.cfg.MaxRequests)) }

// Completed returns how many requests completed so far: answered, failed
// or given up.
func (r *Run) Completed() int64 { return r.completed.Load() }

// WaitCompleted waits until n requests in all completed (see Completed),
// and reports whether they did; it returns false when timeout passes first
// or the run ends before. The workers wake it when the count is reached:
// it does not poll.
func (r *Run) WaitCompleted(n int64, timeout time.Duration) bool {
	if r.completed.Load() >= n {
		return true
	}
	w := completedWaiter{n: n, ch: make(chan struct{})}
	r.waitMu.Lock()
	r.waiters = append(r.waiters, w)
	if n < r.wakeAt.Load() {
		r.wakeAt.Store(n)
	}
	r.waitMu.Unlock()
	defer r.dropWaiter(w.ch)
	// A worker that completed the n-th request before wakeAt was lowered
	// saw no reason to wake anyone: look again now that it is.
	if r.completed.Load() >= n {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case <-w.ch:
		return true
	case <-r.done:
	case <-deadline.C:
	}
	return r.completed.Load() >= n
}

// complete counts a completed request and wakes the waiters it satisfies.
func (r *Run) complete() {
	c := r.completed.Add(1)
	if c < r.wakeAt.Load() {
		return
	}
	r.filterWaiters(func(w completedWaiter) bool {
		if w.n <= c {
			close(w.ch)
			return false
		}
		return true
	})
}

// dropWaiter forgets the waiter of ch, woken or not.
func (r *Run) dropWaiter(ch chan struct{}) {
	r.filterWaiters(func(w completedWaiter) bool { return w.ch != ch })
}

// filterWaiters keeps the waiters for which keep is true and sets wakeAt to
// the smallest count one of them waits for.
func (r *Run) filterWaiters(keep func(completedWaiter) bool) {
	r.waitMu.Lock()
	defer r.waitMu.Unlock()
	next := int64(math.MaxInt64)
	kept := r.waiters[:0]
	for _, w := range r.waiters {
		if keep(w) {
			next = min(next, w.n)
			kept = append(kept, w)
		}
	}
	clear(r.waiters[len(kept):])
	r.waiters = kept
	r.wakeAt.Store(next)
}

// Done returns a channel closed when the run has ended, by its bound or by
// Stop, and every worker has returned.
func (r *Run) Done() <-chan struct{} { return r.done }

// LastAnswer returns when the latest request that server answered was
// sent, or the zero time.
func (r *Run) LastAnswer(server string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ns, ok := r.last[server]; ok {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// WaitAnswer waits until server answers a request sent after since, and
// reports whether it did within timeout.
func (r *Run) WaitAnswer(server string, since time.Time, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !r.LastAnswer(server).After(since) {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-r.done:
			return r.LastAnswer(server).After(since)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

// OldestInFlight returns when the oldest request still in flight was sent,
// or the zero time when none is.
func (r *Run) OldestInFlight() time.Time {
	var oldest int64
	for i := range r.inflight {
		if ns := r.inflight[i].Load(); ns != 0 && (oldest == 0 || ns < oldest) {
			oldest = ns
		}
	}
	if oldest == 0 {
		return time.Time{}
	}
	return time.Unix(0, oldest)
}

// Stop ends the run, waits for the requests in flight, and returns every
// request's outcome in the order they were sent.
func (r *Run) Stop() []Result {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	var all []Result
	for _, rs := range r.results {
		all = append(all, rs...)
	}
	slices.SortStableFunc(all, func(a, b Result) int { return a.Start.Compare(b.Start) })
	return all
}

// Bounded reports whether the run ended by its own bound (Duration or
// MaxRequests) rather than by Stop.
func (r *Run) Bounded() bool { return r.bounded.Load() }

// worker state: one keep-alive connection at a time.
type worker struct {
	cfg    *Config
	conn   net.Conn
	br     *bufio.Reader
	used   bool // conn carried a request already
	head   []byte
	server map[string]string // interned Server names
}

func (r *Run) work(n int, deadline time.Time) []Result {
	w := &worker{cfg: &r.cfg, server: map[string]string{}}
	defer w.close()
	var out []Result
	for seq := 0; ; seq++ {
		select {
		case <-r.stop:
			return out
		default:
		}
		if !time.Now().Before(deadline) || r.sent.Add(1) > int64(r.cfg.MaxRequests) {
			r.bounded.Store(true)
			return out
		}
		res := Result{Worker: n}
		if r.cfg.IDPrefix != "" {
			res.ID = r.cfg.IDPrefix + "-" + strconv.Itoa(n) + "-" + strconv.Itoa(seq)
		}
		w.do(&res, &r.inflight[n])
		if res.OK() {
			r.mu.Lock()
			if ns := res.Start.UnixNano(); ns > r.last[res.Server] {
				r.last[res.Server] = ns
			}
			r.mu.Unlock()
		}
		out = append(out, res)
		r.complete()
	}
}

// dial connects to the target within the request's timeout.
func (w *worker) dial() (net.Conn, error) {
	if w.cfg.Dial == nil {
		return net.DialTimeout("tcp", w.cfg.Addr, w.cfg.Timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	return w.cfg.Dial(ctx, "tcp", w.cfg.Addr)
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn, w.br, w.used = nil, nil, false
	}
}

// do sends one request and fills res.
func (w *worker) do(res *Result, inflight *atomic.Int64) {
	cfg := w.cfg
	w.head = w.head[:0]
	w.head = append(w.head, cfg.Method...)
	w.head = append(w.head, ' ')
	w.head = append(w.head, cfg.Target...)
	if res.ID != "" {
		if strings.Contains(cfg.Target, "?") {
			w.head = append(w.head, "&id="...)
		} else {
			w.head = append(w.head, "?id="...)
		}
		w.head = append(w.head, res.ID...)
	}
	w.head = append(w.head, " HTTP/1.1\r\nHost: "...)
	w.head = append(w.head, cfg.Addr...)
	w.head = append(w.head, "\r\nUser-Agent: wharf-loadgen\r\n"...)
	if cfg.Body != "" || cfg.Method == http.MethodPost {
		w.head = append(w.head, "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "...)
		w.head = strconv.AppendInt(w.head, int64(len(cfg.Body)), 10)
		w.head = append(w.head, "\r\n"...)
	}
	w.head = append(w.head, "\r\n"...)
	w.head = append(w.head, cfg.Body...)

	res.Start = time.Now()
	inflight.Store(res.Start.UnixNano())
	defer func() {
		res.Latency = time.Since(res.Start)
		inflight.Store(0)
	}()
	if w.conn == nil {
		c, err := w.dial()
		if err != nil {
			res.Err = err.Error()
			return
		}
		w.conn, w.br = c, bufio.NewReaderSize(c, 4096)
	}
	res.Reused = w.used
	w.used = true
	w.conn.SetDeadline(res.Start.Add(cfg.Timeout))
	if _, err := w.conn.Write(w.head); err != nil {
		res.Err = "write: " + err.Error()
		w.close()
		return
	}
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		res.Err = "read: " + err.Error()
		w.close()
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	res.Status = resp.StatusCode
	if err != nil {
		res.Err = "read body: " + err.Error()
		w.close()
		return
	}
	if resp.Close {
		w.close()
	}
	var answer struct {
		IsSuccess bool
		Server    string
	}
	if res.Status == 200 && json.Unmarshal(body, &answer) == nil && answer.IsSuccess {
		s, ok := w.server[answer.Server]
		if !ok {
			s = answer.Server
			w.server[s] = s
		}
		res.Server = s
		return
	}
	res.Body = string(body[:min(len(body), 200)])
}

// Summary condenses the results of a run.
type Summary struct {
	Sent, Failed int
	Worst        time.Duration // the longest latency of any request
	WorstAt      time.Time     // when that request was sent
	PerServer    map[string]int
}

// Summarize counts rs.
func Summarize(rs []Result) Summary {
	s := Summary{PerServer: map[string]int{}}
	for i := range rs {
		r := &rs[i]
		s.Sent++
		if !r.OK() {
			s.Failed++
		} else {
			s.PerServer[r.Server]++
		}
		if r.Latency > s.Worst {
			s.Worst, s.WorstAt = r.Latency, r.Start
		}
	}
	return s
}

// String is "sent N  failed N  worst D".
func (s Summary) String() string {
	return fmt.Sprintf("sent %6d  failed %d  worst %v", s.Sent, s.Failed, s.Worst.Round(100*time.Microsecond))
}
