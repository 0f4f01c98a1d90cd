package reference

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
)

func peerBackend(b *testutil.Backend) lb.Backend {
	return lb.Backend{ID: b.Name, Name: b.Name, Network: "tcp", Addr: b.Addr(), Weight: 1,
		MaxFails: 1, FailTimeout: 10 * time.Second}
}

// The wrapper compresses by its types, text/html always, and refuses a
// level outside 1 to 9 or an empty type.
func TestGzipReference(t *testing.T) {
	big := strings.Repeat(`{"a":1}`, 100)
	peer := testutil.NewBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", strings.TrimPrefix(r.URL.Path, "/type/"))
		io.WriteString(w, big)
	})
	bal := lb.New()
	bal.Update("test", []lb.Backend{peerBackend(peer)})
	if _, err := Gzip(New(bal, Config{}), nil, 10); err == nil {
		t.Fatal("level 10 accepted")
	}
	if _, err := Gzip(New(bal, Config{}), []string{" "}, 1); err == nil {
		t.Fatal("an empty type accepted")
	}
	h, err := Gzip(New(bal, Config{}), []string{"application/json"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	// The client leaves answers as they come.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, tt := range []struct {
		ct      string
		gzipped bool
	}{{"application/json", true}, {"application/JSON; charset=utf-8", true}, {"text/html", true}, {"image/png", false}} {
		req, _ := http.NewRequest("GET", srv.URL+"/type/"+tt.ct, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("%s: reading body: %v", tt.ct, err)
		}
		if (res.Header.Get("Content-Encoding") == "gzip") != tt.gzipped {
			t.Errorf("%s: Content-Encoding %q", tt.ct, res.Header.Get("Content-Encoding"))
			continue
		}
		if tt.gzipped {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s: not gzip: %v", tt.ct, err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatalf("%s: gunzip: %v", tt.ct, err)
			}
		}
		if string(b) != big {
			t.Errorf("%s: body differs", tt.ct)
		}
	}
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
