package proxy

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/summerwind/h2spec/config"
	"github.com/summerwind/h2spec/generic"
	"github.com/summerwind/h2spec/hpack"
	h2spechttp2 "github.com/summerwind/h2spec/http2"
	"github.com/summerwind/h2spec/spec"
)

// h2specKnown are the h2spec cases the HTTP/2 server of EnableTLS
// (golang.org/x/net/http2) fails by its own design, each answered in a
// way that still refuses what the case sends: a front end that passes
// one must have it taken off this list, and any other failure fails the
// test.
var h2specKnown = map[string]string{
	// A SETTINGS frame that names one setting twice is legal; the
	// library hangs up on it with PROTOCOL_ERROR, as suspicious.
	"http2/6.5.3/1": "x/net closes the connection on duplicate settings",
	// A request with a connection-specific header (Connection,
	// Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade) or a TE
	// other than "trailers" is malformed and must be reset with
	// PROTOCOL_ERROR; the library answers it 400 Bad Request instead,
	// without reaching the handler, so it is never forwarded either.
	"http2/8.1.2.2/1": "x/net answers 400 instead of RST_STREAM(PROTOCOL_ERROR)",
	"http2/8.1.2.2/2": "x/net answers 400 instead of RST_STREAM(PROTOCOL_ERROR)",
}

// TestH2spec runs every case of h2spec (the generic, RFC 7540 and RFC 7541
// sections, the strict ones included) against the fast path's HTTP/2 over
// TLS. H2SPEC_SECTIONS (space separated, as h2spec's arguments) runs some
// of them only.
func TestH2spec(t *testing.T) {
	// An answer with a body of at least 5 bytes: several cases need a
	// stream that stays open while its DATA waits for flow control, and
	// are skipped without one.
	be := newBackend(t, "h2spec peer", nil)
	url, _, _ := startFastTLS(t, Config{}, fastHooks{}, be.backend(1))
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "https://"))
	p, _ := strconv.Atoi(port)
	c := &config.Config{Host: host, Port: p, Path: "/", Timeout: 2 * time.Second,
		MaxHeaderLen: 4000, TLS: true, Insecure: true, Strict: true}
	only := os.Getenv("H2SPEC_SECTIONS")
	if only != "" {
		c.Sections = strings.Fields(only)
	}
	results := map[string]*spec.TestResult{}
	for _, g := range []*spec.TestGroup{generic.Spec(), h2spechttp2.Spec(), hpack.Spec()} {
		g.Test(c)
		collect(g, results)
	}
	var passed, failed int
	var skipped []string
	for id, r := range results {
		if r.Failed {
			failed++
		}
		if r.Skipped {
			skipped = append(skipped, id)
			t.Errorf("h2spec %s %s: skipped", id, r.TestCase.Desc)
		}
		_, known := h2specKnown[id]
		switch {
		case r.Failed && !known:
			t.Errorf("h2spec %s %s: %v", id, r.TestCase.Desc, r.Error)
		case !r.Failed && !r.Skipped && known && only == "":
			t.Errorf("h2spec %s now passes: take it off h2specKnown", id)
		case !r.Failed && !r.Skipped:
			passed++
		}
	}
	// h2spec 2.2.1 has 146 cases, strict ones included; fewer run means
	// the server was not reached.
	if only == "" && len(results) != 146 {
		t.Errorf("%d h2spec cases ran, want 146", len(results))
	}
	t.Logf("h2spec: %d cases, %d passed, %d failed as known, skipped %v", len(results), passed, failed, skipped)
}

// collect adds the results of g's cases to rs, by h2spec's case ids.
func collect(g *spec.TestGroup, rs map[string]*spec.TestResult) {
	for _, tc := range append(g.Tests, g.StrictTests...) {
		if r := tc.Result; r != nil {
			rs[fmt.Sprintf("%s/%d", g.ID(), r.Sequence)] = r
		}
	}
	for _, sg := range g.Groups {
		collect(sg, rs)
	}
}
