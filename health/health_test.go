package health

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/lb"
)

func TestActiveHealthCheck(t *testing.T) {
	var failing atomic.Bool
	var checks atomic.Int64
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			checks.Add(1)
			if failing.Load() {
				w.WriteHeader(503)
			}
			return
		}
	}))
	defer peer.Close()
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer other.Close()

	var checker *Checker
	bal := lb.New(lb.OnUpdate(func(t *lb.Table) { checker.Sync(t) }))
	checker = New(bal, zerolog.Nop())
	defer checker.Stop()

	be := func(name, url string, check bool) lb.Backend {
		b := lb.Backend{ID: name, Name: name, Network: "tcp", Addr: strings.TrimPrefix(url, "http://"),
			Weight: 1, MaxFails: 1, FailTimeout: time.Second}
		if check {
			b.Health = lb.HealthCheck{Path: "/health", Interval: 20 * time.Millisecond, Timeout: time.Second}
		}
		return b
	}
	bal.Update("test", []lb.Backend{be("checked", peer.URL, true), be("plain", other.URL, false)})
	checked := func() *lb.Peer { return bal.Table().Pool(lb.DefaultService).Peers()[0] }

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// Out until the first check passes, then in.
	waitFor("first check to pass", func() bool { return checked().Available(bal.Now()) })
	picks := func() map[string]int {
		m := map[string]int{}
		for i := 0; i < 10; i++ {
			m[bal.Table().Pool(lb.DefaultService).Pick(bal.Now(), 0, nil).Name]++
		}
		return m
	}
	if m := picks(); m["checked"] != 5 {
		t.Fatalf("passing peer got %v", m)
	}
	failing.Store(true)
	waitFor("failing check to take the peer out", func() bool { return !checked().Available(bal.Now()) })
	if m := picks(); m["checked"] != 0 || checked().DownReason(bal.Now()) != "health check" {
		t.Fatalf("failing peer got %v (reason %q)", m, checked().DownReason(bal.Now()))
	}
	failing.Store(false)
	waitFor("passing check to bring it back", func() bool { return checked().Available(bal.Now()) })

	// Removing the label stops the checks.
	bal.Update("test", []lb.Backend{be("checked", peer.URL, false), be("plain", other.URL, false)})
	time.Sleep(50 * time.Millisecond)
	n := checks.Load()
	time.Sleep(100 * time.Millisecond)
	if checks.Load() != n {
		t.Fatal("checks go on after the peer lost its health check")
	}
}

func TestNewPeerWithCheckHeldOutUntilFirstPass(t *testing.T) {
	bal := lb.New() // no checker: nothing will ever pass
	bal.Update("test", []lb.Backend{{ID: "a", Name: "a", Network: "tcp", Addr: "127.0.0.1:1", Weight: 1,
		Health: lb.HealthCheck{Path: "/h", Interval: time.Second, Timeout: time.Second}}})
	if p := bal.Table().Pool(lb.DefaultService).Pick(bal.Now(), 0, nil); p != nil {
		t.Fatal("peer with an unchecked health check was picked")
	}
}
