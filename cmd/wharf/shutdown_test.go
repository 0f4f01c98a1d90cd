package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
)

// On SIGTERM wharf stops accepting and lets requests in flight finish,
// within --shutdown-timeout.
func TestShutdown(t *testing.T) {
	tests := []struct {
		name  string
		grace string
		// answer: the peer answers the request in flight once new
		// connections are refused; otherwise only after wharf returned.
		answer    bool
		wantOK    bool
		wantError bool
	}{
		{"in-flight request finishes", "5s", true, true, false},
		{"cut off after the grace period", "100ms", false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The peer says when the request reached it, and answers when
			// the test lets it.
			reached, release := make(chan struct{}, 1), make(chan struct{})
			var once sync.Once
			answer := func() { once.Do(func() { close(release) }) }
			slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("hold") != "" {
					reached <- struct{}{}
					<-release
				}
				io.WriteString(w, "done")
			}))
			defer slow.Close()
			defer answer()
			in := startWharf(t, "--upstream", strings.TrimPrefix(slow.URL, "http://"), "--shutdown-timeout", tt.grace)
			type result struct {
				status int
				body   string
				err    error
			}
			got := make(chan result, 1)
			go func() {
				res, err := http.Get(in.url + "/?hold=1")
				if err != nil {
					got <- result{err: err}
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				got <- result{res.StatusCode, string(b), err}
			}()
			select {
			case <-reached:
			case r := <-got:
				t.Fatalf("request ended before it reached the peer: %+v", r)
			case <-time.After(10 * time.Second):
				t.Fatal("the request did not reach the peer")
			}
			stopped := make(chan error, 1)
			go func() { stopped <- in.stop() }()

			// New connections are refused at once. The closing of wharf's
			// listener gives no signal: poll it, briefly.
			refused := func() bool {
				c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				res, err := c.Get(in.url + "/")
				if err != nil {
					return true
				}
				res.Body.Close()
				return false
			}
			testutil.Eventually(t, 2*time.Second, "still accepting new connections after shutdown began", refused)
			select {
			case r := <-got:
				t.Fatalf("the request in flight ended before the peer answered: %+v", r)
			default:
			}
			if tt.answer {
				answer()
			}
			var err error
			select {
			case err = <-stopped:
			case <-time.After(10 * time.Second):
				t.Fatal("wharf still serving 10s after shutdown began")
			}
			if (err != nil) != tt.wantError {
				t.Fatalf("serve returned %v, want error=%v", err, tt.wantError)
			}
			r := <-got
			if ok := r.err == nil && r.status == 200 && r.body == "done"; ok != tt.wantOK {
				t.Fatalf("in-flight request: status %d body %q err %v; want finished=%v", r.status, r.body, r.err, tt.wantOK)
			}
		})
	}
}
