package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// TimeLayout is the layout of RequestTime and ResponseTime: Python's
// "%Y-%m-%d %H:%M:%S.%f" cut to milliseconds, as the original server wrote it.
const TimeLayout = "2006-01-02 15:04:05.000"

// MaxDelay bounds the delay query parameter.
const MaxDelay = 30 * time.Second

// uuidResult is the answer to action=get_uuid. The field order is the key
// order on the wire.
type uuidResult struct {
	IsSuccess    bool   `json:"IsSuccess"`
	Data         string `json:"Data"`
	RequestTime  string `json:"RequestTime"`
	ResponseTime string `json:"ResponseTime"`
	Server       string `json:"Server"`
}

// failure is the answer to an unknown or missing action and to a bad
// request. Server is included so that every JSON answer names its backend.
type failure struct {
	IsSuccess bool   `json:"IsSuccess"`
	Message   string `json:"Message"`
	Server    string `json:"Server"`
}

// Server is the webtest HTTP handler. Its zero value is not usable; create
// one with NewServer. It is safe for concurrent use.
type Server struct {
	name    string
	now     func() time.Time
	sleep   func(r *http.Request, d time.Duration)
	newUUID func() (string, error)
	failing atomic.Bool
	mux     *http.ServeMux
	record  *recorder                 // nil unless Record was called
	sample  atomic.Pointer[sampleDoc] // the last action=sample answer
}

// NewServer returns a handler whose answers carry name in their Server field.
func NewServer(name string) *Server {
	s := &Server{
		name:    name,
		now:     time.Now,
		sleep:   sleepCtx,
		newUUID: newUUID4,
		mux:     http.NewServeMux(),
	}
	s.mux.HandleFunc("/webtest", s.serveWebtest)
	s.mux.HandleFunc("/healthz", s.serveHealthz)
	s.mux.HandleFunc("GET /blob", serveBlob)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// setHeaders writes the headers the original server put on every answer.
func setHeaders(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
	h.Set("Content-Type", "application/json")
}

// serveWebtest answers /webtest: GET and POST with an action, OPTIONS with
// an empty 200. The optional delay parameter (a Go duration, 0 to MaxDelay)
// holds the answer back; RequestTime is taken before the delay.
func (s *Server) serveWebtest(w http.ResponseWriter, r *http.Request) {
	setHeaders(w.Header())
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodGet, http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		s.writeJSON(w, http.StatusMethodNotAllowed, failure{Message: "method not allowed", Server: s.name})
		return
	}

	if s.record != nil {
		if id := r.URL.Query().Get("id"); id != "" {
			if err := s.record.add(id); err != nil {
				s.writeJSON(w, http.StatusInternalServerError, failure{Message: "record: " + err.Error(), Server: s.name})
				return
			}
		}
	}
	start := s.now()
	if v := r.FormValue("delay"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxDelay {
			msg := fmt.Sprintf("bad delay %q: want a duration from 0s to %s", v, MaxDelay)
			s.writeJSON(w, http.StatusBadRequest, failure{Message: msg, Server: s.name})
			return
		}
		if d > 0 {
			s.sleep(r, d)
		}
	}

	if r.FormValue("action") == "sample" {
		s.serveSample(w, r)
		return
	}
	if r.FormValue("action") != "get_uuid" {
		s.writeJSON(w, http.StatusOK, failure{Message: "action not found", Server: s.name})
		return
	}
	id, err := s.newUUID()
	if err != nil {
		s.writeJSON(w, http.StatusInternalServerError, failure{Message: "uuid: " + err.Error(), Server: s.name})
		return
	}
	s.writeJSON(w, http.StatusOK, uuidResult{
		IsSuccess:    true,
		Data:         id,
		RequestTime:  start.Format(TimeLayout),
		ResponseTime: s.now().Format(TimeLayout),
		Server:       s.name,
	})
}

// MaxBlob bounds the bytes parameter of /blob.
const MaxBlob = 64 << 20

// blobChunk is what /blob answers are made of.
var blobChunk = make([]byte, 64<<10)

// serveBlob answers GET /blob?bytes=N with N zero bytes and their
// Content-Length: a large answer for load tests, for clients that read it
// slowly or not at all.
func serveBlob(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.FormValue("bytes"))
	if err != nil || n < 0 || n > MaxBlob {
		http.Error(w, fmt.Sprintf("bytes must be a whole number from 0 to %d", MaxBlob), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(n))
	for n > 0 {
		k, err := w.Write(blobChunk[:min(n, len(blobChunk))])
		if err != nil {
			return
		}
		n -= k
	}
}

// serveHealthz answers GET /healthz with 200 "ok", or 503 "failing" while
// failure is switched on. POST /healthz?fail=1 switches failure on,
// POST /healthz?fail=0 switches it off.
func (s *Server) serveHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		switch r.FormValue("fail") {
		case "1":
			s.failing.Store(true)
		case "0":
			s.failing.Store(false)
		default:
			http.Error(w, "fail must be 0 or 1", http.StatusBadRequest)
			return
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if s.failing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "failing")
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// The answer types hold only strings and booleans.
		panic(err)
	}
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// sleepCtx waits for d or until the client goes away.
func sleepCtx(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// newUUID4 returns a random (version 4, RFC 9562) UUID in its canonical
// lower-case form.
func newUUID4() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", err
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:]), nil
}

// Record makes s note the id query parameter of every GET or POST /webtest
// request that has one, as a line appended to the file at path, when the
// request arrives (before any delay, before the answer), and serve the
// lines at GET /received. The file is created if needed and kept across
// restarts, so a balancer test can tell which requests reached this server,
// also when it was killed in the middle of one and started again. It must
// be called before s serves requests.
func (s *Server) Record(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	s.record = &recorder{path: path, f: f}
	s.mux.HandleFunc("/received", s.serveReceived)
	return nil
}

// recorder appends ids to a file, one per line. Each id goes out in one
// write of its own, so a process killed at any moment leaves whole lines.
type recorder struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (rc *recorder) add(id string) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	_, err := rc.f.WriteString(id + "\n")
	return err
}

// serveReceived answers GET /received with the recorded ids, one per line,
// oldest first.
func (s *Server) serveReceived(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.record.mu.Lock()
	b, err := os.ReadFile(s.record.path)
	s.record.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(b)
}
