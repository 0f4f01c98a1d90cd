package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"github.com/wharflb/wharf/internal/dockertest"
)

// readOnlyEndpoints are the engine endpoints wharf needs, as a socket proxy
// in front of the engine would allow them (GET only, optional /vX.Y prefix).
var readOnlyEndpoints = regexp.MustCompile(`^(/v[0-9.]+)?/(_ping|version|info|events|containers/json|containers/[^/]+/json|networks/[^/]+)$`)

// TestBehindReadOnlySocketProxy runs wharf against a proxy of the engine
// socket that answers 403 to everything but the read endpoints above, and
// checks that wharf works and never asked for anything else.
func TestBehindReadOnlySocketProxy(t *testing.T) {
	cli := dockertest.Require(t)
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	engine := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "http", Host: "docker"}) },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", "/var/run/docker.sock")
		}},
		FlushInterval: -1, // the events stream
	}
	var mu sync.Mutex
	var denied []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !readOnlyEndpoints.MatchString(r.URL.Path) {
			mu.Lock()
			denied = append(denied, r.Method+" "+r.URL.Path)
			mu.Unlock()
			http.Error(w, "forbidden by the socket proxy", http.StatusForbidden)
			return
		}
		engine.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	t.Setenv("DOCKER_HOST", "unix://"+sock)

	netName := dockertest.Network(t, cli, "proxied")
	c := dockertest.Run(t, cli, dockertest.ContainerOptions{Image: dockertest.WebtestImage(t, cli), Network: netName,
		Labels: map[string]string{"lb.enable": "true", "lb.port": "6969"}})
	in := startWharf(t, "--network", netName)
	in.waitPeers(t, c.Name)
	if status, server := in.server(t, http.DefaultClient); status != 200 || server != c.Name {
		t.Fatalf("through wharf: %d from %q", status, server)
	}
	c.Stop(0)
	in.waitPeers(t)
	mu.Lock()
	defer mu.Unlock()
	if len(denied) > 0 {
		t.Fatalf("wharf asked the engine for endpoints beyond the read-only set: %v", denied)
	}
}
