package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/http2"

	"github.com/wharflb/wharf/internal/dockertest"
)

// TestClientsOverTLS: curl, Go's client and Chromium each fetch through
// wharf over TLS, once by HTTP/2 and once by HTTP/1.1, and each
// negotiates the protocol it asked for.
func TestClientsOverTLS(t *testing.T) {
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "peer got %s over %s", r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer peer.Close()
	certFile, keyFile, cert := writeCert(t, t.TempDir(), "interop")
	in := startWharf(t, "--upstream", strings.TrimPrefix(peer.URL, "http://"), "--tls-cert", certFile, "--tls-key", keyFile)
	port := in.url[strings.LastIndex(in.url, ":")+1:]
	base := "https://localhost:" + port
	protocols := []struct {
		name string
		h2   bool
	}{{"h2", true}, {"http1.1", false}}
	want := func(path string) string { return "peer got " + path + " over https" }

	t.Run("go", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		for _, p := range protocols {
			t.Run(p.name, func(t *testing.T) {
				tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: p.h2}
				if !p.h2 {
					tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
				}
				defer tr.CloseIdleConnections()
				res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(base + "/go")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				wantProto := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[p.h2]
				if res.Proto != wantProto || res.StatusCode != 200 || string(body) != want("/go") {
					t.Fatalf("%s %d %q, want %s 200 %q", res.Proto, res.StatusCode, body, wantProto, want("/go"))
				}
			})
		}
	})

	t.Run("curl", func(t *testing.T) {
		curl := requireTool(t, "curl", "apt-get install curl")
		for _, p := range protocols {
			t.Run(p.name, func(t *testing.T) {
				bodyFile := filepath.Join(t.TempDir(), "body")
				flag, wantVersion := "--http1.1", "1.1"
				if p.h2 {
					flag, wantVersion = "--http2", "2"
				}
				out, err := exec.Command(curl, "-sS", flag, "--cacert", certFile, "--max-time", "10",
					"--resolve", "localhost:"+port+":127.0.0.1", "-o", bodyFile, "-w", "%{http_version} %{http_code}",
					base+"/curl").CombinedOutput()
				if err != nil {
					t.Fatalf("curl: %v: %s", err, out)
				}
				body, _ := os.ReadFile(bodyFile)
				if got := string(out); got != wantVersion+" 200" || string(body) != want("/curl") {
					t.Fatalf("curl: version and status %q, body %q; want %q and %q", got, body, wantVersion+" 200", want("/curl"))
				}
			})
		}
	})

	t.Run("chromium", func(t *testing.T) {
		path := requireChromium(t)
		for _, p := range protocols {
			t.Run(p.name, func(t *testing.T) {
				// The certificate is the test's own: the browser is told
				// to take it rather than given a trust store.
				opts := []chromedp.ExecAllocatorOption{chromedp.Flag("ignore-certificate-errors", true)}
				wantProto := "h2"
				if !p.h2 {
					opts = append(opts, chromedp.Flag("disable-http2", true))
					wantProto = "http/1.1"
				}
				b := startBrowser(t, path, opts...)
				b.navigate(t, base+"/chromium")
				proto, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`performance.getEntries()[0].nextHopProtocol`))
				if err != nil {
					t.Fatal(err)
				}
				body, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.textContent`))
				if err != nil {
					t.Fatal(err)
				}
				if proto != wantProto || body != want("/chromium") {
					t.Fatalf("Chromium: %q %q, want %q %q", proto, body, wantProto, want("/chromium"))
				}
			})
		}
	})
}

// TestClientsOverH2C: on a plain listener, curl and Go's client each
// fetch through wharf by HTTP/2 with prior knowledge (h2c), and by
// HTTP/1.1 on the same port.
func TestClientsOverH2C(t *testing.T) {
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "peer got %s over %s", r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer peer.Close()
	in := startWharf(t, "--upstream", strings.TrimPrefix(peer.URL, "http://"))
	want := func(path string) string { return "peer got " + path + " over http" }

	t.Run("go", func(t *testing.T) {
		tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(in.url + "/go")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.Proto != "HTTP/2.0" || res.StatusCode != 200 || string(body) != want("/go") {
			t.Fatalf("%s %d %q, want HTTP/2.0 200 %q", res.Proto, res.StatusCode, body, want("/go"))
		}
	})

	t.Run("curl", func(t *testing.T) {
		curl := requireTool(t, "curl", "apt-get install curl")
		for _, p := range []struct{ flag, version string }{{"--http2-prior-knowledge", "2"}, {"--http1.1", "1.1"}} {
			t.Run(p.flag, func(t *testing.T) {
				bodyFile := filepath.Join(t.TempDir(), "body")
				out, err := exec.Command(curl, "-sS", p.flag, "--max-time", "10", "-o", bodyFile,
					"-w", "%{http_version} %{http_code}", in.url+"/curl").CombinedOutput()
				if err != nil {
					t.Fatalf("curl: %v: %s", err, out)
				}
				body, _ := os.ReadFile(bodyFile)
				if got := string(out); got != p.version+" 200" || string(body) != want("/curl") {
					t.Fatalf("curl: version and status %q, body %q; want %q and %q", got, body, p.version+" 200", want("/curl"))
				}
			})
		}
	})
}

// requireTool returns the path of the program name, skipping the test
// when it is missing, or failing it when WHARF_REQUIRE_DOCKER=1 (as on
// CI, which installs it).
func requireTool(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	reason := fmt.Sprintf("no %s on PATH (%s)", name, install)
	if os.Getenv(dockertest.RequireEnv) == "1" {
		t.Fatalf("%s; %s=1 requires it", reason, dockertest.RequireEnv)
	}
	t.Skip(reason)
	return ""
}
