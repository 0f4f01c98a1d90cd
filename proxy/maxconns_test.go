package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// rawClient is one keep-alive client connection.
type rawClient struct {
	c  net.Conn
	br *bufio.Reader
}

// dialRaw connects to the proxy at url, TLS handshake done for https.
func dialRaw(t *testing.T, url string) *rawClient {
	t.Helper()
	c, err := dialProxy(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{c, bufio.NewReader(c)}
}

func (rc *rawClient) send(t *testing.T, path string) {
	t.Helper()
	if _, err := fmt.Fprintf(rc.c, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
}

func (rc *rawClient) read(t *testing.T) string {
	t.Helper()
	res, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return fmt.Sprintf("%d %s", res.StatusCode, b)
}

// TestMaxConnsClosesIdleConnections: at the cap, a new client is served by
// closing an idle keep-alive connection, as nginx does when its
// worker_connections are not enough.
func TestMaxConnsClosesIdleConnections(t *testing.T) {
	for _, start := range fastStarts {
		t.Run(start.name, func(t *testing.T) { testMaxConnsClosesIdleConnections(t, start.start) })
	}
}

func testMaxConnsClosesIdleConnections(t *testing.T, start fastStart) {
	be := newBackend(t, "web1", nil)
	addr, srv, _ := start(t, Config{MaxConns: 2}, fastHooks{}, be.backend(1))
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for _, rc := range []*rawClient{a, b} {
		rc.send(t, "/")
		if got := rc.read(t); got != "200 web1" {
			t.Fatalf("got %q", got)
		}
	}
	c := dialRaw(t, addr)
	c.send(t, "/")
	if got := c.read(t); got != "200 web1" {
		t.Fatalf("third client at the cap: %q, want it served", got)
	}
	// One of the idle two was closed to make room.
	closed := make(chan string, 2)
	for name, rc := range map[string]*rawClient{"a": a, "b": b} {
		go func() {
			if _, err := rc.br.ReadByte(); err == io.EOF {
				closed <- name
			}
		}()
	}
	await(t, closed, "idle connection closed")
	if n := srv.stats.Reclaimed.Load(); n != 1 {
		t.Fatalf("%d connections reclaimed, want 1", n)
	}
}

// TestMaxConnsWaitsWhileAllBusy: at the cap with every connection busy, a
// new client is not accepted until one finishes, and is then served.
func TestMaxConnsWaitsWhileAllBusy(t *testing.T) {
	arrived, release := make(chan string, 4), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	be := newBackend(t, "web1", func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		if r.URL.Path != "/c" {
			<-release
		}
		io.WriteString(w, "web1")
	})
	atCap := make(chan int, 1)
	url, _, _ := startFast(t, Config{MaxConns: 2}, fastHooks{atCap: func(n int) {
		select {
		case atCap <- n:
		default:
		}
	}}, be.backend(1))
	addr := url
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	a.send(t, "/a")
	b.send(t, "/b")
	await(t, arrived, "first request at the peer")
	await(t, arrived, "second request at the peer")

	c := dialRaw(t, addr) // completes in the kernel's backlog
	c.send(t, "/c")
	// Drain what the loop reported before c came, then wait for a report
	// made after it: the loop is still waiting, with two connections.
	select {
	case <-atCap:
	default:
	}
	if n := await(t, atCap, "accept loop waiting at the cap"); n != 2 {
		t.Fatalf("waiting with %d connections, want 2", n)
	}
	if be.Hits.Load() != 2 {
		t.Fatalf("the peer got %d requests while every connection was busy, want 2", be.Hits.Load())
	}
	free()
	for _, rc := range []*rawClient{a, b} {
		if got := rc.read(t); got != "200 web1" {
			t.Fatalf("busy client: %q", got)
		}
	}
	if got := c.read(t); got != "200 web1" {
		t.Fatalf("waiting client: %q, want it served once there was room", got)
	}
}

// TestMaxConnsClosesSilentConnectionsFirst: connections that never sent a
// request make room before the keep-alive connections of real clients.
// Over TLS they never begin their handshake: those count against the cap
// too, from their accept.
func TestMaxConnsClosesSilentConnectionsFirst(t *testing.T) {
	for _, start := range fastStarts {
		t.Run(start.name, func(t *testing.T) { testMaxConnsClosesSilentConnectionsFirst(t, start.start) })
	}
}

func testMaxConnsClosesSilentConnectionsFirst(t *testing.T, start fastStart) {
	be := newBackend(t, "web1", nil)
	addr, srv, _ := start(t, Config{MaxConns: 3}, fastHooks{}, be.backend(1))
	client := dialRaw(t, addr)
	client.send(t, "/")
	if got := client.read(t); got != "200 web1" {
		t.Fatalf("got %q", got)
	}
	closed := make(chan int, 2)
	for i := range 2 {
		c, err := net.Dial("tcp", addr[strings.Index(addr, "//")+2:]) // sends nothing, not even a ClientHello
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			if _, err := c.Read(make([]byte, 1)); err == io.EOF {
				closed <- i
			}
		}()
	}
	for range 2 {
		// Each new client takes the place of a silent one.
		rc := dialRaw(t, addr)
		rc.send(t, "/")
		if got := rc.read(t); got != "200 web1" {
			t.Fatalf("new client at the cap: %q", got)
		}
		await(t, closed, "a silent connection closed")
	}
	client.send(t, "/")
	if got := client.read(t); got != "200 web1" {
		t.Fatalf("the keep-alive client after two reclaims: %q, want it kept", got)
	}
	if n := srv.stats.Reclaimed.Load(); n < 2 {
		t.Fatalf("%d connections reclaimed, want at least 2", n)
	}
}
