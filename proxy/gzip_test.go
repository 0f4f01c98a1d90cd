package proxy

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/wharflb/wharf/lb"
)

func TestGzip(t *testing.T) {
	big := strings.Repeat(`{"IsSuccess": true, "Data": "0f8fad5b-d9cb-469f-a165-70867728950e"}`, 20)
	peer := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, big)
		case "/small":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		case "/png":
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, big)
		case "/encoded":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Encoding", "br")
			io.WriteString(w, big)
		}
	})
	bal := lb.New()
	bal.Update("test", []lb.Backend{peer.backend(1)})
	h, err := Gzip(NewHandler(bal, Config{}), DefaultGzipTypes)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	tests := []struct {
		path, accept string
		gzipped      bool
		vary         bool
	}{
		{"/json", "gzip, deflate", true, true},
		{"/json", "", false, true},
		{"/small", "gzip", false, true},
		{"/png", "gzip", false, false},
		{"/encoded", "gzip", false, false},
		{"/json", "br, zstd, gzip", true, true}, // gzip, the one coding wharf speaks
	}
	for _, tt := range tests {
		t.Run(tt.path+"/"+tt.accept, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
			if tt.accept != "" {
				req.Header.Set("Accept-Encoding", tt.accept)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			enc := res.Header.Get("Content-Encoding")
			if (enc == "gzip") != tt.gzipped {
				t.Fatalf("Content-Encoding %q, want gzip=%v", enc, tt.gzipped)
			}
			if got := strings.Contains(res.Header.Get("Vary"), "Accept-Encoding"); tt.vary && !got {
				t.Errorf("Vary %q, want Accept-Encoding=%v", res.Header.Get("Vary"), tt.vary)
			}
			if tt.gzipped {
				zr, err := gzip.NewReader(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(zr)
				if string(b) != big {
					t.Fatalf("decompressed body differs (%d bytes)", len(b))
				}
			}
		})
	}
	t.Run("curl --compressed", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("curl not installed")
		}
		out, err := exec.Command(curl, "-sS", "--compressed", "-D", "-", srv.URL+"/json").Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.ToLower(string(out)), "content-encoding: gzip") || !strings.HasSuffix(string(out), big) {
			t.Fatalf("curl got:\n%.300s", out)
		}
	})
}
