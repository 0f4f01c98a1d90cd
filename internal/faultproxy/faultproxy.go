// Package faultproxy injects engine faults between a Docker client and the
// real Docker Engine: a pass-through proxy on a unix socket that copies the
// bytes of every connection to the engine's socket unchanged, and on demand
// cuts the open connections (an events stream breaks mid-stream), refuses
// new ones (an engine restart), removes its socket (the socket gone), or
// writes a malformed chunk into the open events streams.
//
// A client reaches the engine through the proxy with DOCKER_HOST set to
// Host(), or with client.WithHost(Host()):
//
//	p := faultproxy.Start(t)
//	cli, _ := client.NewClientWithOpts(client.WithHost(p.Host()), client.WithAPIVersionNegotiation())
//	...
//	p.Cut()  // every open connection closed now
//	p.Down() // connections refused until Up
//	p.Up()
//
// The proxy understands nothing of HTTP except that it recognises a
// connection that carries a GET /events request, for Garble. All methods are
// safe for concurrent use.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultEngine is the engine's socket when DOCKER_HOST is not set.
const DefaultEngine = "unix:///var/run/docker.sock"

// GarbledChunk is what Garble writes into an events stream: a well-framed
// HTTP/1.1 chunk whose content is not JSON.
const GarbledChunk = "10\r\n{\"Type\":garbage}\n\r\n"

// Proxy is a fault-injecting pass-through proxy listening on a unix socket.
type Proxy struct {
	path           string
	upNet, upAddr  string
	dialTimeout    time.Duration
	accepted, cuts atomic.Int64

	mu     sync.Mutex
	ln     *net.UnixListener // nil while down
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// conn is one client connection and its upstream twin.
type conn struct {
	client, upstream net.Conn
	wmu              sync.Mutex  // serialises writes to client
	events           atomic.Bool // a GET /events request went through it
	once             sync.Once
}

func (c *conn) close() {
	c.once.Do(func() {
		c.client.Close()
		c.upstream.Close()
	})
}

// EngineAddr returns the network ("unix" or "tcp") and address of the
// engine the environment points at: DOCKER_HOST, or DefaultEngine.
func EngineAddr() (network, addr string, err error) {
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = DefaultEngine
	}
	u, err := url.Parse(host)
	if err != nil {
		return "", "", fmt.Errorf("faultproxy: DOCKER_HOST %q: %w", host, err)
	}
	switch u.Scheme {
	case "unix":
		return "unix", u.Path, nil
	case "tcp":
		return "tcp", u.Host, nil
	}
	return "", "", fmt.Errorf("faultproxy: DOCKER_HOST %q: only unix:// and tcp:// engines can be proxied", host)
}

// New starts a proxy listening on the unix socket path that forwards every
// connection to upstream, a network ("unix" or "tcp") and address as
// EngineAddr returns them. Close stops it.
func New(path, upstreamNetwork, upstreamAddr string) (*Proxy, error) {
	p := &Proxy{
		path:        path,
		upNet:       upstreamNetwork,
		upAddr:      upstreamAddr,
		dialTimeout: 5 * time.Second,
		conns:       map[*conn]struct{}{},
	}
	if err := p.Up(); err != nil {
		return nil, err
	}
	return p, nil
}

// Start starts a proxy in front of the engine the environment points at,
// on a socket in a new temporary directory (short enough for the 108-byte
// limit of socket paths), and closes it when tb ends.
func Start(tb testing.TB) *Proxy {
	tb.Helper()
	network, addr, err := EngineAddr()
	if err != nil {
		tb.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "faultproxy-")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := New(filepath.Join(dir, "engine.sock"), network, addr)
	if err != nil {
		os.RemoveAll(dir)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.Close()
		os.RemoveAll(dir)
	})
	return p
}

// Host returns the proxy's address for DOCKER_HOST: unix:// and the
// socket's path.
func (p *Proxy) Host() string { return "unix://" + p.path }

// Path returns the path of the proxy's socket.
func (p *Proxy) Path() string { return p.path }

// Accepted returns how many connections the proxy has accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Conns returns how many connections are open now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Up listens again after Down or Gone; it does nothing while the proxy is
// up.
func (p *Proxy) Up() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: closed")
	}
	if p.ln != nil {
		return nil
	}
	// A socket file left by Down answers nothing; remove it to listen again.
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("faultproxy: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p.path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("faultproxy: %w", err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// Down stops listening and cuts every open connection, like an engine that
// stopped: the socket file stays, and connecting to it is refused
// (ECONNREFUSED) until Up.
func (p *Proxy) Down() { p.down(false) }

// Gone is Down with the socket file removed as well, like a socket that was
// never mounted: connecting fails with ENOENT until Up.
func (p *Proxy) Gone() { p.down(true) }

func (p *Proxy) down(remove bool) {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.SetUnlinkOnClose(remove)
		p.ln.Close()
		p.ln = nil
	}
	p.mu.Unlock()
	p.Cut()
}

// Cut closes every open connection now, in both directions, and returns how
// many it closed. New connections are accepted as before.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	cs := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
	p.cuts.Add(int64(len(cs)))
	return len(cs)
}

// Garble writes GarbledChunk to the client of every open connection that
// carries an events stream, between two writes of the engine's answer, and
// returns how many it wrote to. The connections stay open: what follows is
// up to the client.
func (p *Proxy) Garble() int {
	p.mu.Lock()
	var cs []*conn
	for c := range p.conns {
		if c.events.Load() {
			cs = append(cs, c)
		}
	}
	p.mu.Unlock()
	n := 0
	for _, c := range cs {
		c.wmu.Lock()
		_, err := io.WriteString(c.client, GarbledChunk)
		c.wmu.Unlock()
		if err == nil {
			n++
		}
	}
	return n
}

// Close stops listening, removes the socket, closes every connection and
// waits for the proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	if p.ln != nil {
		p.ln.SetUnlinkOnClose(true)
		p.ln.Close()
		p.ln = nil
	} else {
		os.Remove(p.path)
	}
	p.mu.Unlock()
	p.Cut()
	p.wg.Wait()
	return nil
}

func (p *Proxy) accept(ln *net.UnixListener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed by Down, Gone or Close
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.serve(ln, c)
	}
}

// serve connects c to the engine and copies bytes both ways until either
// side closes or the proxy cuts the connection.
func (p *Proxy) serve(ln *net.UnixListener, client net.Conn) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), p.dialTimeout)
	up, err := (&net.Dialer{}).DialContext(ctx, p.upNet, p.upAddr)
	cancel()
	if err != nil {
		client.Close()
		return
	}
	c := &conn{client: client, upstream: up}
	p.mu.Lock()
	if p.ln != ln { // went down while connecting
		p.mu.Unlock()
		c.close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()

	done := make(chan struct{})
	go func() {
		defer close(done)
		p.toEngine(c)
	}()
	p.toClient(c)
	c.close()
	<-done
}

// toEngine copies what the client sends, noting an events request.
func (p *Proxy) toEngine(c *conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			if !c.events.Load() && isEventsRequest(buf[:n]) {
				c.events.Store(true)
			}
			if _, werr := c.upstream.Write(buf[:n]); werr != nil {
				c.close()
				return
			}
		}
		if err != nil {
			if cw, ok := c.upstream.(interface{ CloseWrite() error }); ok && errors.Is(err, io.EOF) {
				cw.CloseWrite() // the client is done sending; its answer may still come
				return
			}
			c.close()
			return
		}
	}
}

// isEventsRequest reports whether b holds the request line of
// GET [/vX.Y]/events.
func isEventsRequest(b []byte) bool {
	for len(b) > 0 {
		line, rest, _ := bytes.Cut(b, []byte("\r\n"))
		if bytes.HasPrefix(line, []byte("GET /")) {
			target, _, _ := bytes.Cut(line[len("GET "):], []byte(" "))
			path, _, _ := bytes.Cut(target, []byte("?"))
			if bytes.HasSuffix(path, []byte("/events")) {
				return true
			}
		}
		b = rest
	}
	return false
}

// toClient copies what the engine answers.
func (p *Proxy) toClient(c *conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.upstream.Read(buf)
		if n > 0 {
			c.wmu.Lock()
			_, werr := c.client.Write(buf[:n])
			c.wmu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
