package httpwire

import (
	"strings"
	"testing"
)

// decodeAll runs Decode over in, in pieces of at most step bytes, and
// returns the data, the bytes of in used, done and the error.
func decodeAll(in string, step int) (data string, n int, done bool, err error) {
	var c Chunked
	var out []byte
	for n < len(in) && !done && err == nil {
		end := min(n+step, len(in))
		p := []byte(in[n:end])
		for len(p) > 0 && !done && err == nil {
			k, d, fin, e := c.Decode(p)
			out = append(out, d...)
			p = p[k:]
			n += k
			done, err = fin, e
		}
	}
	return string(out), n, done, err
}

func TestChunked(t *testing.T) {
	tests := []struct {
		name string
		in   string
		data string
		n    int // body length when done, else bytes used before the error
		done bool
		err  error
	}{
		{"last chunk only", "0\r\n\r\n", "", 5, true, nil},
		{"two chunks and the next message", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET /", "hello world", 26, true, nil},
		{"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", 20, true, nil},
		{"extensions", "5;a=b;c=\"d;e\"\r\nhello\r\n0;last\r\n\r\n", "hello", 32, true, nil},
		{"white space before CRLF", "5 \t\r\nhello\r\n0\r\n\r\n", "hello", 17, true, nil},
		{"white space after extension", "5;x \r\nhello\r\n0\r\n\r\n", "hello", 18, true, nil},
		{"16 digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", "hello", 30, true, nil},
		{"trailer fields", "0\r\nX-Sum: 1\r\nY:\r\n\r\nNEXT", "", 19, true, nil},
		{"incomplete data", "5\r\nhel", "hel", 6, false, nil},
		{"incomplete trailer", "0\r\nX-Sum: 1\r\n", "", 13, false, nil},
		{"17 digits", "00000000000000005\r\n", "", 16, false, ErrChunkSizeTooLarge},
		{"white space before extension", "5 ;x\r\n", "", 2, false, ErrChunkSize},
		{"leading white space", " 5\r\n", "", 0, false, ErrChunkSize},
		{"empty size", "\r\n", "", 0, false, ErrChunkSize},
		{"extension only", ";x\r\n", "", 0, false, ErrChunkSize},
		{"0x prefix", "0x5\r\n", "", 1, false, ErrChunkSize},
		{"sign", "+5\r\n", "", 0, false, ErrChunkSize},
		{"bare LF after size", "5\nhello", "", 1, false, ErrChunkFraming},
		{"bare LF in extension", "5;x\nhello", "", 3, false, ErrChunkFraming},
		{"CR in extension", "5;a\rb\r\n", "", 4, false, ErrChunkFraming},
		{"bare LF after data", "5\r\nhello\n0\r\n\r\n", "hello", 8, false, ErrChunkFraming},
		{"data too long", "5\r\nhelloXX", "hello", 8, false, ErrChunkFraming},
		{"bare LF ends trailer", "0\r\nX: 1\n\r\n", "", 7, false, ErrTrailer},
		{"bare LF blank line", "0\r\n\n", "", 3, false, ErrTrailer},
		{"folded trailer", "0\r\nX: 1\r\n y\r\n\r\n", "", 9, false, ErrTrailer},
		{"space in trailer name", "0\r\nX Y: 1\r\n\r\n", "", 4, false, ErrTrailer},
		{"trailer without colon", "0\r\nX\r\n\r\n", "", 4, false, ErrTrailer},
		{"NUL in trailer", "0\r\nX: \x00\r\n\r\n", "", 6, false, ErrTrailer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{1, 2, 3, 7, len(tt.in)} {
				data, n, done, err := decodeAll(tt.in, max(step, 1))
				if data != tt.data || n != tt.n || done != tt.done || err != tt.err {
					t.Errorf("Decode(%q) in steps of %d = %q, %d, %v, %v; want %q, %d, %v, %v",
						tt.in, step, data, n, done, err, tt.data, tt.n, tt.done, tt.err)
				}
			}
			var c Chunked
			n, done, err := c.Scan([]byte(tt.in))
			if n != tt.n || done != tt.done || err != tt.err {
				t.Errorf("Scan(%q) = %d, %v, %v; want %d, %v, %v", tt.in, n, done, err, tt.n, tt.done, tt.err)
			}
			if err != nil {
				if _, _, again := c.Scan([]byte("0\r\n\r\n")); again != err {
					t.Errorf("Scan after %v = %v", err, again)
				}
			}
		})
	}
}

func TestChunkedLimits(t *testing.T) {
	scan := func(in string) (int, bool, error) {
		var c Chunked
		return c.Scan([]byte(in))
	}
	// A size line of 4096 bytes with its CRLF is accepted, 4097 is not.
	line := "1;" + strings.Repeat("x", maxChunkLine-4) + "\r\n"
	if _, done, err := scan(line + "a\r\n0\r\n\r\n"); !done || err != nil {
		t.Errorf("4096-byte size line: %v %v", done, err)
	}
	line = "1;" + strings.Repeat("x", maxChunkLine-3) + "\r\n"
	if _, _, err := scan(line); err != ErrChunkLineTooLong {
		t.Errorf("4097-byte size line: %v", err)
	}
	if _, _, err := scan(line[:maxChunkLine]); err != ErrChunkLineTooLong {
		t.Errorf("4096 bytes of a size line without LF: %v", err)
	}
	// A trailer section of 4096 bytes is accepted, 4097 is not.
	field := "X: " + strings.Repeat("v", maxTrailer-7) + "\r\n\r\n"
	if _, done, err := scan("0\r\n" + field); !done || err != nil {
		t.Errorf("4096-byte trailer: %v %v", done, err)
	}
	field = "X: " + strings.Repeat("v", maxTrailer-6) + "\r\n\r\n"
	if _, _, err := scan("0\r\n" + field); err != ErrTrailerTooLarge {
		t.Errorf("4097-byte trailer: %v", err)
	}
	if _, _, err := scan("0\r\n" + field[:maxTrailer]); err != ErrTrailerTooLarge {
		t.Errorf("4096 bytes of a trailer without its end: %v", err)
	}
	// One-byte chunks are fine; one-byte chunks padded with extensions
	// exceed net/http's overhead allowance after 16 KiB.
	if _, done, err := scan(strings.Repeat("1\r\nx\r\n", 10000) + "0\r\n\r\n"); !done || err != nil {
		t.Errorf("one-byte chunks: %v %v", done, err)
	}
	padded := strings.Repeat("1;"+strings.Repeat("e", 100)+"\r\nx\r\n", 200)
	if _, _, err := scan(padded); err != ErrChunkOverhead {
		t.Errorf("padded chunks: %v", err)
	}
	// The largest size is accepted; its data is then awaited.
	var c Chunked
	if n, done, err := c.Scan([]byte("ffffffffffffffff\r\nabc")); n != 21 || done || err != nil {
		t.Errorf("largest chunk: %d %v %v", n, done, err)
	}
}

func TestChunkedReset(t *testing.T) {
	var c Chunked
	if _, _, err := c.Scan([]byte("x")); err == nil {
		t.Fatal("no error")
	}
	c.Reset()
	if n, done, err := c.Scan([]byte("0\r\n\r\n")); n != 5 || !done || err != nil || !c.Done() {
		t.Errorf("after Reset: %d %v %v", n, done, err)
	}
	if n, done, err := c.Scan([]byte("more")); n != 0 || !done || err != nil {
		t.Errorf("after done: %d %v %v", n, done, err)
	}
	var d Chunked
	if n, data, done, err := d.Decode(nil); n != 0 || data != nil || done || err != nil {
		t.Errorf("Decode(nil) = %d %q %v %v", n, data, done, err)
	}
}

func TestVisitTrailerFields(t *testing.T) {
	tests := []struct {
		name, head, body string
		want             []string // name=value
	}{
		{"fields, OWS trimmed", "", "0\r\nX-Sum: 1\r\nY:\r\nZ: \t a b \t\r\n\r\n", []string{"X-Sum=1", "Y=", "Z=a b"}},
		{"no fields", "", "0\r\n\r\n", nil},
		{"hop-by-hop, framing and routing dropped", "",
			"0\r\nConnection: x\r\nKeep-Alive: 1\r\nTE: trailers\r\nTrailer: X\r\nTransfer-Encoding: chunked\r\n" +
				"Upgrade: h2c\r\nProxy-Connection: x\r\nProxy-Authenticate: x\r\nProxy-Authorization: x\r\n" +
				"content-length: 3\r\nHOST: x\r\nX-Ok: 1\r\n\r\n", []string{"X-Ok=1"}},
		{"names the head's Connection lists dropped", "Connection: x-secret, close\r\n",
			"0\r\nX-Secret: 1\r\nx-secret: 2\r\nX-Ok: 1\r\n\r\n", []string{"X-Ok=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + tt.head + "\r\n"
			var p Parser
			var r Response
			if err := p.ParseResponse(&r, []byte(head), false); err != nil {
				t.Fatal(err)
			}
			// The section as Chunked followed it.
			var c Chunked
			body := []byte(tt.body)
			n, done, err := c.Scan(body)
			if !done || err != nil || n != len(body) {
				t.Fatalf("Scan: %d %v %v", n, done, err)
			}
			section := body[n-c.TrailerLen() : n]
			var got []string
			VisitTrailerFields(section, &r, func(name, value []byte) {
				got = append(got, string(name)+"="+string(value))
			})
			if strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Errorf("fields %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVisitTrailerFieldsAllocatesNothing(t *testing.T) {
	var p Parser
	var r Response
	if err := p.ParseResponse(&r, []byte("HTTP/1.1 200 OK\r\nConnection: x-a\r\nTransfer-Encoding: chunked\r\n\r\n"), false); err != nil {
		t.Fatal(err)
	}
	section := []byte("X-Sum: 1\r\nX-A: 2\r\nHost: x\r\n\r\n")
	var count int
	emit := func(name, value []byte) { count++ }
	if n := testing.AllocsPerRun(100, func() { VisitTrailerFields(section, &r, emit) }); n != 0 {
		t.Errorf("%v allocations per section", n)
	}
	if count != 101 { // AllocsPerRun runs it once more to warm up
		t.Errorf("%d fields in 101 runs, want one each", count)
	}
}
