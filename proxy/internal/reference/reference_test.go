package reference

import (
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
)

func peerBackend(b *testutil.Backend) lb.Backend {
	return lb.Backend{ID: b.Name, Name: b.Name, Network: "tcp", Addr: b.Addr(), Weight: 1,
		MaxFails: 1, FailTimeout: 10 * time.Second}
}

// A peer's transport keeps idle connections for Config.UpstreamIdle, 0
// for no bound.
func TestTransportKeepsIdleFor(t *testing.T) {
	peer := &lb.Peer{Backend: lb.Backend{ID: "p", Name: "p", Network: "tcp", Addr: "127.0.0.1:1", Weight: 1}}
	for _, d := range []time.Duration{0, 7 * time.Second} {
		if got := New(nil, Config{UpstreamIdle: d}).newTransport(peer).IdleConnTimeout; got != d {
			t.Errorf("UpstreamIdle %v: IdleConnTimeout is %v", d, got)
		}
	}
}
