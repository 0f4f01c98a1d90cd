package reference

import (
	"errors"
	"net"
	"net/http"
	"syscall"
	"time"
)

// The retry rules below say what the data path's say (package proxy), in
// code of their own on purpose: an oracle that shared the data path's rule
// could not catch a bug in it.

// mayRetry reports whether a failed attempt may be sent to another peer:
// only when its body can be sent again, and then always when the request
// cannot have reached the peer (the dial failed), and otherwise only when
// the method is idempotent. net/http's Transport gives no other evidence
// that a peer read nothing.
func mayRetry(err error, idempotent, replayable bool) bool {
	return replayable && (idempotent || isDialError(err))
}

// idempotent reports whether a request with this method may be sent again
// after it possibly reached a peer (RFC 9110 section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// localShortage reports whether err is wharf's own lack of a resource (no
// file descriptor, no socket buffer memory) rather than a fault of the
// peer: the attempt is not counted against the peer, and the request is
// answered 503 without trying others, which would fail the same way.
func localShortage(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

func (c *Config) retryStatus(code int) bool {
	for _, s := range c.RetryOnStatus {
		if s == code {
			return true
		}
	}
	return false
}

// budgetLeft reports whether NextUpstreamTries and NextUpstreamTimeout
// allow another attempt after the first attempts.
func (c *Config) budgetLeft(attempts int, deadline time.Time) bool {
	if c.NextUpstreamTries > 0 && attempts >= c.NextUpstreamTries {
		return false
	}
	return deadline.IsZero() || time.Now().Before(deadline)
}
