// Package testutil holds what wharf's tests share: a capture of zerolog's
// JSON log lines, a bounded wait for state that gives no signal, free
// loopback addresses and a real HTTP backend that names itself.
//
// It imports no other package of wharf, so that any package's tests may
// use it.
package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// LogBuffer collects JSON log lines, as zerolog writes them. It is safe
// for concurrent use: the code under test writes while the test reads.
type LogBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced at every write
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written != nil {
		close(l.written)
		l.written = nil
	}
	return l.buf.Write(p)
}

// writes returns a channel closed at the next write.
func (l *LogBuffer) writes() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written == nil {
		l.written = make(chan struct{})
	}
	return l.written
}

// Wait waits until the log holds n lines at level ("" for any) that
// contain every one of words, and returns them; it fails t, showing the
// log, when timeout passes first. It wakes at each write, not on a timer.
func (l *LogBuffer) Wait(t testing.TB, n int, timeout time.Duration, level string, words ...string) []LogLine {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		written := l.writes()
		if ls := l.Lines(level, words...); len(ls) >= n {
			return ls
		}
		select {
		case <-written:
		case <-deadline.C:
			t.Fatalf("%d %s lines with %q after %s, want %d; log:\n%s",
				len(l.Lines(level, words...)), level, words, timeout, n, l.String())
		}
	}
}

// Until reports whether cond held within timeout, checking it at once and
// again after each write. It is for state of the code under test whose
// every change is followed by a log line (wharf logs each peer that joins
// or leaves its table): the write is the signal, not a timer.
func (l *LogBuffer) Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		written := l.writes()
		if cond() {
			return true
		}
		select {
		case <-written:
		case <-deadline.C:
			return cond()
		}
	}
}

// LogLine is one decoded log line.
type LogLine struct {
	Level   string         `json:"level"`
	Message string         `json:"message"`
	Fields  map[string]any `json:"-"` // every field of the line
	Raw     string         `json:"-"` // the line as written
}

// Lines returns the lines at level ("" for any) whose text contains every
// one of words. Lines that are not JSON are skipped.
func (l *LogBuffer) Lines(level string, words ...string) []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LogLine
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec LogLine
		if json.Unmarshal(sc.Bytes(), &rec) != nil || (level != "" && rec.Level != level) {
			continue
		}
		rec.Raw = sc.Text()
		if !containsAll(rec.Raw, words) {
			continue
		}
		json.Unmarshal(sc.Bytes(), &rec.Fields)
		out = append(out, rec)
	}
	return out
}

func containsAll(s string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Raws joins the lines as written, one per line, for a failure message.
func Raws(ls []LogLine) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Eventually polls cond until it holds, and fails the test with what when
// timeout passes first. It is for state owned by something outside the
// test that offers no signal to wait on (the Docker engine, a container, a
// server seen only over the network); wharf's own state is awaited on the
// signals it gives (a publish callback, a channel, a fake clock). The poll
// starts at once and backs off from 1 ms to 50 ms.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("after %s: %s", timeout, what)
	}
}

// Poll is Eventually without a test: it reports whether cond held within
// timeout.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait) // polling state that gives no signal, see Eventually
	}
}

// FreeAddr returns a 127.0.0.1 address where nothing listens: the port
// was free when it was chosen. A dial to it is refused, which makes it
// the failing peer of a test (an invented address is not: the machine
// may answer for it).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Backend is a real HTTP server on 127.0.0.1 that answers its name and
// counts the requests it got.
type Backend struct {
	*httptest.Server
	Name string
	Hits atomic.Int64
}

// NewBackend starts a Backend, closed when the test ends. With h nil it
// reads the request body and answers its name; otherwise h answers.
func NewBackend(t testing.TB, name string, h http.HandlerFunc) *Backend {
	t.Helper()
	b := &Backend{Name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.Hits.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(b.Close)
	return b
}

// Addr is the backend's HOST:PORT.
func (b *Backend) Addr() string { return strings.TrimPrefix(b.URL, "http://") }
