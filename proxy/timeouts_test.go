package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
)

// The fast path closes a client connection that waits too long, by the
// limits of Config.Timeouts. They are socket deadlines, enforced by the
// runtime's poller: the test waits for the close itself.
func TestFastClientTimeouts(t *testing.T) {
	for _, start := range fastStarts {
		t.Run(start.name, func(t *testing.T) { testFastClientTimeouts(t, start.start) })
	}
}

func testFastClientTimeouts(t *testing.T, startFast fastStart) {
	const limit = 50 * time.Millisecond
	be := newBackend(t, "b", nil)
	url, _, _ := startFast(t, Config{Timeouts: Timeouts{ClientIdle: limit, RequestHeader: limit, RequestBody: limit}}, fastHooks{}, be.backend(1))
	for _, tc := range []struct {
		name string
		sent string // then nothing more
	}{
		{"idle", ""},
		{"idle after a request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"head unfinished", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"body unfinished", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c, err := dialProxy(url)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(waitBound))
			io.WriteString(c, tc.sent)
			br := bufio.NewReader(c)
			if strings.HasSuffix(tc.sent, "\r\n\r\n") {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				start = time.Now()
			}
			n, err := br.Read(make([]byte, 1))
			if err != io.EOF {
				t.Fatalf("read %d bytes, %v; want the connection closed", n, err)
			}
			if d := time.Since(start); d < limit {
				t.Fatalf("closed after %v, before the limit of %v", d, limit)
			}
		})
	}
}

// Idle connections to a peer are reused for Timeouts.UpstreamIdle, by both
// engines.
func TestUpstreamIdleTimeout(t *testing.T) {
	var conns atomic.Int64
	be := &backend{&testutil.Backend{Name: "b", Server: httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "b")
	}))}}
	be.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	be.Start()
	t.Cleanup(be.Close)
	for _, tc := range []struct {
		upstreamIdle time.Duration
		want         int64 // connections for three requests in a row
	}{
		{0, 1},               // the default: reused
		{time.Nanosecond, 3}, // too old already when the next request comes
	} {
		conns.Store(0)
		url, _ := newFastProxy(t, Config{Timeouts: Timeouts{UpstreamIdle: tc.upstreamIdle}}, be.backend(1))
		for range 3 {
			if status, body, _ := get(t, url+"/"); status != 200 || body != "b" {
				t.Fatalf("%d %q", status, body)
			}
		}
		if n := conns.Load(); n != tc.want {
			t.Errorf("UpstreamIdle %v: the peer got %d connections, want %d", tc.upstreamIdle, n, tc.want)
		}
	}
	// The reference engine is given the same value, which its transports
	// keep their connections by (TestTransportKeepsIdleFor in its package).
	for _, tc := range []struct{ set, want time.Duration }{
		{0, DefaultUpstreamIdleTimeout},
		{7 * time.Second, 7 * time.Second},
	} {
		if got := referenceConfig(Config{Timeouts: Timeouts{UpstreamIdle: tc.set}}).UpstreamIdle; got != tc.want {
			t.Errorf("UpstreamIdle %v: the reference engine's is %v, want %v", tc.set, got, tc.want)
		}
	}
}
