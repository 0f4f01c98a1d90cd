package proxy

import (
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wharflb/wharf/lb"
)

// Tests wait on signals (a hook of the fast path, a peer's handler, a log
// line), never for time to pass. waitBound only bounds a wait that a bug
// would make endless, so that a broken test fails instead of hanging.
const waitBound = 10 * time.Second

// startFast serves the fast path for backends with hooks, and returns its
// URL, the server and its balancer.
func startFast(t testing.TB, cfg Config, hooks fastHooks, backends ...lb.Backend) (string, *FastServer, *lb.Balancer) {
	t.Helper()
	return startFastWith(t, nil, cfg, hooks, backends...)
}

// startFastWith is startFast over TLS with tc (HTTP/2 offered by ALPN)
// when tc is not nil; the URL is then https://.
func startFastWith(t testing.TB, tc *tls.Config, cfg Config, hooks fastHooks, backends ...lb.Backend) (string, *FastServer, *lb.Balancer) {
	t.Helper()
	bal := lb.New(lb.OnRemove(ClosePeer))
	bal.Update("test", backends)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewFastServer(bal, cfg)
	srv.hooks = hooks
	scheme := "http://"
	if tc != nil {
		srv.EnableTLS(tc, true)
		scheme = "https://"
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return scheme + ln.Addr().String(), srv, bal
}

// await returns the next value sent on ch.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitBound):
		t.Fatalf("no %s within %v", what, waitBound)
		panic("unreachable")
	}
}

// events collects what a hook reports, in order, without ever blocking the
// goroutine that reports it. Safe for concurrent use.
type events[T any] struct {
	mu   sync.Mutex
	seen []T
	next int           // seen[:next] are consumed
	more chan struct{} // has a value when something was added
}

func newEvents[T any]() *events[T] { return &events[T]{more: make(chan struct{}, 1)} }

func (e *events[T]) add(v T) {
	e.mu.Lock()
	e.seen = append(e.seen, v)
	e.mu.Unlock()
	select {
	case e.more <- struct{}{}:
	default:
	}
}

// await consumes events until one satisfies ok, waiting for more as
// needed, and returns it.
func (e *events[T]) await(t testing.TB, what string, ok func(T) bool) T {
	t.Helper()
	timeout := time.After(waitBound)
	for {
		e.mu.Lock()
		for e.next < len(e.seen) {
			v := e.seen[e.next]
			e.next++
			if ok(v) {
				e.mu.Unlock()
				return v
			}
		}
		e.mu.Unlock()
		select {
		case <-e.more:
		case <-timeout:
			t.Fatalf("no %s within %v", what, waitBound)
		}
	}
}

// eventually waits until cond holds, yielding the processor meanwhile. It
// is for what follows a signal at once but on another goroutine, such as
// a goroutine's end after the last thing it reported.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so within %v", what, waitBound)
		}
		runtime.Gosched()
	}
}
