package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRedirectHTTPS(t *testing.T) {
	for _, tt := range []struct {
		port, method, host, target string
		code                       int
		location                   string
	}{
		{"443", "GET", "example.com", "/a/b?x=1&y=%20", 301, "https://example.com/a/b?x=1&y=%20"},
		{"", "HEAD", "example.com:80", "/", 301, "https://example.com/"},
		{"8443", "GET", "example.com:8080", "/p", 301, "https://example.com:8443/p"},
		{"443", "POST", "example.com", "/form", 308, "https://example.com/form"},
		{"8443", "DELETE", "[2001:db8::1]:80", "/x", 308, "https://[2001:db8::1]:8443/x"},
		{"443", "GET", "[2001:db8::1]", "/x", 301, "https://[2001:db8::1]/x"},
		{"443", "GET", "example.com", "//evil.test/%2e%2e", 301, "https://example.com//evil.test/%2e%2e"},
		{"443", "GET", "", "/", 400, ""},
	} {
		req := httptest.NewRequest(tt.method, "http://placeholder"+tt.target, strings.NewReader("body"))
		req.Host = tt.host
		w := httptest.NewRecorder()
		RedirectHTTPS(tt.port).ServeHTTP(w, req)
		if w.Code != tt.code || w.Header().Get("Location") != tt.location {
			t.Errorf("%s %s%s (port %q): %d %q, want %d %q", tt.method, tt.host, tt.target, tt.port,
				w.Code, w.Header().Get("Location"), tt.code, tt.location)
		}
	}
}

// The redirect goes through a real listener too: a client that follows
// it ends at the https address, method and body kept for a POST.
func TestRedirectHTTPSFollowed(t *testing.T) {
	be := newBackend(t, "web1", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Method + " " + r.URL.RequestURI()))
	})
	url, _ := newFastTLSProxy(t, Config{}, be.backend(1))
	port := url[strings.LastIndex(url, ":")+1:]
	redir := httptest.NewServer(RedirectHTTPS(port))
	defer redir.Close()
	res, err := http.Post(redir.URL+"/form?a=1", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body := make([]byte, 64)
	n, _ := res.Body.Read(body)
	if res.Request.URL.Scheme != "https" || res.StatusCode != 200 || string(body[:n]) != "POST /form?a=1" {
		t.Fatalf("followed to %s: %d %q", res.Request.URL, res.StatusCode, body[:n])
	}
}
