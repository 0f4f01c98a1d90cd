package admin

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wharflb/wharf/acme"
	"github.com/wharflb/wharf/lb"
)

func get(t *testing.T, s *Server, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost"+path, nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, rec.Code, body)
	}
	return string(body)
}

// The certificates' status shows in /api/services and /metrics; without
// automatic HTTPS neither mentions certificates.
func TestCertificates(t *testing.T) {
	expiry := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	tried := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	list := func() []acme.HostStatus {
		return []acme.HostStatus{
			{Host: "a.test", Issuer: "Test CA", NotAfter: expiry, LastAttempt: tried},
			{Host: "b.test", LastAttempt: tried, LastError: "the CA refused b.test"},
		}
	}
	bal := lb.New()
	plain := New(bal, func() bool { return true }, Access{})
	plain.EnableMetrics(Sources{})
	if body := get(t, plain, "/api/services"); strings.Contains(body, "certificates") {
		t.Errorf("/api/services without automatic HTTPS mentions certificates: %s", body)
	}
	if body := get(t, plain, "/metrics"); strings.Contains(body, "wharf_certificate") {
		t.Errorf("/metrics without automatic HTTPS has certificate series")
	}

	s := New(bal, func() bool { return true }, Access{})
	s.EnableMetrics(Sources{})
	s.ShowCertificates(list)
	var doc struct {
		Certificates []map[string]any `json:"certificates"`
	}
	body := get(t, s, "/api/services")
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"host": "a.test", "issuer": "Test CA", "not_after": "2027-03-01T12:00:00Z", "last_attempt": "2026-12-01T03:00:00Z", "last_error": ""},
		{"host": "b.test", "issuer": "", "not_after": nil, "last_attempt": "2026-12-01T03:00:00Z", "last_error": "the CA refused b.test"},
	}
	if got, _ := json.Marshal(doc.Certificates); string(got) != mustJSON(want) {
		t.Errorf("/api/services certificates\n%s\nwant\n%s", got, mustJSON(want))
	}
	if ev := string(s.events.document()); !strings.Contains(ev, `"certificates":[{"host":"a.test"`) {
		t.Errorf("/api/events document has no certificates: %s", ev)
	}
	metrics := get(t, s, "/metrics")
	if want := "wharf_certificate_expiry_seconds{host=\"a.test\"} 1.8039024e+09\n"; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if strings.Contains(metrics, `host="b.test"`) {
		t.Errorf("/metrics has an expiry for b.test, which has no certificate")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
