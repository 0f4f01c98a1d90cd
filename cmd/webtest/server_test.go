package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

var corsHeaders = map[string]string{
	"Access-Control-Allow-Origin":  "*",
	"Access-Control-Allow-Headers": "Content-Type",
	"Access-Control-Allow-Methods": "POST, GET, OPTIONS",
	"Content-Type":                 "application/json",
}

// fixedServer returns a Server with a clock that advances 1 ms per reading,
// a constant UUID, and a sleep that only records what it was asked.
func fixedServer(slept *[]time.Duration) *Server {
	s := NewServer("web1")
	t := time.Date(2026, 11, 24, 18, 0, 0, 123_000_000, time.UTC)
	s.now = func() time.Time {
		now := t
		t = t.Add(time.Millisecond)
		return now
	}
	s.newUUID = func() (string, error) { return "0f8fad5b-d9cb-469f-a165-70867728950e", nil }
	s.sleep = func(_ *http.Request, d time.Duration) { *slept = append(*slept, d) }
	return s
}

func TestWebtest(t *testing.T) {
	const (
		okBody       = `{"IsSuccess":true,"Data":"0f8fad5b-d9cb-469f-a165-70867728950e","RequestTime":"2026-11-24 18:00:00.123","ResponseTime":"2026-11-24 18:00:00.124","Server":"web1"}` + "\n"
		notFoundBody = `{"IsSuccess":false,"Message":"action not found","Server":"web1"}` + "\n"
	)
	form := func(v string) io.Reader { return strings.NewReader(v) }
	tests := []struct {
		name     string
		method   string
		target   string
		body     io.Reader // sent as application/x-www-form-urlencoded
		wantCode int
		wantBody string // exact, unless wantRE is set
		wantRE   string
		wantWait []time.Duration
	}{
		{name: "get", method: "GET", target: "/webtest?action=get_uuid", wantCode: 200, wantBody: okBody},
		{name: "post query", method: "POST", target: "/webtest?action=get_uuid", wantCode: 200, wantBody: okBody},
		{name: "post form", method: "POST", target: "/webtest", body: form("action=get_uuid"), wantCode: 200, wantBody: okBody},
		{name: "missing action", method: "GET", target: "/webtest", wantCode: 200, wantBody: notFoundBody},
		{name: "empty action", method: "GET", target: "/webtest?action=", wantCode: 200, wantBody: notFoundBody},
		{name: "other action", method: "POST", target: "/webtest?action=get_time", wantCode: 200, wantBody: notFoundBody},
		{name: "options", method: "OPTIONS", target: "/webtest?action=get_uuid", wantCode: 200, wantBody: ""},
		{name: "options ignores delay", method: "OPTIONS", target: "/webtest?delay=1s", wantCode: 200, wantBody: ""},
		{name: "put", method: "PUT", target: "/webtest?action=get_uuid", wantCode: 405,
			wantBody: `{"IsSuccess":false,"Message":"method not allowed","Server":"web1"}` + "\n"},
		{name: "delay", method: "GET", target: "/webtest?action=get_uuid&delay=200ms", wantCode: 200, wantBody: okBody,
			wantWait: []time.Duration{200 * time.Millisecond}},
		{name: "delay in form", method: "POST", target: "/webtest", body: form("action=get_uuid&delay=1.5s"), wantCode: 200, wantBody: okBody,
			wantWait: []time.Duration{1500 * time.Millisecond}},
		{name: "delay max", method: "GET", target: "/webtest?action=get_uuid&delay=30s", wantCode: 200, wantBody: okBody,
			wantWait: []time.Duration{30 * time.Second}},
		{name: "delay zero", method: "GET", target: "/webtest?action=get_uuid&delay=0s", wantCode: 200, wantBody: okBody},
		{name: "delay before not found", method: "GET", target: "/webtest?delay=10ms", wantCode: 200, wantBody: notFoundBody,
			wantWait: []time.Duration{10 * time.Millisecond}},
		{name: "delay too long", method: "GET", target: "/webtest?action=get_uuid&delay=31s", wantCode: 400,
			wantRE: `^\{"IsSuccess":false,"Message":"bad delay \\"31s\\": [^"]+","Server":"web1"\}\n$`},
		{name: "delay negative", method: "GET", target: "/webtest?action=get_uuid&delay=-1s", wantCode: 400,
			wantRE: `^\{"IsSuccess":false,"Message":"bad delay \\"-1s\\": [^"]+","Server":"web1"\}\n$`},
		{name: "delay garbage", method: "GET", target: "/webtest?action=get_uuid&delay=soon", wantCode: 400,
			wantRE: `^\{"IsSuccess":false,"Message":"bad delay \\"soon\\": [^"]+","Server":"web1"\}\n$`},
		{name: "delay without unit", method: "GET", target: "/webtest?action=get_uuid&delay=200", wantCode: 400,
			wantRE: `^\{"IsSuccess":false,"Message":"bad delay \\"200\\": [^"]+","Server":"web1"\}\n$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var slept []time.Duration
			s := fixedServer(&slept)
			req := httptest.NewRequest(tt.method, tt.target, tt.body)
			if tt.body != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)

			if rec.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			got := rec.Body.String()
			if tt.wantRE != "" {
				if !regexp.MustCompile(tt.wantRE).MatchString(got) {
					t.Errorf("body = %q, want match of %q", got, tt.wantRE)
				}
			} else if got != tt.wantBody {
				t.Errorf("body = %q\nwant   %q", got, tt.wantBody)
			}
			for k, want := range corsHeaders {
				if got := rec.Header().Values(k); len(got) != 1 || got[0] != want {
					t.Errorf("header %s = %q, want [%q]", k, got, want)
				}
			}
			if len(slept) != len(tt.wantWait) || (len(slept) > 0 && slept[0] != tt.wantWait[0]) {
				t.Errorf("slept %v, want %v", slept, tt.wantWait)
			}
		})
	}
}

// TestWebtestReal checks the answer of the real clock and UUID generator
// through an HTTP server, including a real delay.
func TestWebtestReal(t *testing.T) {
	ts := httptest.NewServer(NewServer("web2"))
	defer ts.Close()
	re := regexp.MustCompile(`^\{"IsSuccess":true,"Data":"([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})",` +
		`"RequestTime":"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})","ResponseTime":"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})","Server":"web2"\}\n$`)

	for _, q := range []string{"action=get_uuid", "action=get_uuid&delay=50ms"} {
		resp, err := http.Get(ts.URL + "/webtest?" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := re.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s: body %q does not match %s", q, b, re)
		}
		req, err := time.Parse(TimeLayout, string(m[2]))
		if err != nil {
			t.Fatal(err)
		}
		res, err := time.Parse(TimeLayout, string(m[3]))
		if err != nil {
			t.Fatal(err)
		}
		wantMin := time.Duration(0)
		if strings.Contains(q, "delay") {
			wantMin = 50 * time.Millisecond
		}
		if d := res.Sub(req); d < wantMin || d > 5*time.Second {
			t.Errorf("%s: ResponseTime - RequestTime = %s, want at least %s", q, d, wantMin)
		}
	}
}

func TestNewUUID4(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		u, err := newUUID4()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(u) {
			t.Fatalf("newUUID4() = %q, not a canonical version 4 UUID", u)
		}
		if seen[u] {
			t.Fatalf("newUUID4() repeated %q", u)
		}
		seen[u] = true
	}
}

func TestHealthz(t *testing.T) {
	s := NewServer("web1")
	do := func(method, target string) (int, string) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
		return rec.Code, rec.Body.String()
	}
	steps := []struct {
		method, target string
		wantCode       int
		wantBody       string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"HEAD", "/healthz", 200, ""},
		{"POST", "/healthz?fail=1", 503, "failing\n"},
		{"GET", "/healthz", 503, "failing\n"},
		{"POST", "/healthz?fail=yes", 400, "fail must be 0 or 1\n"},
		{"GET", "/healthz", 503, "failing\n"},
		{"GET", "/webtest?action=get_uuid", 200, ""}, // /webtest keeps answering
		{"POST", "/healthz?fail=0", 200, "ok\n"},
		{"GET", "/healthz", 200, "ok\n"},
		{"DELETE", "/healthz", 405, "method not allowed\n"},
	}
	for i, st := range steps {
		code, body := do(st.method, st.target)
		if code != st.wantCode {
			t.Errorf("step %d: %s %s: status = %d, want %d", i, st.method, st.target, code, st.wantCode)
		}
		if st.wantBody != "" && body != st.wantBody {
			t.Errorf("step %d: %s %s: body = %q, want %q", i, st.method, st.target, body, st.wantBody)
		}
	}
}

func TestUnknownPath(t *testing.T) {
	rec := httptest.NewRecorder()
	NewServer("web1").ServeHTTP(rec, httptest.NewRequest("GET", "/other?action=get_uuid", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("status = %d, want 404", rec.Code)
	}
}

func TestBlob(t *testing.T) {
	s := NewServer("web1")
	for _, tc := range []struct {
		query  string
		status int
		size   int
	}{{"bytes=0", 200, 0}, {"bytes=100000", 200, 100000}, {"bytes=-1", 400, -1}, {"bytes=lots", 400, -1}, {"", 400, -1}, {"bytes=67108865", 400, -1}} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/blob?"+tc.query, nil))
		if rec.Code != tc.status {
			t.Errorf("%q: status %d, want %d", tc.query, rec.Code, tc.status)
			continue
		}
		if tc.size >= 0 && (rec.Body.Len() != tc.size || rec.Header().Get("Content-Length") != strings.TrimPrefix(tc.query, "bytes=")) {
			t.Errorf("%q: %d bytes, Content-Length %q", tc.query, rec.Body.Len(), rec.Header().Get("Content-Length"))
		}
	}
}
