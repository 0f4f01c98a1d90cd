package faultproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/client"

	"github.com/wharflb/wharf/internal/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// fakeEngine serves GET /v1.41/_ping and a GET /v1.41/events stream that
// sends one JSON message for every value put on its send channel.
type fakeEngine struct {
	path string
	send chan string
}

func startFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	dir, err := os.MkdirTemp("", "fakeengine-")
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEngine{path: filepath.Join(dir, "docker.sock"), send: make(chan string)}
	ln, err := net.Listen("unix", e.path)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1.41/_ping", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "OK") })
	mux.HandleFunc("GET /v1.41/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case action := <-e.send:
				json.NewEncoder(w).Encode(events.Message{Type: events.ContainerEventType, Action: events.Action(action)})
				w.(http.Flusher).Flush()
			}
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		os.RemoveAll(dir)
	})
	return e
}

func startProxy(t *testing.T, upstream string) *Proxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "faultproxy-test-")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(filepath.Join(dir, "p.sock"), "unix", upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		os.RemoveAll(dir)
	})
	return p
}

// httpClient talks HTTP over the unix socket at path.
func httpClient(path string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", path)
			},
		},
	}
}

// stream opens an events stream through the proxy.
type stream struct {
	res *http.Response
	dec *json.Decoder
}

func openStream(t *testing.T, path string) *stream {
	t.Helper()
	c := httpClient(path)
	c.Timeout = 0
	res, err := c.Get("http://docker/v1.41/events?filters=%7B%7D")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 {
		t.Fatalf("events: %s", res.Status)
	}
	return &stream{res: res, dec: json.NewDecoder(res.Body)}
}

// next decodes the next message, failing the test when none comes in 5s.
func (s *stream) next(t *testing.T) (events.Message, error) {
	t.Helper()
	type result struct {
		m   events.Message
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var m events.Message
		err := s.dec.Decode(&m)
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-time.After(5 * time.Second):
		s.res.Body.Close()
		t.Fatal("no message and no error within 5s")
		return events.Message{}, nil
	}
}

func ping(path string) error {
	res, err := httpClient(path).Get("http://docker/v1.41/_ping")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if string(b) != "OK" {
		return fmt.Errorf("ping answered %q", b)
	}
	return nil
}

func TestPassThrough(t *testing.T) {
	e := startFakeEngine(t)
	p := startProxy(t, e.path)
	if err := ping(p.Path()); err != nil {
		t.Fatal(err)
	}
	s := openStream(t, p.Path())
	for _, a := range []string{"start", "kill", "die"} {
		e.send <- a
		m, err := s.next(t)
		if err != nil || string(m.Action) != a {
			t.Fatalf("got %q, %v; want %q", m.Action, err, a)
		}
	}
	if got := p.Accepted(); got != 2 {
		t.Errorf("Accepted() = %d, want 2", got)
	}
	if p.Host() != "unix://"+p.Path() {
		t.Errorf("Host() = %q", p.Host())
	}
}

func TestCutBreaksStreamMidway(t *testing.T) {
	e := startFakeEngine(t)
	p := startProxy(t, e.path)
	s := openStream(t, p.Path())
	e.send <- "start"
	if _, err := s.next(t); err != nil {
		t.Fatal(err)
	}
	if n := p.Cut(); n != 1 {
		t.Errorf("Cut() = %d, want 1 connection", n)
	}
	if _, err := s.next(t); err == nil {
		t.Fatal("the stream still delivers after Cut")
	}
	if err := ping(p.Path()); err != nil {
		t.Fatalf("a new connection after Cut: %v", err)
	}
}

func TestDownAndGone(t *testing.T) {
	for _, tc := range []struct {
		name     string
		down     func(*Proxy)
		want     error
		fileStay bool
	}{
		{"down refuses", (*Proxy).Down, syscall.ECONNREFUSED, true},
		{"gone has no socket", (*Proxy).Gone, syscall.ENOENT, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startFakeEngine(t)
			p := startProxy(t, e.path)
			s := openStream(t, p.Path())
			tc.down(p)
			if _, err := s.next(t); err == nil {
				t.Error("an open stream survived the engine going down")
			}
			for i := 0; i < 3; i++ {
				if _, err := net.Dial("unix", p.Path()); !errors.Is(err, tc.want) {
					t.Fatalf("dial while down: %v, want %v", err, tc.want)
				}
			}
			if _, err := os.Stat(p.Path()); (err == nil) != tc.fileStay {
				t.Errorf("socket file exists = %v, want %v", err == nil, tc.fileStay)
			}
			if err := p.Up(); err != nil {
				t.Fatal(err)
			}
			if err := ping(p.Path()); err != nil {
				t.Fatalf("after Up: %v", err)
			}
		})
	}
}

func TestGarbleOnlyHitsEventStreams(t *testing.T) {
	e := startFakeEngine(t)
	p := startProxy(t, e.path)
	// A keep-alive connection without an events request.
	plain, err := net.Dial("unix", p.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	br := bufio.NewReader(plain)
	get := func() error {
		fmt.Fprint(plain, "GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		_, err = io.ReadAll(res.Body)
		return err
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}

	s := openStream(t, p.Path())
	e.send <- "start"
	if _, err := s.next(t); err != nil {
		t.Fatal(err)
	}
	if n := p.Garble(); n != 1 {
		t.Fatalf("Garble() wrote to %d connections, want 1 (the events stream)", n)
	}
	_, err = s.next(t)
	var syntax *json.SyntaxError
	if !errors.As(err, &syntax) {
		t.Fatalf("after Garble: %v, want a JSON syntax error", err)
	}
	if err := get(); err != nil {
		t.Fatalf("a connection without an events stream was garbled: %v", err)
	}
}

func TestIsEventsRequest(t *testing.T) {
	for _, tc := range []struct {
		req  string
		want bool
	}{
		{"GET /v1.41/events?filters=%7B%7D HTTP/1.1\r\nHost: docker\r\n\r\n", true},
		{"GET /events HTTP/1.1\r\n\r\n", true},
		{"GET /v1.41/containers/json HTTP/1.1\r\n\r\n", false},
		{"GET /v1.41/containers/events/json HTTP/1.1\r\n\r\n", false},
		{"POST /v1.41/events HTTP/1.1\r\n\r\n", false},
		{"GET /_ping HTTP/1.1\r\nX-Path: /events\r\n\r\n", false},
	} {
		if got := isEventsRequest([]byte(tc.req)); got != tc.want {
			t.Errorf("isEventsRequest(%q) = %v, want %v", tc.req, got, tc.want)
		}
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	e := startFakeEngine(t)
	p := startProxy(t, e.path)
	s := openStream(t, p.Path())
	p.Close()
	if _, err := s.next(t); err == nil {
		t.Error("a stream survived Close")
	}
	if n := p.Conns(); n != 0 {
		t.Errorf("%d connections open after Close", n)
	}
	if _, err := os.Stat(p.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Close: %v", err)
	}
	if err := p.Up(); err == nil {
		t.Error("Up after Close succeeded")
	}
}

func TestEngineAddr(t *testing.T) {
	for _, tc := range []struct {
		host, network, addr string
		err                 bool
	}{
		{"", "unix", "/var/run/docker.sock", false},
		{"unix:///run/user/1000/docker.sock", "unix", "/run/user/1000/docker.sock", false},
		{"tcp://127.0.0.1:2375", "tcp", "127.0.0.1:2375", false},
		{"ssh://me@host", "", "", true},
	} {
		t.Setenv("DOCKER_HOST", tc.host)
		network, addr, err := EngineAddr()
		if network != tc.network || addr != tc.addr || (err != nil) != tc.err {
			t.Errorf("DOCKER_HOST=%q: %q %q %v", tc.host, network, addr, err)
		}
	}
}

// TestRealEngine runs the faults against the real engine with the Docker
// client.
func TestRealEngine(t *testing.T) {
	dockertest.Require(t)
	p := Start(t)
	cli, err := client.NewClientWithOpts(client.WithHost(p.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatalf("ping through the proxy: %v", err)
	}

	for _, tc := range []struct {
		name  string
		fault func(*Proxy)
	}{
		{"cut", func(p *Proxy) { p.Cut() }},
		{"garble", func(p *Proxy) {
			if n := p.Garble(); n != 1 {
				t.Errorf("Garble() = %d, want 1", n)
			}
		}},
		{"down", (*Proxy).Down},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sctx, scancel := context.WithCancel(ctx)
			defer scancel()
			_, errs := cli.Events(sctx, events.ListOptions{})
			tc.fault(p)
			select {
			case err := <-errs:
				if err == nil || errors.Is(err, context.Canceled) {
					t.Fatalf("events stream ended with %v, want a stream error", err)
				}
				t.Logf("events stream: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the events stream did not notice the fault in 10s")
			}
			if err := p.Up(); err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Info(ctx); err != nil {
				t.Fatalf("after the fault: %v", err)
			}
		})
	}
}
