package admin

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharflb/wharf/acme"
	"github.com/wharflb/wharf/lb"
)

// The dashboard is one HTML page with its CSS and JavaScript inline, so the
// binary carries it whole: no build step, nothing fetched from elsewhere.
// The page reads the same document as /api/services from the event stream
// at /api/events and computes shares and rates itself from the counters.

//go:embed dashboard/index.html
var dashboardHTML []byte

// dashboardPage serves the embedded page with a Content-Security-Policy
// that allows exactly its own inline style and script (by hash), requests
// to its own origin, and nothing else.
type dashboardPage struct {
	csp  string
	etag string
}

func newDashboardPage() *dashboardPage {
	return &dashboardPage{
		csp: "default-src 'none'; " +
			"style-src " + inlineHashes(dashboardHTML, "style") + "; " +
			"script-src " + inlineHashes(dashboardHTML, "script") + "; " +
			"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		etag: fmt.Sprintf(`"%x"`, sha256.Sum256(dashboardHTML)),
	}
}

// inlineHashes returns the CSP source list ('sha256-…' …) of the inline
// <tag> elements of page.
func inlineHashes(page []byte, tag string) string {
	re := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`)
	var out []byte
	for _, m := range re.FindAllSubmatch(page, -1) {
		sum := sha256.Sum256(m[1])
		if len(out) > 0 {
			out = append(out, ' ')
		}
		out = fmt.Appendf(out, "'sha256-%s'", base64.StdEncoding.EncodeToString(sum[:]))
	}
	if out == nil {
		return "'none'"
	}
	return string(out)
}

func (d *dashboardPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", d.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", d.etag)
	if r.Header.Get("If-None-Match") == d.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(dashboardHTML)
}

// Defaults of an eventStream.
const (
	eventInterval   = 500 * time.Millisecond
	eventKeepAlive  = 15 * time.Second
	eventWriteLimit = 10 * time.Second
	eventMaxStreams = 64
	// eventMaxPerClient leaves streams for others when one client address
	// opens many: a dashboard needs one per open tab.
	eventMaxPerClient = 8
)

// eventStream serves /api/events: the /api/services document as
// server-sent events. A stream sends the document at once, then looks
// every interval and sends it again when it changed; when nothing changed
// for keepAlive it sends a comment, so that idle intermediaries keep the
// connection and a vanished client is noticed.
//
// It costs one goroutine per stream (the handler's own) and no goroutine
// otherwise. Streams share the encoded document: it is built at most once
// per half interval, however many browsers watch. A stream ends when its
// client goes away (the request's context is done) or when a write does not
// complete within writeLimit; at most maxStreams run at once, and at most
// maxPerClient from one client address; further ones are answered 503.
//
// Safe for concurrent use.
type eventStream struct {
	bal          *lb.Balancer
	interval     time.Duration
	keepAlive    time.Duration
	writeLimit   time.Duration
	maxStreams   int64
	maxPerClient int

	streams atomic.Int64 // running streams

	clientsMu sync.Mutex
	clients   map[string]int // running streams by client address

	mu    sync.Mutex
	doc   []byte    // the encoded document; never modified once built
	built time.Time // when doc was built
	table *lb.Table // the table doc was built from

	certs func() []acme.HostStatus // set before serving; nil without automatic HTTPS
}

func newEventStream(bal *lb.Balancer) *eventStream {
	return &eventStream{bal: bal, interval: eventInterval, keepAlive: eventKeepAlive,
		writeLimit: eventWriteLimit, maxStreams: eventMaxStreams, maxPerClient: eventMaxPerClient,
		clients: map[string]int{}}
}

// document returns the current /api/services document, encoded on one
// line. The result is shared: callers must not modify it.
func (e *eventStream) document() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	now, table := time.Now(), e.bal.Table()
	if e.doc != nil && table == e.table && now.Sub(e.built) < e.interval/2 {
		return e.doc
	}
	doc, err := json.Marshal(document(e.bal, e.certs))
	if err != nil { // cannot happen: the document is plain data
		doc = []byte(`{"services":[]}`)
	}
	e.doc, e.built, e.table = doc, now, table
	return doc
}

// admit counts a new stream from client, or reports why it may not start.
func (e *eventStream) admit(client string) (ok bool, why string) {
	e.clientsMu.Lock()
	defer e.clientsMu.Unlock()
	if e.clients[client] >= e.maxPerClient {
		return false, fmt.Sprintf("too many event streams from %s (at most %d)", client, e.maxPerClient)
	}
	if e.streams.Add(1) > e.maxStreams {
		e.streams.Add(-1)
		return false, "too many event streams"
	}
	e.clients[client]++
	return true, ""
}

func (e *eventStream) release(client string) {
	e.clientsMu.Lock()
	defer e.clientsMu.Unlock()
	if e.clients[client]--; e.clients[client] <= 0 {
		delete(e.clients, client)
	}
	e.streams.Add(-1)
}

func (e *eventStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	if ok, why := e.admit(client); !ok {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, why)
		return
	}
	defer e.release(client)

	rc := http.NewResponseController(w)
	// The deadline bounds each write; clear it for whatever the
	// connection serves next.
	defer rc.SetWriteDeadline(time.Time{})
	send := func(parts ...[]byte) error {
		rc.SetWriteDeadline(time.Now().Add(e.writeLimit)) // not supported by every writer: then unbounded
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return rc.Flush()
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx in front: do not buffer
	w.WriteHeader(http.StatusOK)

	last := e.document()
	if send([]byte("retry: 2000\ndata: "), last, []byte("\n\n")) != nil {
		return
	}
	tick := time.NewTicker(e.interval)
	defer tick.Stop()
	quiet := time.Duration(0)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
		doc := e.document()
		var err error
		switch {
		case !bytes.Equal(doc, last):
			last, quiet = doc, 0
			err = send([]byte("data: "), doc, []byte("\n\n"))
		case quiet+e.interval >= e.keepAlive:
			quiet = 0
			err = send([]byte(": keep-alive\n\n"))
		default:
			quiet += e.interval
		}
		if err != nil {
			return
		}
	}
}
