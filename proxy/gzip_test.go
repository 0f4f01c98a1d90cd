package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
	"github.com/wharflb/wharf/lb"
)

var gzipOn = Config{Gzip: GzipConfig{On: true}}

// gzipClient sends Accept-Encoding as each test says, and never decodes.
// gzipClient leaves answers as they come, over HTTP/1.1 and HTTP/2
// (h2Tests does not decompress either).
var gzipClient = func() *http.Client {
	tr := &http.Transport{DisableCompression: true}
	registerH2(tr)
	return &http.Client{Transport: tr, Timeout: waitBound}
}()

func fetch(t *testing.T, method, url, accept string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if accept != "" {
		req.Header.Set("Accept-Encoding", accept)
	}
	res, err := gzipClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return res, b
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

// The fast path compresses by nginx's gzip rules: which answers, for which
// clients, and what happens to their fields.
func TestGzip(t *testing.T) {
	big := strings.Repeat(`{"IsSuccess": true, "Data": "0f8fad5b-d9cb-469f-a165-70867728950e"}`, 20)
	peer := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(big)))
		switch r.URL.Path {
		case "/small":
			h.Set("Content-Length", "19")
			io.WriteString(w, big[:19])
			return
		case "/png":
			h.Set("Content-Type", "image/png")
		case "/encoded":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Encoding", "br")
		case "/html":
			h.Set("Content-Type", "text/html; charset=utf-8")
		case "/etag":
			h.Set("ETag", `"v1"`)
			h.Set("Accept-Ranges", "bytes")
		case "/weak-etag":
			h.Set("ETag", `W/"v1"`)
		case "/partial":
			h.Set("Content-Range", fmt.Sprintf("bytes 0-%d/9999", len(big)-1))
			w.WriteHeader(206)
		case "/no-transform":
			h.Set("Cache-Control", "public, no-transform")
		case "/vary":
			h.Set("Vary", "Origin, accept-encoding")
		case "/chunked":
			h.Del("Content-Length")
			io.WriteString(w, big[:100])
			w.(http.Flusher).Flush()
			io.WriteString(w, big[100:])
			return
		case "/404":
			w.WriteHeader(404)
		}
		io.WriteString(w, big)
	})
	url, _ := newFastProxy(t, gzipOn, peer.backend(1))
	h2URL, _ := newFastH2Proxy(t, gzipOn, peer.backend(1))
	h2cURL, _ := newFastH2CProxy(t, gzipOn, peer.backend(1))
	tests := []struct {
		path, accept string
		gzipped      bool
		vary         bool
		method       string
	}{
		{path: "/json", accept: "gzip, deflate", gzipped: true, vary: true},
		{path: "/json", accept: "", vary: true},
		{path: "/json", accept: "identity", vary: true},
		{path: "/json", accept: "gzip;q=0", vary: true},
		{path: "/json", accept: "gzip; q=0.000, deflate", vary: true},
		{path: "/json", accept: "GZIP;Q=0.5", gzipped: true, vary: true},
		{path: "/json", accept: "x-gzip", gzipped: true, vary: true},
		{path: "/json", accept: "*", gzipped: true, vary: true},
		{path: "/json", accept: "gzip;q=0, *", vary: true}, // named refusal beats the wildcard
		{path: "/json", accept: "br, zstd, gzip", gzipped: true, vary: true},
		{path: "/json", accept: "gzip", method: "HEAD"},
		{path: "/small", accept: "gzip"},
		{path: "/png", accept: "gzip"},
		{path: "/encoded", accept: "gzip"},
		{path: "/html", accept: "gzip", gzipped: true, vary: true}, // nginx always compresses text/html
		{path: "/etag", accept: "gzip", gzipped: true, vary: true},
		{path: "/weak-etag", accept: "gzip", gzipped: true, vary: true},
		{path: "/partial", accept: "gzip"},
		{path: "/no-transform", accept: "gzip"},
		{path: "/vary", accept: "gzip", gzipped: true, vary: true},
		{path: "/chunked", accept: "gzip", gzipped: true, vary: true},
		{path: "/404", accept: "gzip", gzipped: true, vary: true},
	}
	for _, tt := range tests {
		method := tt.method
		if method == "" {
			method = "GET"
		}
		for _, url := range []string{url, h2URL, h2cURL} {
			t.Run(method+tt.path+"/"+tt.accept+"/"+url[:strings.Index(url, ":")], func(t *testing.T) {
				gzipCase(t, url, method, tt.path, tt.accept, tt.gzipped, tt.vary, big)
			})
		}
	}
	t.Run("HTTP/1.0 client", func(t *testing.T) {
		raw := readUntilClose(t, url, "GET /json HTTP/1.0\r\nHost: a.test\r\nAccept-Encoding: gzip\r\n\r\n")
		head, body, _ := strings.Cut(raw, "\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.0 200") || !strings.Contains(head, "\r\nContent-Encoding: gzip") ||
			strings.Contains(head, "Content-Length") || strings.Contains(head, "Transfer-Encoding") {
			t.Fatalf("head:\n%s", head)
		}
		if got := gunzip(t, []byte(body)); string(got) != big {
			t.Fatalf("body differs (%d bytes)", len(got))
		}
	})
	t.Run("keep-alive", func(t *testing.T) {
		// Compressed answers leave the client connection usable.
		c := dialTest(t, url)
		br := bufio.NewReader(c)
		for i := 0; i < 3; i++ {
			io.WriteString(c, "GET /chunked HTTP/1.1\r\nHost: a.test\r\nAccept-Encoding: gzip\r\n\r\n")
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			b, err := io.ReadAll(res.Body)
			if err != nil || res.Close || string(gunzip(t, b)) != big {
				t.Fatalf("answer %d: close %v, err %v", i, res.Close, err)
			}
		}
	})
	t.Run("curl --compressed", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("curl not installed")
		}
		out, err := exec.Command(curl, "-sS", "--compressed", "-D", "-", url+"/json").Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.ToLower(string(out)), "content-encoding: gzip") || !strings.HasSuffix(string(out), big) {
			t.Fatalf("curl got:\n%.300s", out)
		}
	})
}

// readUntilClose sends raw on a new connection and returns all that comes
// back until the proxy closes it.
func readUntilClose(t *testing.T, url, raw string) string {
	t.Helper()
	c := dialTest(t, url)
	io.WriteString(c, raw)
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	return string(b)
}

// dialTest connects to the proxy at url (see dialProxy), for waitBound at
// most; the connection is closed when the test ends.
func dialTest(t *testing.T, url string) net.Conn {
	t.Helper()
	c, err := dialProxy(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitBound))
	return c
}

// Without --gzip nothing changes: no coding, no Vary.
func TestGzipOff(t *testing.T) {
	peer := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, strings.Repeat("x", 1000))
	})
	url, _ := newFastProxy(t, Config{}, peer.backend(1))
	res, body := fetch(t, "GET", url+"/", "gzip")
	if res.Header.Get("Content-Encoding") != "" || res.Header.Get("Vary") != "" || len(body) != 1000 {
		t.Fatalf("Content-Encoding %q, Vary %q, %d bytes", res.Header.Get("Content-Encoding"), res.Header.Get("Vary"), len(body))
	}
}

// jsonish returns n bytes of JSON-like text that compresses as real
// answers do, neither all alike nor random.
func jsonish(rng *rand.Rand, n int) []byte {
	words := []string{`{"id":`, `"name":"`, `webtest`, `","ok":true,`, `"data":[`, `0f8fad5b`, `-d9cb-469f`, `],`, "\n", `}`}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteString(strconv.Itoa(rng.IntN(100000)))
	}
	return b.Bytes()[:n]
}

// closingBackend answers every request with head then body and closes:
// a body delimited by the end of the connection.
func closingBackend(t *testing.T, body func(path string) []byte) lb.Backend {
	t.Helper()
	return rawPeer(t, "closing", func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
		c.Write(body(req.URL.Path))
	})
}

// Whatever the size and the peer's framing, the client decompresses the
// very bytes the peer sent, which the reference engine passes unchanged;
// answers of known length under GzipMinLength stay as they are.
func TestGzipBodiesMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	sizes := []int{0, 1, 19, 20, 21, 1000, 16 << 10, 64<<10 + 1, 300<<10 + rng.IntN(100<<10)}
	for i := 0; i < 4; i++ {
		sizes = append(sizes, rng.IntN(200<<10))
	}
	bodies := map[string][]byte{}
	for _, n := range sizes {
		bodies["/"+strconv.Itoa(n)] = jsonish(rng, n)
	}
	lengthPeer := newBackend(t, "length", func(w http.ResponseWriter, r *http.Request) {
		b := bodies[r.URL.Path]
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	chunkedPeer := newBackend(t, "chunked", func(w http.ResponseWriter, r *http.Request) {
		b := bodies[r.URL.Path]
		w.Header().Set("Content-Type", "application/json")
		// In parts of random sizes, each flushed: several chunks (none
		// for an empty body, whose head goes out chunked by the first
		// flush).
		w.(http.Flusher).Flush()
		for len(b) > 0 {
			k := min(len(b), 1+rng.IntN(20<<10))
			w.Write(b[:k])
			w.(http.Flusher).Flush()
			b = b[k:]
		}
	})
	closing := closingBackend(t, func(p string) []byte { return bodies[p] })
	for _, peer := range []struct {
		name    string
		backend lb.Backend
		known   bool // the length is known
	}{{"length", lengthPeer.backend(1), true}, {"chunked", chunkedPeer.backend(1), false}, {"close", closing, false}} {
		t.Run(peer.name, func(t *testing.T) {
			fast, _ := newFastProxy(t, gzipOn, peer.backend)
			ref, _ := engines[0].start(t, Config{}, peer.backend)
			for _, n := range sizes {
				path := "/" + strconv.Itoa(n)
				_, plain := fetch(t, "GET", ref+path, "gzip")
				if !bytes.Equal(plain, bodies[path]) {
					t.Fatalf("%d bytes: the reference engine passed %d bytes", n, len(plain))
				}
				res, got := fetch(t, "GET", fast+path, "gzip")
				wantGzip := !peer.known || n >= GzipMinLength
				if enc := res.Header.Get("Content-Encoding"); (enc == "gzip") != wantGzip {
					t.Fatalf("%d bytes: Content-Encoding %q, want gzip=%v", n, enc, wantGzip)
				}
				if wantGzip {
					got = gunzip(t, got)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("%d bytes: got %d bytes that differ", n, len(got))
				}
			}
		})
	}
}

// A stream that pauses reaches the client as it comes: each event is sent
// before the peer writes the next, which it does only once the client
// has decoded the last one.
func TestGzipStreamsEvents(t *testing.T) {
	next, stop := make(chan struct{}), make(chan struct{})
	peer := newBackend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-stop:
				return
			}
		}
	})
	t.Cleanup(func() { close(stop) }) // before the peer closes, which waits for the handler
	url, _ := newFastProxy(t, Config{Gzip: GzipConfig{On: true, Types: []string{"text/event-stream"}}}, peer.backend(1))
	req, _ := http.NewRequest("GET", url+"/events", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := gzipClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		want := fmt.Sprintf("data: event %d\n\n", i)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(zr, got); err != nil || string(got) != want {
			t.Fatalf("event %d: %q, %v", i, got, err)
		}
		next <- struct{}{}
	}
	if rest, err := io.ReadAll(zr); err != nil || len(rest) != 0 {
		t.Fatalf("after the events: %q, %v", rest, err)
	}
}

// A client that leaves in the middle of a compressed answer frees the
// compressor and the peer connection, and the proxy goes on serving.
func TestGzipClientLeaves(t *testing.T) {
	var served atomic.Int64
	body := jsonish(rand.New(rand.NewPCG(2, 3)), 4<<20)
	peer := newBackend(t, "peer", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	url, _ := newFastProxy(t, gzipOn, peer.backend(1))
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.test\r\nAccept-Encoding: gzip\r\n\r\n")
	c.Read(make([]byte, 100))
	c.Close()
	res, got := fetch(t, "GET", url+"/", "gzip")
	if res.StatusCode != 200 || !bytes.Equal(gunzip(t, got), body) {
		t.Fatalf("status %d after a client left", res.StatusCode)
	}
}

// Validate refuses a level outside 1 to 9 and an empty type, and takes 0
// for the default level.
func TestGzipConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		g  GzipConfig
		ok bool
	}{
		{GzipConfig{On: true}, true},
		{GzipConfig{On: true, Level: 9, Types: []string{"application/json"}}, true},
		{GzipConfig{On: true, Level: 10}, false},
		{GzipConfig{On: true, Level: -1}, false},
		{GzipConfig{On: true, Types: []string{" "}}, false},
	} {
		if err := tt.g.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.g, err)
		}
	}
}

// repeating reads block over and over, left bytes in all.
type repeating struct {
	block []byte
	off   int
	left  int64
}

func (r *repeating) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	n := 0
	for n < len(p) {
		k := copy(p[n:], r.block[r.off:])
		n += k
		r.off = (r.off + k) % len(r.block)
	}
	r.left -= int64(n)
	return n, nil
}

// matching checks that what is written is the repeating block.
type matching struct {
	block []byte
	off   int
	n     int64
}

func (m *matching) Write(p []byte) (int, error) {
	for done := 0; done < len(p); {
		k := min(len(p)-done, len(m.block)-m.off)
		if !bytes.Equal(p[done:done+k], m.block[m.off:m.off+k]) {
			return done, fmt.Errorf("byte %d differs", m.n+int64(done))
		}
		done += k
		m.off = (m.off + k) % len(m.block)
	}
	m.n += int64(len(p))
	return len(p), nil
}

// A 1 GiB answer is compressed as it streams, in bounded memory, and
// decompresses to what the peer sent; an answer of known length, an
// eighth of it, too.
func TestLargeBodiesGzipInBoundedMemory(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() || raceEnabled {
		size = 128 << 20
	}
	block := jsonish(rand.New(rand.NewPCG(4, 5)), 100_003)
	peer := newBackend(t, "big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		n := size
		if r.URL.Path == "/length" {
			n = size / 8
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		}
		io.Copy(w, &repeating{block: block, left: n})
	})
	url, _ := newFastProxy(t, gzipOn, peer.backend(1))
	for _, path := range []string{"/length", "/chunked"} {
		t.Run(path[1:], func(t *testing.T) {
			size := size
			if path == "/length" {
				size /= 8
			}
			var peak atomic.Uint64
			stop := make(chan struct{})
			go watchHeap(&peak, stop)
			defer close(stop)
			req, _ := http.NewRequest("GET", url+path, nil)
			req.Header.Set("Accept-Encoding", "gzip")
			res, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("Content-Encoding %q", res.Header.Get("Content-Encoding"))
			}
			wire := &byteCount{}
			zr, err := gzip.NewReader(io.TeeReader(res.Body, wire))
			if err != nil {
				t.Fatal(err)
			}
			m := &matching{block: block}
			if _, err := io.Copy(m, zr); err != nil || m.n != size {
				t.Fatalf("decompressed %d of %d bytes: %v", m.n, size, err)
			}
			if p := peak.Load(); p > 64<<20 {
				t.Fatalf("heap peaked at %d MiB while compressing %d MiB", p>>20, size>>20)
			}
			t.Logf("%d MiB compressed to %d MiB; heap peak %d MiB", size>>20, wire.n>>20, peak.Load()>>20)
		})
	}
}

type byteCount struct{ n int64 }

func (w *byteCount) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// BenchmarkGzipSample is one keep-alive client fetching a 10 KiB JSON
// answer of a net/http peer compressed, as the gzip row of bench/ does.
func BenchmarkGzipSample(b *testing.B) {
	body := jsonish(rand.New(rand.NewPCG(6, 7)), 10<<10)
	peer := testutil.NewBackend(b, "sample", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	url, _ := newFastProxy(b, gzipOn, lb.Backend{ID: "sample", Name: "sample", Network: "tcp", Addr: peer.Addr(), Weight: 1})
	roundTrip := keepAliveClientWith(b, url, "Accept-Encoding: gzip\r\n")
	for i := 0; i < 100; i++ {
		roundTrip()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		roundTrip()
	}
}

// gzipCase fetches path with accept from the proxy at url (gzip on) and
// checks the answer: compressed or not, Vary, framing, body and ETag.
func gzipCase(t *testing.T, url, method, path, accept string, gzipped, wantVary bool, big string) {
	t.Helper()
	res, body := fetch(t, method, url+path, accept)
	enc := res.Header.Get("Content-Encoding")
	if (enc == "gzip") != gzipped {
		t.Fatalf("Content-Encoding %q, want gzip=%v", enc, gzipped)
	}
	vary := res.Header.Values("Vary")
	n := 0
	for _, v := range vary {
		n += strings.Count(strings.ToLower(v), "accept-encoding")
	}
	if want := map[bool]int{true: 1, false: 0}[wantVary]; n != want {
		t.Errorf("Vary %q names Accept-Encoding %d times, want %d", vary, n, want)
	}
	if method == "HEAD" {
		return
	}
	if gzipped {
		// Chunked over HTTP/1.1; HTTP/2 has no framing field, and no
		// length is known in advance.
		chunked := len(res.TransferEncoding) == 1 && res.TransferEncoding[0] == "chunked"
		if res.ContentLength != -1 || chunked == isH2(url) {
			t.Errorf("framing: Content-Length %d, Transfer-Encoding %q", res.ContentLength, res.TransferEncoding)
		}
		if res.Header.Get("Accept-Ranges") != "" {
			t.Errorf("Accept-Ranges %q kept on a compressed answer", res.Header.Get("Accept-Ranges"))
		}
		body = gunzip(t, body)
	}
	want := big
	if path == "/small" {
		want = big[:19]
	}
	if string(body) != want {
		t.Fatalf("body differs (%d bytes, want %d)", len(body), len(want))
	}
	switch path {
	case "/etag":
		if et := res.Header.Get("ETag"); et != `W/"v1"` {
			t.Errorf("ETag %q, want it weak", et)
		}
	case "/weak-etag":
		if et := res.Header.Get("ETag"); et != `W/"v1"` {
			t.Errorf("ETag %q, want it as it was", et)
		}
	}
}
