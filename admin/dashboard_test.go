package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
)

func testBalancer(names ...string) *lb.Balancer {
	bal := lb.New()
	bal.Update("test", backends(names...))
	return bal
}

func backends(names ...string) []lb.Backend {
	var out []lb.Backend
	for i, n := range names {
		addr := fmt.Sprintf("172.18.0.%d:6969", i+2)
		out = append(out, lb.Backend{ID: n, Name: n, Network: "tcp", Addr: addr, Weight: 1, MaxFails: 1, FailTimeout: time.Second})
	}
	return out
}

func TestDashboardPage(t *testing.T) {
	s := New(testBalancer("webtest001"), func() bool { return true }, Access{})
	get := func(path string, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "http://localhost:8080"+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}

	rec := get("/")
	if rec.Code != 200 {
		t.Fatalf("GET /: %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if !bytes.Equal(rec.Body.Bytes(), dashboardHTML) {
		t.Errorf("body is not the embedded page")
	}
	page := rec.Body.String()
	if !strings.Contains(page, "<title>wharf</title>") || !strings.Contains(page, `new EventSource("api/events")`) {
		t.Errorf("page lacks its title or its event source")
	}

	t.Run("nothing external", func(t *testing.T) {
		for _, re := range []string{`\bsrc=`, `<link\b`, `@import`, `url\(`, `https?://`} {
			if m := regexp.MustCompile(re).FindString(page); m != "" {
				t.Errorf("page refers to something outside it: %q", m)
			}
		}
	})

	t.Run("CSP allows exactly the inline style and script", func(t *testing.T) {
		csp := rec.Header().Get("Content-Security-Policy")
		for _, tag := range []string{"style", "script"} {
			blocks := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(page, -1)
			if len(blocks) != 1 {
				t.Fatalf("%d <%s> blocks, want 1", len(blocks), tag)
			}
			sum := sha256.Sum256([]byte(blocks[0][1]))
			want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "';"
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("CSP %q allows unsafe sources", csp)
		}
	})

	t.Run("conditional GET", func(t *testing.T) {
		if rec := get("/", "If-None-Match", rec.Header().Get("ETag")); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("If-None-Match: %d with %d bytes, want 304 and none", rec.Code, rec.Body.Len())
		}
	})

	t.Run("other paths are not the page", func(t *testing.T) {
		if rec := get("/index.html"); rec.Code != http.StatusNotFound {
			t.Errorf("GET /index.html: %d, want 404", rec.Code)
		}
	})
}

// sseReader reads a server-sent event stream.
type sseReader struct{ r *bufio.Reader }

// next returns the next event's data, or the text of a comment.
func (s sseReader) next(t *testing.T) (data, comment string) {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data != "" || comment != "" {
				return data, comment
			}
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		case strings.HasPrefix(line, ": "):
			comment = strings.TrimPrefix(line, ": ")
		case strings.HasPrefix(line, "retry: "):
		default:
			t.Fatalf("unexpected line %q", line)
		}
	}
}

// openStream starts a stream; cancel ends it from the client's side.
func openStream(t *testing.T, client *http.Client, url string) (sseReader, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("GET %s: %s %q", url, res.Status, res.Header.Get("Content-Type"))
	}
	return sseReader{bufio.NewReader(res.Body)}, func() { cancel(); res.Body.Close() }
}

func peerNames(t *testing.T, data string) []string {
	t.Helper()
	var doc struct{ Services []Service }
	if err := json.Unmarshal([]byte(data), &doc); err != nil {
		t.Fatalf("event data %q: %v", data, err)
	}
	var names []string
	for _, s := range doc.Services {
		for _, p := range s.Peers {
			names = append(names, p.Container)
		}
	}
	return names
}

func TestEventsRoute(t *testing.T) {
	srv := httptest.NewServer(New(testBalancer("webtest001"), func() bool { return true }, Access{}))
	defer srv.Close()
	ev, stop := openStream(t, srv.Client(), srv.URL+"/api/events")
	defer stop()
	data, _ := ev.next(t)
	if got := peerNames(t, data); fmt.Sprint(got) != "[webtest001]" {
		t.Fatalf("first event names %v, want [webtest001]", got)
	}
}

func TestEventsSendChanges(t *testing.T) {
	bal := testBalancer("webtest001", "webtest002")
	es := newEventStream(bal)
	es.interval, es.keepAlive = 2*time.Millisecond, 20*time.Millisecond
	srv := httptest.NewServer(es)
	defer srv.Close()
	ev, stop := openStream(t, srv.Client(), srv.URL)
	defer stop()

	data, _ := ev.next(t)
	if got := peerNames(t, data); fmt.Sprint(got) != "[webtest001 webtest002]" {
		t.Fatalf("first event names %v", got)
	}

	// A new table is sent at the next look.
	bal.Update("test", backends("webtest001", "webtest003"))
	data, comment := ev.next(t)
	if got := peerNames(t, data); fmt.Sprint(got) != "[webtest001 webtest003]" {
		t.Fatalf("after the update: names %v (comment %q), want [webtest001 webtest003]", got, comment)
	}

	// Counters are sent too.
	p := bal.Table().Pool(lb.DefaultService).Peers()[0]
	p.Begin()
	data, _ = ev.next(t)
	if !strings.Contains(data, `"in_flight":1`) {
		t.Fatalf("after Begin: %s", data)
	}
	p.End(false, bal.Now())
	if data, _ = ev.next(t); !strings.Contains(data, `"in_flight":0`) {
		t.Fatalf("after End: %s", data)
	}

	// Nothing changed: a keep-alive comment, not the same document again.
	if data, comment := ev.next(t); data != "" || comment != "keep-alive" {
		t.Fatalf("with nothing changed: data %q comment %q, want only a keep-alive", data, comment)
	}
}

// TestEventsEndWithTheClient opens streams, drops the clients, and checks
// that every handler goroutine ends.
func TestEventsEndWithTheClient(t *testing.T) {
	es := newEventStream(testBalancer("webtest001"))
	es.interval = 2 * time.Millisecond
	es.maxPerClient = 64 // every stream comes from 127.0.0.1
	srv := httptest.NewServer(es)
	defer srv.Close()
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	before := runtime.NumGoroutine()

	const n = 20
	var stops []context.CancelFunc
	for i := 0; i < n; i++ {
		ev, stop := openStream(t, client, srv.URL)
		ev.next(t)
		stops = append(stops, stop)
	}
	if got := es.streams.Load(); got != n {
		t.Fatalf("%d streams running, want %d", got, n)
	}
	for _, stop := range stops {
		stop()
	}
	tr.CloseIdleConnections()
	testutil.Eventually(t, 5*time.Second, "streams still running", func() bool { return es.streams.Load() == 0 })
	testutil.Eventually(t, 5*time.Second, "goroutines left behind", func() bool { return runtime.NumGoroutine() <= before })
}

// TestEventsStalledClient checks that a client that stops reading does not
// hold a stream for longer than the write limit.
func TestEventsStalledClient(t *testing.T) {
	// A large document that changes at every look fills the socket buffers.
	var names []string
	for i := 0; i < 2000; i++ {
		names = append(names, fmt.Sprintf("webtest-with-a-rather-long-container-name-%04d", i))
	}
	bal := testBalancer(names...)
	peer := bal.Table().Pool(lb.DefaultService).Peers()[0]
	es := newEventStream(bal)
	es.interval, es.writeLimit = time.Millisecond, 50*time.Millisecond
	// The handler says when the stream starts and when it has ended.
	started, ended := make(chan struct{}, 1), make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		es.ServeHTTP(w, r)
		ended <- struct{}{}
	}))
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: wharf\r\n\r\n") // and never read
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("stream not started")
	}
	// Change the document as often as the stream can look, until the
	// stream gives up on the client.
	deadline := time.After(10 * time.Second)
	for stalled := false; !stalled; {
		select {
		case <-ended:
			stalled = true
		case <-deadline:
			t.Fatal("the stream of a client that does not read still runs after 10s")
		default:
			peer.Begin()
			peer.End(false, bal.Now())
			runtime.Gosched()
		}
	}
	if n := es.streams.Load(); n != 0 {
		t.Fatalf("%d streams counted after the only one ended", n)
	}
}

func TestEventsLimit(t *testing.T) {
	es := newEventStream(testBalancer("webtest001"))
	es.maxStreams = 1
	srv := httptest.NewServer(es)
	defer srv.Close()
	ev, stop := openStream(t, srv.Client(), srv.URL)
	defer stop()
	ev.next(t)
	res, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("stream over the limit: %s, Retry-After %q; want 503 with Retry-After", res.Status, res.Header.Get("Retry-After"))
	}
}

// TestEventsShareTheDocument checks that streams watching the same table
// share one encoded document instead of building one each.
func TestEventsShareTheDocument(t *testing.T) {
	es := newEventStream(testBalancer("webtest001"))
	a, b := es.document(), es.document()
	if &a[0] != &b[0] {
		t.Fatalf("two looks within half an interval built two documents")
	}
}
