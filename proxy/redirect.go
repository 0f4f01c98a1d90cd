package proxy

import (
	"net"
	"net/http"
	"strings"
)

// RedirectHTTPS answers every request with a permanent redirect to the
// same host and request-target over https, on port (omitted when empty or
// 443). GET and HEAD get 301, which every client follows and caches; other
// methods get 308, which keeps the method and the body where a 301 lets
// clients turn a POST into a GET.
func RedirectHTTPS(port string) http.Handler {
	if port == "443" {
		port = ""
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" {
			http.Error(w, "a Host is needed to redirect to https", http.StatusBadRequest)
			return
		}
		switch {
		case port != "":
			host = net.JoinHostPort(host, port)
		case strings.Contains(host, ":"):
			host = "[" + host + "]" // an IPv6 address
		}
		code := http.StatusPermanentRedirect
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		w.Header().Set("Connection", "close") // the client goes to the other port
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), code)
	})
}
