package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

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
