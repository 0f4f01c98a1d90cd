package reference

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/lb"
	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// Handler is the reference engine: an http.Handler that routes each
// request, forwards it with net/http's ReverseProxy and retries failed
// attempts on the next peer with nginx's rules. It supports everything
// net/http does (HTTP/2, upgrades, trailers, streaming).
//
// Handler is safe for concurrent use.
type Handler struct {
	router Router
	cfg    Config
	rp     *httputil.ReverseProxy
	stats  *Stats
}

// Stats returns the handler's counters.
func (h *Handler) Stats() *Stats { return h.stats }

// attempt carries one forwarding attempt through ReverseProxy's hooks.
type attempt struct {
	peer *lb.Peer
	pool *lb.Pool
	// route is the normalized path the request was routed by, from which
	// a stripped prefix is taken (httpwire.NormalizePath).
	route string
	// swallowStatus lets a retry-on-status answer be dropped so the next
	// peer can be tried; false on what must be the last attempt.
	swallowStatus bool
	err           error // transport error, or errRetryStatus
	status        int   // peer's answer when it is a retry-on-status code
	answered      int   // status of the peer's answer, 0 for none
	wrote         bool  // the response head went to the client
}

type attemptKey struct{}

var errRetryStatus = errors.New("peer answered with a retry-on-status code")

// New returns the reference engine for router with cfg.
func New(router Router, cfg Config) *Handler {
	h := &Handler{router: router, cfg: cfg, stats: &Stats{}}
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      roundTripper(h.roundTrip),
		ErrorHandler:   func(_ http.ResponseWriter, r *http.Request, err error) { attemptOf(r).err = err },
		ModifyResponse: h.modifyResponse,
		ErrorLog:       log.New(debugWriter{&cfg.Log}, "", 0),
	}
	return h
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func attemptOf(r *http.Request) *attempt { return r.Context().Value(attemptKey{}).(*attempt) }

// ServeHTTP routes r and forwards it, trying peers until one answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	norm, ok := httpwire.NormalizePath(nil, []byte(r.URL.EscapedPath()))
	if !ok {
		writeError(w, http.StatusBadRequest, msgAboveRoot, "")
		h.accessLog(r, nil, http.StatusBadRequest, nil, 0, start)
		return
	}
	route := string(norm)
	pool := h.router.Route(r.Host, route)
	if pool == nil {
		writeError(w, http.StatusNotFound, msgNoRoute, "")
		h.accessLog(r, nil, http.StatusNotFound, nil, 0, start)
		return
	}
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // the next request on the connection starts afresh
	if r.Body != nil && r.Body != http.NoBody && h.cfg.RequestBody > 0 {
		r.Body = &bodyReadLimit{ReadCloser: r.Body, rc: rc, d: h.cfg.RequestBody}
	}
	if h.cfg.ClientSend > 0 {
		w = &sendLimit{ResponseWriter: w, rc: rc, d: h.cfg.ClientSend}
	}
	var cw *countingWriter
	if h.cfg.AccessLog {
		cw = &countingWriter{ResponseWriter: w}
		w = cw
	}
	status, tried := h.serve(w, r, pool, route)
	st := pool.Stats()
	st.Responses.Add(status)
	st.Latency.Observe(time.Since(start))
	if len(tried) > 1 {
		st.Retries.Add(uint64(len(tried) - 1))
	}
	if cw != nil {
		h.accessLog(r, pool, status, tried, cw.n, start)
	}
}

// serve makes the attempts and answers; it returns the status the client
// got (0 if it went away first) and the peers tried.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, pool *lb.Pool, route string) (int, []*lb.Peer) {
	body, held, replayable, err := h.bufferBody(r)
	defer h.stats.releaseRetry(held)
	if err != nil {
		writeError(w, http.StatusBadRequest, msgBadRequest+": "+err.Error(), pool.Name())
		return http.StatusBadRequest, nil
	}
	var deadline time.Time
	if h.cfg.NextUpstreamTimeout > 0 {
		deadline = time.Now().Add(h.cfg.NextUpstreamTimeout)
	}
	var hash uint64
	if pool.Policy() == lb.IPHash {
		hash = clientHash(r.RemoteAddr)
	}
	var tried []*lb.Peer
	a := &attempt{pool: pool, route: route}
	ctx := context.WithValue(r.Context(), attemptKey{}, a)
	for {
		now := pool.Now()
		peer := pool.Pick(now, hash, tried)
		if peer == nil {
			if len(tried) == 0 {
				pool.Stats().NoPeer.Add(1)
				writeError(w, http.StatusServiceUnavailable, msgNoPeer, pool.Name())
				return http.StatusServiceUnavailable, tried
			}
			writeError(w, http.StatusBadGateway, msgAllFailed, pool.Name())
			return http.StatusBadGateway, tried
		}
		tried = append(tried, peer)
		budget := h.cfg.budgetLeft(len(tried), deadline)
		swallow := budget && replayable && idempotent(r.Method) && pool.HasUntried(tried)
		*a = attempt{peer: peer, pool: pool, route: route, swallowStatus: swallow}

		out := r.WithContext(ctx)
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.forward(w, out, a)

		switch {
		case a.err == nil:
			return a.answered, tried // possibly a retry-on-status code, on the last attempt
		case r.Context().Err() != nil:
			return 0, tried // the client went away: nobody to answer
		case a.wrote:
			return a.answered, tried // too late to retry: the client has part of an answer
		case localShortage(a.err):
			// Logged at each request: the reference serves no traffic
			// that could flood the log.
			h.cfg.Log.Error().Err(a.err).Msg("short of file descriptors or memory: answering 503")
			writeError(w, http.StatusServiceUnavailable, msgShortage, pool.Name())
			return http.StatusServiceUnavailable, tried
		}
		h.cfg.Log.Debug().Str("service", pool.Name()).Str("container", peer.Name).
			Str("address", peer.Addr).Err(a.err).Msg("attempt failed")
		if !h.cfg.budgetLeft(len(tried), deadline) || !mayRetry(a.err, idempotent(r.Method), replayable) {
			writeError(w, http.StatusBadGateway, msgAllFailed, pool.Name())
			return http.StatusBadGateway, tried
		}
	}
}

// accessLog writes one line for a finished request.
func (h *Handler) accessLog(r *http.Request, pool *lb.Pool, status int, tried []*lb.Peer, bytes int64, start time.Time) {
	if !h.cfg.AccessLog {
		return
	}
	ev := h.cfg.Log.Info().Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).
		Str("client", r.RemoteAddr).Str("host", r.Host).Int("attempts", len(tried)).
		Dur("duration", time.Since(start)).Int64("bytes", bytes)
	if pool != nil {
		ev = ev.Str("service", pool.Name())
	}
	if n := len(tried); n > 0 {
		ev = ev.Str("upstream", tried[n-1].Addr).Str("container", tried[n-1].Name)
	}
	ev.Msg("request")
}

// countingWriter counts the body bytes written, for the access log.
// Unwrap lets ReverseProxy reach Flush and Hijack of the real writer.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// clientHash hashes the client's IP (without the port) for ip_hash.
func clientHash(remoteAddr string) uint64 {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	return lb.HashClient(host)
}

// forward makes one attempt. ReverseProxy aborts the handler with a panic
// when the peer fails in the middle of a response; the deferred End keeps
// the peer's accounting right in that case too.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, a *attempt) {
	a.peer.Begin()
	start := time.Now()
	defer func() {
		broke := recover()
		a.peer.Answered(a.answered, time.Since(start))
		failed := a.err != nil || !a.wrote || a.status != 0 || broke != nil
		if localShortage(a.err) {
			a.peer.Abandon()
		} else {
			a.peer.End(failed && r.Context().Err() == nil, a.pool.Now())
		}
		if broke != nil {
			panic(broke)
		}
	}()
	h.rp.ServeHTTP(w, r)
}

// bufferBody reads a request body of at most RetryBodyLimit bytes into
// memory so that it can be replayed, taking the memory from
// RetryBufferBudget as the body arrives; the caller gives back held bytes
// when done. A larger body, or one the budget has no room for, is left
// streaming (and the request is not retryable once it was sent).
func (h *Handler) bufferBody(r *http.Request) (body []byte, held int64, replayable bool, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, 0, true, nil
	}
	limit := max(h.cfg.RetryBodyLimit, 0)
	if r.ContentLength > limit || limit == 0 {
		return nil, 0, false, nil
	}
	budget := max(h.cfg.RetryBufferBudget, 0)
	// The buffer grows as bytes arrive, by doubling from 4 KiB, to the
	// announced length or, for a chunked body, one byte over the limit,
	// which tells a body over it.
	end := limit + 1
	if r.ContentLength > 0 {
		end = r.ContentLength
	}
	var buf []byte
	for int64(len(buf)) < end {
		if len(buf) == cap(buf) {
			size := min(max(2*int64(cap(buf)), 4<<10), end)
			if !h.stats.reserveRetry(size-held, budget) {
				break
			}
			nb := make([]byte, len(buf), size)
			copy(nb, buf)
			buf, held = nb, size
		}
		n, rerr := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr == io.EOF {
			return buf, held, true, nil
		}
		if rerr != nil {
			h.stats.releaseRetry(held)
			return nil, 0, false, rerr
		}
	}
	if int64(len(buf)) == r.ContentLength {
		return buf, held, true, nil
	}
	// Over the limit or the budget: stream what was read and the rest.
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	return nil, held, false, nil
}

// rewrite turns the client's request into the peer's: the peer's address,
// the client's Host, and X-Forwarded-* (appending to an existing
// X-Forwarded-For, as nginx's $proxy_add_x_forwarded_for does).
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	a := attemptOf(pr.In)
	out, in := pr.Out, pr.In
	out.URL.Scheme = "http"
	if a.peer.Network == "unix" {
		out.URL.Host = "localhost"
	} else {
		out.URL.Host = a.peer.Addr
	}
	out.Host = in.Host
	if r := a.pool.Rules(); r.StripPrefix && r.PathPrefix != "" && r.PathPrefix != "/" {
		rest := stripPrefix(a.route, r.PathPrefix)
		out.URL.Path, out.URL.RawPath = "", string(httpwire.AppendEscapedPath(nil, []byte(rest)))
		if p, err := url.PathUnescape(out.URL.RawPath); err == nil {
			out.URL.Path = p
		}
	}
	// net/http already answered the client's Expect: 100-continue when the
	// body was first read; the peer gets the body at once.
	out.Header.Del("Expect")
	// A request's trailer fields are dropped, as on the data path and as
	// nginx does (see proxy's untrailed).
	out.Trailer = nil
	h.setForwarded(out.Header, in)
}

// forwardedFields are the fields whose trust setForwarded decides.
var forwardedFields = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Real-Ip", "True-Client-Ip"}

// setForwarded writes the forwarded fields of out by the trust model of
// httpwire.AppendRequest, which the data path uses, from the fields of in
// (a Connection field naming them has no say), and drops names holding
// "_", as nginx does by default: WSGI and CGI servers read X_Forwarded_For
// as X-Forwarded-For.
func (h *Handler) setForwarded(out http.Header, in *http.Request) {
	for k := range out {
		if strings.IndexByte(k, '_') >= 0 {
			delete(out, k)
		}
	}
	for _, k := range forwardedFields {
		delete(out, k)
	}
	var client netip.Addr
	if ap, err := netip.ParseAddrPort(in.RemoteAddr); err == nil {
		client = ap.Addr().Unmap()
	}
	trusted := client.IsValid() && httpwire.Trusts(h.cfg.TrustedProxies, client)
	if trusted {
		for _, k := range forwardedFields[1:] {
			if vs := in.Header[k]; len(vs) > 0 {
				out[k] = append([]string(nil), vs...)
			}
		}
	}
	if client.IsValid() {
		xff := client.String()
		if prior := in.Header.Values("X-Forwarded-For"); trusted && len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + xff
		}
		out.Set("X-Forwarded-For", xff)
		realIP := client
		if trusted {
			realIP = httpwire.RealIP([]byte(xff), h.cfg.TrustedProxies)
		}
		out.Set("X-Real-Ip", realIP.String())
	}
	if !trusted || len(out["X-Forwarded-Host"]) == 0 {
		out.Set("X-Forwarded-Host", in.Host)
	}
	if !trusted || len(out["X-Forwarded-Proto"]) == 0 {
		if in.TLS != nil {
			out.Set("X-Forwarded-Proto", "https")
		} else {
			out.Set("X-Forwarded-Proto", "http")
		}
	}
}

func stripPrefix(path, prefix string) string {
	rest := strings.TrimPrefix(path, strings.TrimSuffix(prefix, "/"))
	if rest == "" || rest[0] != '/' {
		rest = "/" + rest
	}
	return rest
}

func (h *Handler) modifyResponse(res *http.Response) error {
	a := attemptOf(res.Request)
	a.answered = res.StatusCode
	if h.cfg.retryStatus(res.StatusCode) {
		a.status = res.StatusCode // a failure for passive health either way
		if a.swallowStatus {
			res.Body.Close()
			return errRetryStatus
		}
	}
	a.wrote = true
	return nil
}

// roundTrip sends the request over the peer's own transport, kept as the
// peer's lb attachment: it lives as long as the peer's state, across table
// updates, and ClosePeer closes its idle connections when the peer leaves.
// A balancer therefore serves one engine, as the data path keeps its own
// connections there.
func (h *Handler) roundTrip(r *http.Request) (*http.Response, error) {
	p := attemptOf(r).peer
	tr := p.AttachOnce(func() any { return h.newTransport(p) }).(*http.Transport)
	return tr.RoundTrip(r)
}

// ClosePeer closes the idle connections of a peer that left the table; it
// is the lb.OnRemove hook of a balancer the reference engine serves.
func ClosePeer(attachment any) {
	if tr, ok := attachment.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// maxIdlePerPeer bounds the idle connections kept to one peer.
const maxIdlePerPeer = 1024

func (h *Handler) newTransport(p *lb.Peer) *http.Transport {
	d := h.cfg.Dialer
	network, addr := p.Network, p.Addr
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   maxIdlePerPeer,
		IdleConnTimeout:       h.cfg.UpstreamIdle,
		ResponseHeaderTimeout: h.cfg.ResponseHeaderTimeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ExpectContinueTimeout: time.Second,
	}
}

// debugWriter sends ReverseProxy's own messages (a peer that broke off a
// response, a client that went away) to the debug log.
type debugWriter struct{ log *zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
