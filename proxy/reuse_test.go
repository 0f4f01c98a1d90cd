package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharflb/wharf/lb"
)

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Post(url, "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// A POST that went out on a reused keep-alive connection to a peer that
// read it and then died (its connection closed without an answer, its port
// refused from then on, as after a SIGKILL) may have been processed: it
// must not be sent to another peer. A GET in the same situation goes to
// the next peer.
func TestReusedConnectionPeerDiesAfterReading(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		for _, tc := range []struct {
			method      string
			wantStatus  int
			wantAtGood  int64 // requests the good peer got in all
			wantAtDying int64
		}{
			{"POST", http.StatusBadGateway, 1, 2},
			{"GET", http.StatusOK, 2, 2},
		} {
			t.Run(tc.method, func(t *testing.T) {
				var dyingGot atomic.Int64
				dying := httptest.NewUnstartedServer(nil)
				dying.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					if dyingGot.Add(1) == 2 {
						// Dies after reading the request: nothing listens
						// any more, and the connection closes unanswered.
						dying.Listener.Close()
						c, _, _ := w.(http.Hijacker).Hijack()
						c.Close()
						return
					}
					io.WriteString(w, "dying")
				})
				dying.Start()
				t.Cleanup(dying.Close)
				good := newBackend(t, "good", nil)
				d := lb.Backend{ID: "dying", Name: "dying", Network: "tcp", Addr: strings.TrimPrefix(dying.URL, "http://"),
					Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second}
				url, _ := e.start(t, Config{}, d, good.backend(1))

				send := func() (int, string) {
					if tc.method == "POST" {
						return post(t, url+"/")
					}
					status, body, _ := get(t, url+"/")
					return status, body
				}
				// Round-robin in list order: dying, good, then dying again
				// on the connection the first request left idle.
				for i, want := range []string{"dying", "good"} {
					if status, body := send(); status != 200 || body != want {
						t.Fatalf("request %d: %d %q, want 200 %q", i+1, status, body, want)
					}
				}
				status, body := send()
				if status != tc.wantStatus || good.Hits.Load() != tc.wantAtGood || dyingGot.Load() != tc.wantAtDying {
					t.Fatalf("third %s: %d %q; the dying peer got %d requests, the good one %d; want %d, %d and %d",
						tc.method, status, body, dyingGot.Load(), good.Hits.Load(), tc.wantStatus, tc.wantAtDying, tc.wantAtGood)
				}
			})
		}
	})
}

// A peer that closed an idle keep-alive connection (its idle timeout) is
// not sent a POST on it: the POST goes out on a new connection and is
// answered, and the peer gets it once.
func TestPostAfterPeerClosedIdleConnection(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		var got atomic.Int64
		peer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			got.Add(1)
			io.WriteString(w, "ok")
		}))
		peer.Config.IdleTimeout = 20 * time.Millisecond
		closed := make(chan struct{}, 3)
		peer.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				closed <- struct{}{}
			}
		}
		peer.Start()
		t.Cleanup(peer.Close)
		url, _ := e.start(t, Config{}, lb.Backend{ID: "p", Name: "p", Network: "tcp",
			Addr: strings.TrimPrefix(peer.URL, "http://"), Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second})
		for i := range 3 {
			if status, body := post(t, url+"/"); status != 200 || body != "ok" {
				t.Fatalf("POST %d: %d %q", i+1, status, body)
			}
			await(t, closed, "the peer's close of the idle connection")
			if e.name == "reference" {
				// net/http's Transport drops the closed connection from
				// its idle pool on a goroutine of its own, which signals
				// nothing; the fast path looks at the socket when it takes
				// a connection (closedByPeer).
				time.Sleep(50 * time.Millisecond)
			}
		}
		if got.Load() != 3 {
			t.Fatalf("the peer got %d POSTs, want 3", got.Load())
		}
	})
}

// A GET in flight on a reused connection to a peer that has since left the
// table (its container was stopped or killed), when that connection breaks
// unanswered: the GET goes to the next peer, never to a new connection to
// the peer that left, which may not even exist any more.
func TestNoFreshConnectionToPeerThatLeft(t *testing.T) {
	var accepted atomic.Int64
	var left atomic.Bool
	release := make(chan struct{})
	inHandler := make(chan struct{}, 1)
	leaving := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if left.Load() {
			io.WriteString(w, "leaving")
			return
		}
		if r.URL.Path == "/break" {
			inHandler <- struct{}{}
			<-release
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		io.WriteString(w, "leaving")
	}))
	leaving.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			accepted.Add(1)
		}
	}
	leaving.Start()
	t.Cleanup(leaving.Close)
	good := newBackend(t, "good", nil)
	lv := lb.Backend{ID: "leaving", Name: "leaving", Network: "tcp", Addr: strings.TrimPrefix(leaving.URL, "http://"),
		Weight: 1, MaxFails: 1, FailTimeout: 10 * time.Second}

	url, bal := newFastProxy(t, Config{}, lv, good.backend(1))
	if status, body, _ := get(t, url+"/"); status != 200 || body != "leaving" {
		t.Fatalf("first GET: %d %q", status, body)
	}
	get(t, url+"/") // good's turn
	done := make(chan string, 1)
	go func() {
		res, err := http.Get(url + "/break")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		done <- fmt.Sprint(res.StatusCode, " ", string(b))
	}()
	<-inHandler
	bal.Update("test", []lb.Backend{good.backend(1)}) // the container went away
	left.Store(true)
	close(release)
	if got := <-done; got != "200 good" {
		t.Fatalf("GET whose connection broke after its peer left: %s, want 200 good", got)
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("the peer that left accepted %d connections, want only the first", n)
	}
}
