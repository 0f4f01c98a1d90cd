package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// On SIGTERM wharf stops accepting and lets requests in flight finish,
// within --shutdown-timeout.
func TestShutdown(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		time.Sleep(d)
		io.WriteString(w, "done")
	}))
	defer slow.Close()
	upstream := strings.TrimPrefix(slow.URL, "http://")
	tests := []struct {
		name      string
		grace     string
		delay     string
		wantOK    bool
		wantError bool
	}{
		{"in-flight request finishes", "5s", "400ms", true, false},
		{"cut off after the grace period", "100ms", "3s", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := startWharf(t, "--upstream", upstream, "--shutdown-timeout", tt.grace)
			type result struct {
				status int
				body   string
				err    error
			}
			got := make(chan result, 1)
			go func() {
				res, err := http.Get(in.url + "/?d=" + tt.delay)
				if err != nil {
					got <- result{err: err}
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				got <- result{res.StatusCode, string(b), err}
			}()
			time.Sleep(100 * time.Millisecond) // let the request reach the peer
			stopped := make(chan error, 1)
			go func() { stopped <- in.stop() }()

			// New connections are refused at once.
			deadline := time.Now().Add(2 * time.Second)
			for {
				c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				res, err := c.Get(in.url + "/?d=0s")
				if err != nil {
					break
				}
				res.Body.Close()
				if time.Now().After(deadline) {
					t.Fatal("still accepting new connections after shutdown began")
				}
				time.Sleep(5 * time.Millisecond)
			}
			r := <-got
			if ok := r.err == nil && r.status == 200 && r.body == "done"; ok != tt.wantOK {
				t.Fatalf("in-flight request: status %d body %q err %v; want finished=%v", r.status, r.body, r.err, tt.wantOK)
			}
			if err := <-stopped; (err != nil) != tt.wantError {
				t.Fatalf("serve returned %v, want error=%v", err, tt.wantError)
			}
		})
	}
}
