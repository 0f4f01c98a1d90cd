package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func sample(t *testing.T, s *Server, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	return rec
}

// action=sample answers a JSON document of exactly the size asked, the
// same on every server, that compresses as API answers do.
func TestSample(t *testing.T) {
	a, b := NewServer("web1"), NewServer("web2")
	for _, tt := range []struct {
		query string
		size  int
	}{{"", DefaultSampleSize}, {"&size=10240", 10240}, {"&size=" + strconv.Itoa(minSampleSize), minSampleSize},
		{"&size=100", 100}, {"&size=12345", 12345}, {"&size=1048576", MaxSampleSize}} {
		rec := sample(t, a, "/webtest?action=sample"+tt.query)
		body := rec.Body.Bytes()
		if rec.Code != 200 || len(body) != tt.size || rec.Header().Get("Content-Length") != strconv.Itoa(tt.size) {
			t.Fatalf("%q: status %d, %d bytes, Content-Length %q; want 200 and %d", tt.query, rec.Code, len(body), rec.Header().Get("Content-Length"), tt.size)
		}
		if rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%q: Content-Type %q", tt.query, rec.Header().Get("Content-Type"))
		}
		var doc struct {
			IsSuccess bool
			Data      []struct {
				ID    int    `json:"id"`
				SKU   string `json:"sku"`
				Price int    `json:"price"`
			}
		}
		if err := json.Unmarshal(body, &doc); err != nil || !doc.IsSuccess {
			t.Fatalf("%q: not the document: %v", tt.query, err)
		}
		if tt.size >= 1000 && len(doc.Data) < tt.size/200 {
			t.Errorf("%q: %d items in %d bytes: mostly padding", tt.query, len(doc.Data), tt.size)
		}
		if other := sample(t, b, "/webtest?action=sample"+tt.query).Body.Bytes(); !bytes.Equal(other, body) {
			t.Errorf("%q: another server answers another document", tt.query)
		}
	}
	// About what gzip level 1 makes of JSON API answers: neither text
	// that shrinks to nothing nor noise.
	body := sample(t, a, "/webtest?action=sample&size=10240").Body.Bytes()
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, 1)
	zw.Write(body)
	zw.Close()
	if r := float64(len(body)) / float64(z.Len()); r < 2 || r > 10 {
		t.Errorf("10 KiB sample compresses %.1f times at level 1", r)
	} else {
		t.Logf("10 KiB sample: %d bytes at gzip level 1 (%.1f times smaller)", z.Len(), r)
	}
	for _, bad := range []string{"0", "-1", "20", "1048577", "10k"} {
		if rec := sample(t, a, "/webtest?action=sample&size="+bad); rec.Code != http.StatusBadRequest ||
			!bytes.Contains(rec.Body.Bytes(), []byte("bad size")) {
			t.Errorf("size=%s: status %d, %s", bad, rec.Code, rec.Body.Bytes())
		}
	}
}
