// Package proxy owns HTTP: the entry point, routing a request to a service,
// asking the service's pool for a peer, forwarding, retrying on the next
// peer, forwarded headers and error answers.
//
// Forwarding is done by FastServer, wharf's data path, for every protocol
// it serves (HTTP/1.x plain and in TLS, HTTP/2).
package proxy

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/lb"
)

// Router finds the service for a request. *lb.Balancer implements it.
type Router interface {
	// Route returns the pool for host and path, or nil when no service
	// matches.
	Route(host, path string) *lb.Pool
}

// Config holds the proxy's behaviour. The zero value is valid: every peer
// is tried once, there is no overall time bound, only connection failures
// count, and bodies up to DefaultRetryBodyLimit are kept for replay.
type Config struct {
	// NextUpstreamTries bounds the attempts of one request (nginx
	// proxy_next_upstream_tries); 0 means every peer once.
	NextUpstreamTries int
	// NextUpstreamTimeout bounds the time spent on all attempts of one
	// request before giving up on the next one; 0 means no bound.
	NextUpstreamTimeout time.Duration
	// RetryOnStatus lists peer answers treated as failures (e.g. 502, 503,
	// 504): the request goes to the next peer when it may be retried, and
	// the last answer is passed to the client when no peer is left.
	RetryOnStatus []int
	// RetryBodyLimit is the largest request body kept in memory so it can be
	// sent again on retry; larger bodies are streamed and not retried.
	// 0 means DefaultRetryBodyLimit; negative disables keeping bodies.
	RetryBodyLimit int64
	// RetryBufferBudget bounds the memory of all request bodies kept for
	// replay at one time. A body that would go over it is streamed and
	// not retried, as a body over RetryBodyLimit is. 0 means
	// DefaultRetryBufferBudget; negative means none.
	RetryBufferBudget int64
	// DialTimeout bounds connecting to a peer; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a peer's response head
	// after the request was sent; 0 means DefaultResponseHeaderTimeout.
	ResponseHeaderTimeout time.Duration
	// Timeouts bound how long the proxy's connections may wait; the zero
	// value means the defaults.
	Timeouts Timeouts
	// MaxConns bounds the client connections; 0 means no bound.
	MaxConns int
	// Gzip compresses answers, over every protocol; the zero value
	// compresses nothing.
	Gzip GzipConfig

	// TrustedProxies are the addresses whose forwarded fields are believed
	// (nginx set_real_ip_from with real_ip_recursive on): a client in one
	// keeps its X-Forwarded-For chain, X-Forwarded-Host, X-Forwarded-Proto,
	// Forwarded and True-Client-IP, and X-Real-IP names the first
	// untrusted address of the chain. Any other client could forge them,
	// so they are replaced by what wharf saw. Empty trusts no one.
	TrustedProxies []netip.Prefix

	// AccessLog logs one line per request at info level.
	AccessLog bool
	Log       zerolog.Logger
}

// Timeouts are the time limits of the connections the proxy keeps, to
// clients and to peers. A zero or negative field means its default.
//
// The client limits are socket read deadlines, which are moved lazily (see
// setLazyDeadline): a limit may run over by up to a second, or a quarter
// of itself when that is less.
type Timeouts struct {
	// ClientIdle closes a keep-alive client connection that has waited
	// this long for its next request. Default: DefaultClientIdleTimeout
	// (nginx's keepalive_timeout).
	ClientIdle time.Duration
	// RequestHeader bounds the arrival of a request head, counted from
	// its first bytes. Default: DefaultRequestHeaderTimeout.
	RequestHeader time.Duration
	// RequestBody bounds the wait between two reads of a request body.
	// Default: DefaultRequestBodyTimeout (nginx's client_body_timeout).
	RequestBody time.Duration
	// ClientSend closes a client connection that has taken nothing of an
	// answer for this long: the wait between two writes that make
	// progress, not the time of the whole answer. Default:
	// DefaultSendTimeout (nginx's send_timeout).
	ClientSend time.Duration
	// UpstreamRead bounds the wait between two reads of a peer's answer
	// body, as Config.ResponseHeaderTimeout bounds the wait for its head.
	// Default: DefaultResponseHeaderTimeout (nginx's proxy_read_timeout
	// covers both).
	UpstreamRead time.Duration
	// UpstreamUnacked is how long data sent to a peer may go
	// unacknowledged by its TCP before the connection is given up
	// (TCP_USER_TIMEOUT, Linux): an attempt on a peer whose host vanished
	// fails in this time instead of the response timeout, and an
	// idempotent request goes to the next peer. Default:
	// DefaultUpstreamUnacked.
	UpstreamUnacked time.Duration
	// UpstreamIdle is how long an idle keep-alive connection to a peer
	// may be reused; older ones are closed. Default:
	// DefaultUpstreamIdleTimeout.
	UpstreamIdle time.Duration
	// TLSHandshake bounds a client's TLS handshake, from its accept.
	// Default: DefaultTLSHandshakeTimeout.
	TLSHandshake time.Duration

	// idleHandoff is how long an idle client connection waits on the
	// goroutine that served its last request before a small one takes it
	// over (see waitIdle). It changes what the connection costs, not how
	// long it lives, so it is not for users to set; tests shorten it to
	// see the hand-over without waiting a second. Default:
	// defaultIdleHandoff, and never more than ClientIdle.
	idleHandoff time.Duration
}

// Stats are the proxy's counters that belong to no service.
type Stats struct {
	NoRoute atomic.Uint64 // requests answered 404: no service matched
	// Shortage counts requests answered 503 because wharf lacked a file
	// descriptor or memory to reach a peer (see localShortage).
	Shortage atomic.Uint64
	// Reclaimed counts idle client connections closed to make room under
	// Config.MaxConns.
	Reclaimed atomic.Uint64
	// RetryBuffered is the memory, in bytes, that request bodies kept for
	// replay hold against Config.RetryBufferBudget.
	RetryBuffered atomic.Int64
	// RetryBufferExhausted counts the bodies streamed without a retry
	// because keeping them would have gone over the budget.
	RetryBufferExhausted atomic.Uint64

	shortageLog shortageLog
}

// Defaults of Config.
const (
	DefaultRetryBodyLimit = 64 << 10
	// DefaultRetryBufferBudget keeps 240 bodies of the default limit at
	// once (a 68 KiB buffer each), plenty for bodies that arrive at the
	// pace of a network; slow clients beyond them cost no retry buffer.
	DefaultRetryBufferBudget     = 16 << 20
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second // nginx proxy_read_timeout
	DefaultClientIdleTimeout     = 75 * time.Second // nginx keepalive_timeout
	DefaultRequestHeaderTimeout  = 30 * time.Second
	DefaultRequestBodyTimeout    = 60 * time.Second // nginx client_body_timeout
	DefaultSendTimeout           = 60 * time.Second // nginx send_timeout
	// DefaultUpstreamUnacked is several retransmissions on a LAN (the
	// first after 200 ms, each later one after twice the wait).
	DefaultUpstreamUnacked = 5 * time.Second
	// DefaultUpstreamIdleTimeout errs on the side of closing a connection
	// before its peer does: a request written to a connection the peer is
	// closing can fail, and only some may be sent again.
	DefaultUpstreamIdleTimeout = 30 * time.Second
	DefaultTLSHandshakeTimeout = 10 * time.Second
	defaultIdleHandoff         = time.Second
)

// withDefaults returns t with every zero or negative field set to its
// default. NewFastServer resolves its Timeouts once, so that a request
// reads plain values.
func (t Timeouts) withDefaults() Timeouts {
	or := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	t.ClientIdle = or(t.ClientIdle, DefaultClientIdleTimeout)
	t.RequestHeader = or(t.RequestHeader, DefaultRequestHeaderTimeout)
	t.RequestBody = or(t.RequestBody, DefaultRequestBodyTimeout)
	t.UpstreamIdle = or(t.UpstreamIdle, DefaultUpstreamIdleTimeout)
	t.ClientSend = or(t.ClientSend, DefaultSendTimeout)
	t.UpstreamUnacked = or(t.UpstreamUnacked, DefaultUpstreamUnacked)
	t.UpstreamRead = or(t.UpstreamRead, DefaultResponseHeaderTimeout)
	t.TLSHandshake = or(t.TLSHandshake, DefaultTLSHandshakeTimeout)
	// An idle connection is closed after ClientIdle: handing it over
	// later would be for nothing.
	t.idleHandoff = min(or(t.idleHandoff, defaultIdleHandoff), t.ClientIdle)
	return t
}

func (c *Config) retryBodyLimit() int64 {
	if c.RetryBodyLimit == 0 {
		return DefaultRetryBodyLimit
	}
	return max(c.RetryBodyLimit, 0)
}

func (c *Config) retryBufferBudget() int64 {
	if c.RetryBufferBudget == 0 {
		return DefaultRetryBufferBudget
	}
	return max(c.RetryBufferBudget, 0)
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout == 0 {
		return DefaultDialTimeout
	}
	return c.DialTimeout
}

func (c *Config) responseHeaderTimeout() time.Duration {
	if c.ResponseHeaderTimeout == 0 {
		return DefaultResponseHeaderTimeout
	}
	return c.ResponseHeaderTimeout
}

func (c *Config) retryStatus(code int) bool {
	for _, s := range c.RetryOnStatus {
		if s == code {
			return true
		}
	}
	return false
}

// budgetLeft reports whether --next-upstream-tries and
// --next-upstream-timeout allow another attempt after the first attempts.
func (c *Config) budgetLeft(attempts int, deadline time.Time) bool {
	if c.NextUpstreamTries > 0 && attempts >= c.NextUpstreamTries {
		return false
	}
	return deadline.IsZero() || time.Now().Before(deadline)
}

// mayRetry is the one place that decides whether a failed attempt may be
// sent to another peer: only when its body can be sent again, and then
// always when the request cannot have reached the peer (the dial failed,
// or the peer's TCP acknowledged none of it), and otherwise only when the
// method is idempotent.
func mayRetry(err error, idempotent, replayable bool) bool {
	return replayable && (idempotent || isDialError(err) || isUnread(err))
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
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
