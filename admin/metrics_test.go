package admin

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wharflb/wharf/lb"
)

func TestMetrics(t *testing.T) {
	bal := lb.New()
	bal.Update("test", []lb.Backend{
		{ID: "a", Name: "webtest001", Network: "tcp", Addr: "172.18.0.2:6969", Weight: 5, MaxFails: 1, FailTimeout: time.Second},
		{ID: "b", Name: "webtest002", Network: "tcp", Addr: "172.18.0.3:6969", Weight: 1, MaxFails: 1, FailTimeout: time.Second},
	})
	pool := bal.Table().Pool(lb.DefaultService)
	a, b := pool.Peers()[0], pool.Peers()[1]
	for i := 0; i < 3; i++ {
		a.Begin()
		a.Answered(200, 2*time.Millisecond)
		a.End(false, bal.Now())
	}
	b.Begin()
	b.Answered(0, time.Millisecond)
	b.End(true, bal.Now()) // max_fails=1: b is now down
	pool.Stats().Responses.Add(200)
	pool.Stats().Retries.Add(1)

	s := New(bal, func() bool { return true }, Access{})
	s.EnableMetrics(Sources{NoRoute: func() uint64 { return 7 }, Shortage: func() uint64 { return 2 }, Reclaimed: func() uint64 { return 3 },
		RetryBuffered: func() int64 { return 53248 }, RetryBufferExhausted: func() uint64 { return 4 },
		SwarmPolls: func() uint64 { return 11 }})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`wharf_peer_attempts_total{address="172.18.0.2:6969",code="2xx",container="webtest001",service="default"} 3`,
		`wharf_peer_attempts_total{address="172.18.0.3:6969",code="none",container="webtest002",service="default"} 1`,
		`wharf_peer_failures_total{address="172.18.0.3:6969",container="webtest002",service="default"} 1`,
		`wharf_peer_available{address="172.18.0.3:6969",container="webtest002",service="default"} 0`,
		`wharf_peer_weight{address="172.18.0.2:6969",container="webtest001",service="default"} 5`,
		`wharf_peer_attempt_duration_seconds_bucket{address="172.18.0.2:6969",container="webtest001",service="default",le="0.0025"} 3`,
		`wharf_peer_attempt_duration_seconds_bucket{address="172.18.0.2:6969",container="webtest001",service="default",le="0.001"} 0`,
		`wharf_peers{service="default",state="down"} 1`,
		`wharf_peers{service="default",state="ready"} 1`,
		`wharf_requests_total{code="2xx",service="default"} 1`,
		`wharf_retries_total{service="default"} 1`,
		`wharf_no_route_total 7`,
		`wharf_shortage_total 2`,
		`wharf_connections_reclaimed_total 3`,
		`wharf_retry_buffer_bytes 53248`,
		`wharf_retry_buffer_exhausted_total 4`,
		`wharf_swarm_polls_total 11`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}

	// Without Swarm services as a source, there is no such series.
	s = New(bal, func() bool { return true }, Access{})
	s.EnableMetrics(Sources{})
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/metrics", nil))
	if body, _ := io.ReadAll(rec.Body); strings.Contains(string(body), "wharf_swarm_polls_total") {
		t.Error("wharf_swarm_polls_total without a Swarm source")
	}
}
