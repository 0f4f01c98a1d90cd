package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func fetch(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestRecord checks that --record notes the id of every GET and POST
// /webtest request that has one, in order, before the answer, and that the
// file outlives the server: a new server on the same file lists the ids the
// previous one received, as a container started again after a SIGKILL does.
func TestRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "received")
	s := NewServer("web1")
	if err := s.Record(path); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	for _, r := range []struct{ method, target string }{
		{"POST", "/webtest?action=get_uuid&id=a1"},
		{"GET", "/webtest?action=get_uuid&id=a2"},
		{"GET", "/webtest?action=get_uuid"}, // no id: nothing noted
		{"POST", "/webtest?action=other&id=a3"},
		{"POST", "/webtest?action=get_uuid&id=a1"}, // a repeat is noted again
	} {
		if code, body := fetch(t, r.method, ts.URL+r.target); code != 200 {
			t.Fatalf("%s %s: %d %s", r.method, r.target, code, body)
		}
	}
	const want = "a1\na2\na3\na1\n"
	if code, body := fetch(t, "GET", ts.URL+"/received"); code != 200 || body != want {
		t.Fatalf("GET /received = %d %q, want 200 %q", code, body, want)
	}
	if code, _ := fetch(t, "POST", ts.URL+"/received"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /received = %d, want 405", code)
	}
	ts.Close()

	again := NewServer("web1")
	if err := again.Record(path); err != nil {
		t.Fatal(err)
	}
	ts2 := httptest.NewServer(again)
	defer ts2.Close()
	fetch(t, "GET", ts2.URL+"/webtest?action=get_uuid&id=b1")
	if _, body := fetch(t, "GET", ts2.URL+"/received"); body != want+"b1\n" {
		t.Fatalf("after a restart GET /received = %q, want %q", body, want+"b1\n")
	}
}

// TestNoRecordByDefault checks that without --record nothing is noted and
// /received does not exist.
func TestNoRecordByDefault(t *testing.T) {
	ts := httptest.NewServer(NewServer("web1"))
	defer ts.Close()
	if code, body := fetch(t, "GET", ts.URL+"/webtest?action=get_uuid&id=x"); code != 200 || !strings.Contains(body, `"IsSuccess":true`) {
		t.Fatalf("get_uuid with an id: %d %s", code, body)
	}
	if code, _ := fetch(t, "GET", ts.URL+"/received"); code != http.StatusNotFound {
		t.Fatalf("GET /received without --record = %d, want 404", code)
	}
}
