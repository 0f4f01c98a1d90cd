package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTLSVersionsAndKeys: the fast path serves HTTP/1.1 in TLS 1.2 and
// 1.3, with an ECDSA certificate and with an RSA one, and tells the peer
// the client came over https.
func TestTLSVersionsAndKeys(t *testing.T) {
	be := newBackend(t, "web1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
	})
	for _, cert := range []tls.Certificate{ecdsaCert, rsaCert} {
		url, _, _ := startFastWith(t, &tls.Config{Certificates: []tls.Certificate{cert}}, Config{}, fastHooks{}, be.backend(1))
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			name := fmt.Sprintf("%v/%s", cert.Leaf.PublicKeyAlgorithm, tls.VersionName(version))
			t.Run(name, func(t *testing.T) {
				tr := testTransport()
				tr.TLSClientConfig.MinVersion, tr.TLSClientConfig.MaxVersion = version, version
				defer tr.CloseIdleConnections()
				res, err := (&http.Client{Transport: tr, Timeout: waitBound}).Get(url + "/")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				st := res.TLS
				switch {
				case res.StatusCode != 200 || string(body) != "https":
					t.Fatalf("%d %q, want 200 and the peer told https", res.StatusCode, body)
				case st.Version != version:
					t.Fatalf("negotiated %s", tls.VersionName(st.Version))
				case st.NegotiatedProtocol != "http/1.1":
					t.Fatalf("ALPN %q, want http/1.1", st.NegotiatedProtocol)
				case st.PeerCertificates[0].PublicKeyAlgorithm != cert.Leaf.PublicKeyAlgorithm:
					t.Fatalf("served a %v certificate", st.PeerCertificates[0].PublicKeyAlgorithm)
				}
			})
		}
	}
}

// TestTLSHTTP2ByALPN: a client offering h2 gets HTTP/2, and Shutdown lets
// its request in flight finish.
func TestTLSHTTP2ByALPN(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	be := newBackend(t, "web1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
	})
	url, srv, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: testRoots}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitBound}
	res, err := client.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || string(body) != "https" {
		t.Fatalf("%s %q, want HTTP/2 and the peer told https", res.Proto, body)
	}

	type answer struct {
		status int
		body   string
		err    error
	}
	slow := make(chan answer, 1)
	go func() {
		res, err := client.Get(url + "/slow")
		if err != nil {
			slow <- answer{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		slow <- answer{res.StatusCode, string(b), err}
	}()
	await(t, arrived, "the slow request at the peer")
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	close(release)
	if a := await(t, slow, "the slow answer"); a.err != nil || a.status != 200 || a.body != "https" {
		t.Fatalf("request in flight at shutdown: %+v", a)
	}
	if err := await(t, done, "shutdown"); err != nil {
		t.Fatal(err)
	}
}

// TestTLSHandshakeTimeout: a client that opens a connection and sends no
// ClientHello is cut off after Timeouts.TLSHandshake.
func TestTLSHandshakeTimeout(t *testing.T) {
	be := newBackend(t, "web1", nil)
	url, _, _ := startFastTLS(t, Config{Timeouts: Timeouts{TLSHandshake: 50 * time.Millisecond}}, fastHooks{}, be.backend(1))
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(waitBound))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a silent client's connection: %v, want it closed", err)
	}
}

// TestTLSSessionResumption: a returning client resumes its session from
// a ticket, in TLS 1.2 and 1.3.
func TestTLSSessionResumption(t *testing.T) {
	be := newBackend(t, "web1", nil)
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cfg := &tls.Config{RootCAs: testRoots, MinVersion: version, MaxVersion: version,
				ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			for i, want := range []bool{false, true} {
				c, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), cfg)
				if err != nil {
					t.Fatal(err)
				}
				// A TLS 1.3 ticket comes after the handshake: a request
				// and its answer bring it.
				rc := &rawClient{c, bufio.NewReader(c)}
				rc.send(t, "/")
				if got := rc.read(t); got != "200 web1" {
					t.Fatalf("got %q", got)
				}
				c.Close()
				if got := c.ConnectionState().DidResume; got != want {
					t.Fatalf("connection %d resumed: %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

// TestTLSIdleHandoff: a TLS connection idle for Timeouts.idleHandoff is
// handed to waitIdle, which waits without a buffer, and goes on serving.
func TestTLSIdleHandoff(t *testing.T) {
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.URL.Path) })
	handoffs := newEvents[int64]()
	hooks := fastHooks{handoff: func() { handoffs.add(be.Hits.Load()) }}
	url, _, _ := startFastTLS(t, Config{Timeouts: Timeouts{idleHandoff: time.Millisecond}}, hooks, be.backend(1))
	rc := dialRaw(t, url)
	for i, path := range []string{"/a", "/b", "/c"} {
		rc.send(t, path)
		if got := rc.read(t); got != "200 ok "+path {
			t.Fatalf("%s: %q", path, got)
		}
		handoffs.await(t, fmt.Sprint("hand-over after request ", i+1), func(n int64) bool { return n == int64(i+1) })
	}
}

// Certificates are checked against testRoots: a client that does not
// trust them fails the handshake, and the proxy goes on serving.
func TestTLSUntrustedClientFails(t *testing.T) {
	be := newBackend(t, "web1", nil)
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	_, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{RootCAs: x509.NewCertPool()})
	if err == nil {
		t.Fatal("handshake succeeded without trusting the certificate")
	}
	if status, body, _ := get(t, url+"/"); status != 200 || body != "web1" {
		t.Fatalf("after a failed handshake: %d %q", status, body)
	}
}

// heldConn holds what is written to it while hold is set, to send it in
// one write, or in pieces, when told.
type heldConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (h *heldConn) Write(p []byte) (int, error) {
	if h.hold {
		h.buf = append(h.buf, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

// send writes n bytes of what is held (all when n < 0).
func (h *heldConn) send(t *testing.T, n int) {
	t.Helper()
	if n < 0 || n > len(h.buf) {
		n = len(h.buf)
	}
	if _, err := h.Conn.Write(h.buf[:n]); err != nil {
		t.Fatal(err)
	}
	h.buf = h.buf[n:]
}

// TestTLSRecordsInPieces: requests reach the fast path in TLS records
// however TCP cuts them: two records in one segment, each answered (the
// second is decrypted from what crypto/tls holds, not awaited from the
// socket), and one record in two segments, answered once whole.
func TestTLSRecordsInPieces(t *testing.T) {
	be := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok "+r.URL.Path) })
	waits := make(chan struct{}, 64)
	hooks := fastHooks{wait: func([]byte, bool) {
		select {
		case waits <- struct{}{}:
		default:
		}
	}}
	// No hand-over to waitIdle within the test: it would read the socket
	// anew, and hide a wait for bytes that crypto/tls already holds.
	url, _, _ := startFastTLS(t, Config{Timeouts: Timeouts{ClientIdle: time.Hour, idleHandoff: time.Hour}}, hooks, be.backend(1))
	raw, err := net.Dial("tcp", strings.TrimPrefix(url, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(waitBound))
	hc := &heldConn{Conn: raw}
	c := tls.Client(hc, &tls.Config{RootCAs: testRoots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{c, bufio.NewReader(c)}
	answer := func(path string) {
		t.Helper()
		if got := rc.read(t); got != "200 ok "+path {
			t.Fatalf("%s: %q", path, got)
		}
	}
	hc.hold = true
	rc.send(t, "/one") // a record each
	rc.send(t, "/two")
	hc.send(t, -1)
	answer("/one")
	answer("/two")

	rc.send(t, "/three")
	for len(waits) > 0 { // waits before /three was sent
		<-waits
	}
	hc.send(t, 10) // the record header and a little
	await(t, waits, "the proxy waiting for the rest of the record")
	hc.send(t, -1)
	answer("/three")
}
