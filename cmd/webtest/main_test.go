package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
)

// blockingServer returns a Server whose delay blocks until release is
// closed, announcing each delayed request on started.
func blockingServer() (s *Server, started chan struct{}, release chan struct{}) {
	s = NewServer("web1")
	started = make(chan struct{}, 8)
	release = make(chan struct{})
	s.sleep = func(r *http.Request, _ time.Duration) {
		started <- struct{}{}
		<-release
	}
	return s, started, release
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

type result struct {
	code int
	body string
	err  error
}

func get(url string) <-chan result {
	c := make(chan result, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			c <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		c <- result{code: resp.StatusCode, body: string(b), err: err}
	}()
	return c
}

// TestServeGracefulShutdown checks that after the signal a request in
// flight still gets its whole answer, new connections are refused, and
// serve reports a clean stop.
func TestServeGracefulShutdown(t *testing.T) {
	s, started, release := blockingServer()
	ln := listen(t)
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, s, 0, 10*time.Second) }()

	inflight := get("http://" + addr + "/webtest?action=get_uuid&delay=1s")
	select {
	case <-started:
	case r := <-inflight:
		t.Fatalf("request finished before shutdown: %+v", r)
	case <-time.After(5 * time.Second):
		t.Fatal("request did not reach the handler")
	}

	cancel() // SIGTERM

	// The listener closes: new connections are refused. Its closing
	// gives no signal: poll it, briefly.
	testutil.Eventually(t, 5*time.Second, "still accepting connections after shutdown began", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-done:
		t.Fatalf("serve returned %v with a request in flight", err)
	default:
	}

	close(release)
	select {
	case r := <-inflight:
		if r.err != nil || r.code != 200 || !strings.HasPrefix(r.body, `{"IsSuccess":true,`) {
			t.Errorf("in-flight request: code %d, body %q, err %v; want a complete get_uuid answer", r.code, r.body, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request did not finish")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return")
	}
}

func TestServeShutdownTimeout(t *testing.T) {
	s, started, release := blockingServer()
	defer close(release)
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, s, 0, 50*time.Millisecond) }()

	inflight := get("http://" + ln.Addr().String() + "/webtest?action=get_uuid&delay=30s")
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("request did not reach the handler")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("serve = nil, want an error for the request cut short")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after its shutdown timeout")
	}
	if r := <-inflight; r.err == nil {
		t.Errorf("request cut short got an answer: %+v", r)
	}
}

func TestHealthcheckCommand(t *testing.T) {
	s := NewServer("web1")
	ts := httptest.NewServer(s)
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")

	refused := listen(t)
	refusedAddr := refused.Addr().String()
	refused.Close()

	tests := []struct {
		name string
		fail string // POSTed to /healthz first, if set
		args []string
		want int
	}{
		{name: "healthy", fail: "0", args: []string{"--addr", addr}, want: 0},
		{name: "failing", fail: "1", args: []string{"--addr", addr}, want: 1},
		{name: "recovered", fail: "0", args: []string{"--addr=" + addr}, want: 0},
		{name: "refused", args: []string{"--addr", refusedAddr, "--timeout", "2s"}, want: 1},
		{name: "bad flag", args: []string{"--nope"}, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fail != "" {
				resp, err := http.Post(ts.URL+"/healthz?fail="+tt.fail, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			var out, errOut bytes.Buffer
			got := run(context.Background(), append([]string{"healthcheck"}, tt.args...), &out, &errOut)
			if got != tt.want {
				t.Errorf("exit code = %d, want %d (stdout %q, stderr %q)", got, tt.want, out.String(), errOut.String())
			}
		})
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"-h"}, 0},
		{[]string{"--nope"}, 2},
		{[]string{"extra"}, 2},
		{[]string{"--listen", "127.0.0.1:bad"}, 1},
		{[]string{"--listen", "127.0.0.1:0", "--record", "/nonexistent/dir/received"}, 1},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if got := run(context.Background(), tt.args, &out, &errOut); got != tt.want {
			t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, got, tt.want, errOut.String())
		}
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	if got := run(ctx, []string{"--listen", "127.0.0.1:0", "--name", "x"}, &out, &errOut); got != 0 {
		t.Errorf("run = %d, want 0 (stderr %q)", got, errOut.String())
	}
	if !strings.Contains(errOut.String(), `"name":"x"`) {
		t.Errorf("log %q does not name the server", errOut.String())
	}
}

// After SIGTERM webtest keeps answering for its drain delay, so that a
// balancer can stop sending it requests before it closes connections.
func TestDrainDelayKeepsServing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, NewServer("w"), 300*time.Millisecond, time.Second) }()
	cancel()
	start := time.Now()
	res, err := http.Get("http://" + ln.Addr().String() + "/webtest?action=get_uuid")
	if err != nil {
		t.Fatalf("request during the drain delay: %v", err)
	}
	res.Body.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("shut down after %v, before the drain delay", d)
	}
}
