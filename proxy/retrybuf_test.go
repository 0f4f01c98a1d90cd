package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy/internal/reference"
)

// retryCounters are an engine's counters of bodies kept for replay.
type retryCounters struct {
	RetryBuffered        *atomic.Int64
	RetryBufferExhausted *atomic.Uint64
}

// startWithStats starts engine name in front of backends and returns its
// URL and counters.
func startWithStats(t *testing.T, name string, cfg Config, backends ...lb.Backend) (string, retryCounters) {
	t.Helper()
	if name == "fast" {
		url, srv, _ := startFast(t, cfg, fastHooks{}, backends...)
		st := srv.Stats()
		return url, retryCounters{&st.RetryBuffered, &st.RetryBufferExhausted}
	}
	srv, _ := newProxy(t, cfg, backends...)
	st := srv.Config.Handler.(*reference.Handler).Stats()
	return srv.URL, retryCounters{&st.RetryBuffered, &st.RetryBufferExhausted}
}

// Bodies kept for replay share one budget: while a slow client holds a
// kept body, another that does not fit beside it is streamed and not
// retried; once the slow one ends its memory is free again, and the
// counters say so.
func TestRetryBufferBudget(t *testing.T) {
	var broken atomic.Int64
	breaker := newBackend(t, "breaker", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		broken.Add(1)
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})
	good := newBackend(t, "good", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})
	const size = 64 << 10
	body := strings.Repeat("x", size)
	put := func(t *testing.T, url string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("PUT", url+"/", strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, name := range []string{"reference", "fast"} {
		t.Run(name, func(t *testing.T) {
			// The breaker is picked first: every request meets it.
			b := breaker.backend(1000)
			b.MaxFails = 0
			// Room for one body of the default limit, not two.
			url, stats := startWithStats(t, name, Config{RetryBufferBudget: 100 << 10}, b, good.backend(1))

			broken.Store(0)
			if status, got := put(t, url); status != 200 || got != fmt.Sprint(size) || broken.Load() != 1 {
				t.Fatalf("alone: status %d body %q, breaker met %d times; want a retried 200", status, got, broken.Load())
			}
			// The memory comes back once the request has ended, which may
			// be just after the client has its answer.
			testutil.Eventually(t, waitBound, "the budget given back after a request", func() bool { return stats.RetryBuffered.Load() == 0 })

			// Memory is taken as a body arrives, not for its announced
			// length: 1 KiB of 64 KiB holds one step of 4 KiB.
			early, err := dialProxy(url)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(early, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", size, body[:1024])
			testutil.Eventually(t, waitBound, "1 KiB of a body held as 4 KiB", func() bool {
				return stats.RetryBuffered.Load() == 4<<10
			})
			early.Close()
			testutil.Eventually(t, waitBound, "the budget given back by a client gone", func() bool { return stats.RetryBuffered.Load() == 0 })

			// A slow client sends all but the last byte and waits.
			slow, err := dialProxy(url)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			fmt.Fprintf(slow, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", size, body[:size-1])
			testutil.Eventually(t, waitBound, "the slow body held against the budget", func() bool {
				return stats.RetryBuffered.Load() >= size*3/4
			})
			if n := stats.RetryBuffered.Load(); n > 100<<10 {
				t.Fatalf("%d bytes held, over the budget", n)
			}

			broken.Store(0)
			if status, _ := put(t, url); status != 502 || broken.Load() != 1 {
				t.Fatalf("beside the slow body: status %d, breaker met %d times; want 502, streamed once and not retried", status, broken.Load())
			}
			if stats.RetryBufferExhausted.Load() == 0 {
				t.Fatal("the exhausted budget was not counted")
			}

			// The slow client ends its body: it is retried, and its memory
			// comes back.
			slow.SetDeadline(time.Now().Add(waitBound))
			if _, err := slow.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(slow), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(res.Body)
			if res.StatusCode != 200 || string(got) != fmt.Sprint(size) {
				t.Fatalf("slow client: status %d body %q", res.StatusCode, got)
			}
			testutil.Eventually(t, waitBound, "the budget given back", func() bool { return stats.RetryBuffered.Load() == 0 })
			if status, _ := put(t, url); status != 200 {
				t.Fatalf("after the slow client: status %d, want a retried 200", status)
			}
		})
	}
}
