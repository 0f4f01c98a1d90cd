package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy/internal/reference"
)

// backend is a real HTTP server that names itself in every answer.
type backend struct{ *testutil.Backend }

func newBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	return &backend{testutil.NewBackend(t, name, h)}
}

func (b *backend) backend(weight int) lb.Backend {
	return lb.Backend{ID: b.Name, Name: b.Name, Network: "tcp", Addr: b.Addr(), Weight: weight,
		MaxFails: 1, FailTimeout: 10 * time.Second}
}

// refused returns a backend address on 127.0.0.1 where nothing listens.
func refused(t *testing.T, name string) lb.Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return lb.Backend{ID: name, Name: name, Network: "tcp", Addr: addr, Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second}
}

// newProxy serves the reference engine (proxy/internal/reference) for
// backends with cfg, and returns its server and balancer.
func newProxy(t testing.TB, cfg Config, backends ...lb.Backend) (*httptest.Server, *lb.Balancer) {
	t.Helper()
	bal := lb.New(lb.OnRemove(reference.ClosePeer))
	bal.Update("test", backends)
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = reference.NewServer(reference.New(bal, referenceConfig(cfg)))
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, bal
}

// referenceConfig is cfg for the reference engine: what it has of cfg,
// the data path's defaults resolved, and the data path's dialer, so that
// both engines reach peers with the same socket options.
func referenceConfig(cfg Config) reference.Config {
	cfg.Timeouts = cfg.Timeouts.withDefaults()
	t := cfg.Timeouts
	return reference.Config{
		NextUpstreamTries:     cfg.NextUpstreamTries,
		NextUpstreamTimeout:   cfg.NextUpstreamTimeout,
		RetryOnStatus:         cfg.RetryOnStatus,
		RetryBodyLimit:        cfg.retryBodyLimit(),
		RetryBufferBudget:     cfg.retryBufferBudget(),
		Dialer:                cfg.peerDialer(),
		ResponseHeaderTimeout: cfg.responseHeaderTimeout(),
		UpstreamIdle:          t.UpstreamIdle,
		ClientIdle:            t.ClientIdle,
		RequestHeader:         t.RequestHeader,
		RequestBody:           t.RequestBody,
		ClientSend:            t.ClientSend,
		TrustedProxies:        cfg.TrustedProxies,
		AccessLog:             cfg.AccessLog,
		Log:                   cfg.Log,
	}
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func TestWeightedSpreadThroughProxy(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		a, b, c := newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)
		url, _ := e.start(t, Config{}, a.backend(5), b.backend(1), c.backend(1))
		var seq []string
		for i := 0; i < 7; i++ {
			_, body, _ := get(t, url+"/webtest")
			seq = append(seq, body)
		}
		if got, want := strings.Join(seq, " "), "a a b a c a a"; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
}

func TestErrorAnswers(t *testing.T) {
	ruled := newBackend(t, "ruled", nil).backend(1)
	ruled.Rules.Hosts = []string{"only.test"}
	tests := []struct {
		name     string
		backends []lb.Backend
		status   int
		errText  string
		service  string
	}{
		{"no route", []lb.Backend{ruled}, 404, msgNoRoute, ""},
		{"no peer", nil, 404, msgNoRoute, ""},
		{"all failed", []lb.Backend{refused(t, "r1"), refused(t, "r2")}, 502, msgAllFailed, "default"},
	}
	forEachEngine(t, func(t *testing.T, e engine) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				url, _ := e.start(t, Config{}, tt.backends...)
				status, body, hdr := get(t, url+"/x")
				if status != tt.status {
					t.Fatalf("status %d, want %d (%s)", status, tt.status, body)
				}
				if ct := hdr.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				var eb errorBody
				if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error != tt.errText || eb.Service != tt.service {
					t.Errorf("body %s (err %v), want error %q service %q", body, err, tt.errText, tt.service)
				}
			})
		}
	})
}

func TestNoAvailablePeerIs503(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		r := refused(t, "r")
		url, _ := e.start(t, Config{}, r)
		if status, _, _ := get(t, url+"/"); status != 502 {
			t.Fatalf("first request: %d, want 502", status)
		}
		// max_fails=1: the failure took the only peer down.
		status, body, _ := get(t, url+"/")
		if status != 503 || !strings.Contains(body, msgNoPeer) {
			t.Fatalf("got %d %s, want 503 %q", status, body, msgNoPeer)
		}
	})
}

func TestDialFailureRetriedOnNextPeer(t *testing.T) {
	good := newBackend(t, "good", nil)
	forEachEngine(t, func(t *testing.T, e engine) {
		for _, method := range []string{"GET", "POST"} {
			t.Run(method, func(t *testing.T) {
				url, bal := e.start(t, Config{}, refused(t, "dead"), good.backend(1))
				for i := 0; i < 4; i++ {
					req, _ := http.NewRequest(method, url+"/", strings.NewReader("payload"))
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					if res.StatusCode != 200 || string(b) != "good" {
						t.Fatalf("request %d: %d %s", i, res.StatusCode, b)
					}
				}
				dead := bal.Table().Pool(lb.DefaultService).Peers()[0]
				if dead.Failures() != 1 || dead.Available(bal.Now()) {
					t.Errorf("dead peer: failures %d available %v, want 1 and false", dead.Failures(), dead.Available(bal.Now()))
				}
			})
		}
	})
}

// A peer that accepts the request and breaks the connection before
// answering: GET goes to the next peer, POST is not sent twice.
func TestBrokenPeerRetriedOnlyForIdempotent(t *testing.T) {
	var posts atomic.Int64
	breaker := newBackend(t, "breaker", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			posts.Add(1)
		}
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})
	good := newBackend(t, "good", nil)
	cfgs := []struct {
		method string
		status int
		posts  int64
	}{{"GET", 200, 0}, {"POST", 502, 1}}
	forEachEngine(t, func(t *testing.T, e engine) {
		for _, c := range cfgs {
			t.Run(c.method, func(t *testing.T) {
				posts.Store(0)
				b1 := breaker.backend(1)
				b1.MaxFails = 0
				url, _ := e.start(t, Config{}, b1, good.backend(1))
				req, _ := http.NewRequest(c.method, url+"/", strings.NewReader("x"))
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != c.status || posts.Load() != c.posts {
					t.Fatalf("status %d posts %d, want %d and %d", res.StatusCode, posts.Load(), c.status, c.posts)
				}
			})
		}
	})
}

func TestRetryOnStatus(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		busy := newBackend(t, "busy", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(503)
			fmt.Fprint(w, "busy")
		})
		good := newBackend(t, "good", nil)
		t.Run("next peer answers", func(t *testing.T) {
			url, _ := e.start(t, Config{RetryOnStatus: []int{503}}, busy.backend(1), good.backend(1))
			if status, body, _ := get(t, url+"/"); status != 200 || body != "good" {
				t.Fatalf("got %d %s", status, body)
			}
		})
		t.Run("last answer passed on", func(t *testing.T) {
			url, _ := e.start(t, Config{RetryOnStatus: []int{503}}, busy.backend(1))
			if status, body, _ := get(t, url+"/"); status != 503 || body != "busy" {
				t.Fatalf("got %d %s", status, body)
			}
		})
		t.Run("off by default", func(t *testing.T) {
			url, _ := e.start(t, Config{}, busy.backend(1), good.backend(1))
			if status, _, _ := get(t, url+"/"); status != 503 {
				t.Fatalf("got %d, want the peer's 503", status)
			}
		})
	})
}

func TestLargeBodyStreamedNotRetried(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		var got atomic.Int64
		sink := newBackend(t, "sink", func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			got.Store(n)
		})
		url, _ := e.start(t, Config{RetryBodyLimit: 1024}, sink.backend(1))
		for _, size := range []int{10, 1024, 1025, 1 << 20} {
			res, err := http.Post(url+"/", "application/octet-stream", strings.NewReader(strings.Repeat("x", size)))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 || got.Load() != int64(size) {
				t.Fatalf("size %d: status %d, peer got %d bytes", size, res.StatusCode, got.Load())
			}
		}
	})
}

func TestForwardedHeadersAndHopByHop(t *testing.T) {
	// The client sends Connection and Proxy-Connection, which HTTP/2 forbids.
	forEachH1Engine(t, func(t *testing.T, e engine) {
		var seen http.Header
		var host string
		echo := newBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) {
			seen, host = r.Header.Clone(), r.Host
			w.Header().Set("Connection", "X-Peer-Hop")
			w.Header().Set("X-Peer-Hop", "secret")
			w.Header().Set("Keep-Alive", "timeout=5")
		})
		url, _ := e.start(t, Config{}, echo.backend(1))
		req, _ := http.NewRequest("GET", url+"/x", nil)
		req.Host = "app.example.com"
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		req.Header.Set("Connection", "X-Client-Hop")
		req.Header.Set("X-Client-Hop", "drop me")
		req.Header.Set("Proxy-Connection", "keep-alive")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		checks := []struct{ name, got, want string }{
			{"Host", host, "app.example.com"},
			{"X-Forwarded-For", seen.Get("X-Forwarded-For"), "127.0.0.1"}, // the client is not a trusted proxy
			{"X-Forwarded-Host", seen.Get("X-Forwarded-Host"), "app.example.com"},
			{"X-Forwarded-Proto", seen.Get("X-Forwarded-Proto"), url[:strings.Index(url, ":")]}, // http or https
			{"X-Client-Hop", seen.Get("X-Client-Hop"), ""},
			{"Proxy-Connection", seen.Get("Proxy-Connection"), ""},
			{"response X-Peer-Hop", res.Header.Get("X-Peer-Hop"), ""},
			{"response Keep-Alive", res.Header.Get("Keep-Alive"), ""},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
			}
		}
	})
}

func TestStripPrefix(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		var path string
		echo := newBackend(t, "echo", func(w http.ResponseWriter, r *http.Request) { path = r.URL.RequestURI() })
		b := echo.backend(1)
		b.Rules = lb.Rules{PathPrefix: "/api", StripPrefix: true}
		url, _ := e.start(t, Config{}, b)
		for in, want := range map[string]string{"/api/users?id=1": "/users?id=1", "/api": "/"} {
			get(t, url+in)
			if path != want {
				t.Errorf("%s forwarded as %s, want %s", in, path, want)
			}
		}
	})
}

func TestStreamedResponseFlushedPromptly(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		release := make(chan struct{})
		sse := newBackend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			<-release
			fmt.Fprint(w, "data: second\n\n")
		})
		defer close(release)
		url, _ := e.start(t, Config{}, sse.backend(1))
		res, err := http.Get(url + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		buf := make([]byte, 64)
		done := make(chan string, 1)
		go func() { n, _ := res.Body.Read(buf); done <- string(buf[:n]) }()
		select {
		case got := <-done:
			if got != "data: first\n\n" {
				t.Fatalf("got %q", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("first event not flushed to the client")
		}
	})
}
