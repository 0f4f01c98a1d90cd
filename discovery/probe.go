package discovery

import (
	"context"
	"net"
	"time"

	"github.com/wharflb/wharf/internal/clock"
)

// portProbe tries a new backend's port before it is routed, so that no
// client meets a backend that is not listening yet. Both watchers use it.
type portProbe struct {
	clock        clock.Clock
	dial         func(ctx context.Context, network, address string) (net.Conn, error)
	every, limit time.Duration      // ProbeInterval, ProbeTimeout
	out          chan<- probeResult // the watcher's results channel
}

// run dials addr every p.every until it accepts a connection or p.limit
// has passed, and sends res, its ok or err set, on p.out; a cancelled
// probe sends nothing. The first dial comes before any timer is made, so
// a port that already listens is routed without waiting on the clock. It
// runs on its own goroutine and touches nothing of its watcher but p.
func (p portProbe) run(ctx context.Context, res probeResult, addr string) {
	c, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		deadline := p.clock.NewTimer(p.limit)
		retry := p.clock.NewTimer(p.every)
	wait:
		for {
			select {
			case <-ctx.Done():
				res.err = ctx.Err()
				break wait
			case <-deadline.C():
				res.err = err
				break wait
			case <-retry.C():
				if c, err = p.dial(ctx, "tcp", addr); err == nil {
					break wait
				}
				// Re-armed after the dial, so that whoever drives the
				// clock sees the probe waiting again once it dialled.
				retry.Reset(p.every)
			}
		}
		// The timers are stopped before the outcome is reported, so that
		// no timer of a finished probe is left armed once the watcher
		// acts on it.
		deadline.Stop()
		retry.Stop()
	}
	if err == nil && res.err == nil {
		c.Close()
		res.ok = true
	}
	if ctx.Err() != nil {
		return
	}
	select {
	case p.out <- res:
	case <-ctx.Done():
	}
}
