package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2"

	"github.com/wharflb/wharf/lb"
)

// TestRoutingThroughProxy sends real requests for several services, by
// Host and path, through each engine.
func TestRoutingThroughProxy(t *testing.T) {
	svc := func(name string, hosts []string, prefix string, strip bool) lb.Backend {
		b := newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s", name, r.URL.RequestURI())
		}).backend(1)
		b.ID, b.Service = name, name
		b.Rules = lb.Rules{Hosts: hosts, PathPrefix: prefix, StripPrefix: strip}
		return b
	}
	backends := []lb.Backend{
		svc("web", nil, "", false),
		svc("api", []string{"api.example.com"}, "/", false),
		svc("apiv2", []string{"api.example.com"}, "/v2", true),
		svc("tenants", []string{"*.tenants.example.com"}, "", false),
		svc("static", nil, "/static", true),
	}
	tests := []struct{ host, path, want string }{
		{"localhost:10000", "/webtest?action=get_uuid", "web /webtest?action=get_uuid"},
		{"api.example.com", "/v1/users", "api /v1/users"},
		{"API.example.com:10000", "/v2/users?id=7", "apiv2 /users?id=7"},
		{"api.example.com", "/v2", "apiv2 /"},
		{"a.tenants.example.com", "/x", "tenants /x"},
		{"localhost", "/static/app.css", "static /app.css"},
		{"localhost", "/staticfile", "web /staticfile"},
	}
	forEachEngine(t, func(t *testing.T, e engine) {
		url, _ := e.start(t, Config{}, backends...)
		for _, tt := range tests {
			req, _ := http.NewRequest("GET", url+tt.path, nil)
			req.Host = tt.host
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(b) != tt.want {
				t.Errorf("%s%s: got %q, want %q", tt.host, tt.path, b, tt.want)
			}
		}
	})
}

// TestUnixSocketUpstream balances between a TCP and a unix-socket peer, as
// nginx's "server unix:/tmp/backend3" does.
func TestUnixSocketUpstream(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "backend3.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "unix")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	tcp := newBackend(t, "tcp", nil)
	unix, err := lb.ParseUpstream("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	forEachEngine(t, func(t *testing.T, e engine) {
		url, _ := e.start(t, Config{}, tcp.backend(1), unix)
		var got []string
		for i := 0; i < 4; i++ {
			_, body, _ := get(t, url+"/")
			got = append(got, body)
		}
		if s := strings.Join(got, " "); s != "tcp unix tcp unix" {
			t.Fatalf("got %s", s)
		}
	})
}

// TestRoutingNormalizesPath routes by the path as nginx reads it: escapes
// decoded, dot segments resolved. A request that only looks as if it were
// under a service's prefix does not reach that service; one that climbs
// above the root is refused.
func TestRoutingNormalizesPath(t *testing.T) {
	svc := func(name, prefix string, strip bool) lb.Backend {
		b := newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s", name, r.RequestURI)
		}).backend(1)
		b.ID, b.Service = name, name
		b.Rules = lb.Rules{PathPrefix: prefix, StripPrefix: strip}
		return b
	}
	// No catch-all: a path outside both prefixes has no service.
	backends := []lb.Backend{svc("api", "/api", false), svc("static", "/static", true)}
	tests := []struct {
		target string
		status int
		want   string
	}{
		{"/api/users", 200, "api /api/users"},
		{"/api/../secret", 404, ""},
		{"/api/%2e%2e/secret", 404, ""},
		{"/api/..%2fsecret", 404, ""},
		{"/api/x/..%2F..%2Fsecret", 404, ""},
		{"/../secret", 400, ""},
		{"/%2e%2e/api/x", 400, ""},
		// Routed by the normalized path; sent as received without strip.
		{"/%61pi/users", 200, "api /%61pi/users"},
		{"//api/./users", 200, "api //api/./users"},
		// With strip, the prefix comes off the normalized path, re-escaped.
		{"/static/./css/../app.css?v=2", 200, "static /app.css?v=2"},
		{"/static/a%3Fb", 200, "static /a%3Fb"},
		{"/static/a%2fb", 200, "static /a/b"},
	}
	forEachH1Engine(t, func(t *testing.T, e engine) {
		url, _ := e.start(t, Config{}, backends...)
		for _, tt := range tests {
			c, err := dialProxy(url)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", tt.target)
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				c.Close()
				t.Fatalf("%s: %v", tt.target, err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			c.Close()
			if res.StatusCode != tt.status || tt.status == 200 && string(b) != tt.want {
				t.Errorf("%s: %d %q, want %d %q", tt.target, res.StatusCode, b, tt.status, tt.want)
			}
		}
	})
	// The same paths as :path, sent as they are (Go's client would clean
	// some), each on a stream of one connection.
	forEachH2Engine(t, func(t *testing.T, e engine) {
		url, _ := e.start(t, Config{}, backends...)
		a := dialH2(t, url, 0)
		for i, tt := range tests {
			id := uint32(2*i + 1)
			if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: a.headerBlock(tt.target),
				EndStream: true, EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
			ans := a.await(id)
			if ans.status != strconv.Itoa(tt.status) || tt.status == 200 && string(ans.body) != tt.want {
				t.Errorf("%s: %s %q, want %d %q", tt.target, ans.outcome(), ans.body, tt.status, tt.want)
			}
		}
	})
}
