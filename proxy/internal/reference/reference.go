// Package reference is the reference engine: net/http's ReverseProxy with
// nginx's retry rules, written independently of wharf's data path
// (proxy.FastServer) so that the tests can hold one against the other. It
// serves no traffic.
//
// It shares with the data path only the balancer (lb) and the HTTP
// parser's rules for paths and forwarded addresses (httpwire). Its retry
// decision, error answers and client limits are its own.
package reference

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/lb"
)

// Router finds the service for a request. *lb.Balancer implements it. It
// is declared here, by its user, as package proxy declares its own.
type Router interface {
	// Route returns the pool for host and path, or nil when no service
	// matches.
	Route(host, path string) *lb.Pool
}

// Config is the reference engine's behaviour. Every value is used as
// given, with no default of its own: the tests make it from the data
// path's configuration, defaults resolved. A zero duration is no bound.
type Config struct {
	// A request is tried on at most NextUpstreamTries peers (0: each
	// once), and no attempt starts after NextUpstreamTimeout. A peer's
	// answer with a status of RetryOnStatus is a failure; when no peer is
	// left, the last such answer goes to the client.
	NextUpstreamTries   int
	NextUpstreamTimeout time.Duration
	RetryOnStatus       []int
	// A request body of up to RetryBodyLimit bytes is kept to be sent
	// again, while all kept bodies hold at most RetryBufferBudget bytes;
	// any other body is streamed, and its request not retried. 0 keeps
	// none.
	RetryBodyLimit, RetryBufferBudget int64

	// Dialer connects to peers (its Timeout bounds a dial).
	Dialer net.Dialer
	// ResponseHeaderTimeout bounds the wait for a peer's answer head;
	// UpstreamIdle is how long an idle connection to a peer is kept.
	ResponseHeaderTimeout, UpstreamIdle time.Duration

	// ClientIdle and RequestHeader are NewServer's limits on an idle
	// client connection and on the arrival of a request head.
	ClientIdle, RequestHeader time.Duration
	// RequestBody bounds the wait between two reads of a request body,
	// ClientSend the wait between two writes of an answer.
	RequestBody, ClientSend time.Duration

	// TrustedProxies are the addresses whose forwarded fields are
	// believed; empty trusts no one.
	TrustedProxies []netip.Prefix

	// AccessLog logs one line per request at info level.
	AccessLog bool
	Log       zerolog.Logger
}

// Stats are the engine's counters of request bodies kept for replay.
type Stats struct {
	// RetryBuffered is the memory, in bytes, that request bodies kept for
	// replay hold against Config.RetryBufferBudget.
	RetryBuffered atomic.Int64
	// RetryBufferExhausted counts the bodies streamed without a retry
	// because keeping them would have gone over the budget.
	RetryBufferExhausted atomic.Uint64
}

// reserveRetry takes n bytes from the budget; it reports false, taking
// nothing, when they would exceed it. It and releaseRetry account as the
// data path does, in code of their own (see retry.go).
func (s *Stats) reserveRetry(n, budget int64) bool {
	if n <= 0 {
		return true
	}
	if s.RetryBuffered.Add(n) > budget {
		s.RetryBuffered.Add(-n)
		s.RetryBufferExhausted.Add(1)
		return false
	}
	return true
}

// releaseRetry gives back n bytes taken by reserveRetry.
func (s *Stats) releaseRetry(n int64) {
	if n > 0 {
		s.RetryBuffered.Add(-n)
	}
}
