package httpwire

import (
	"bytes"
	"encoding/binary"
)

// Default limits of a [Parser].
const (
	// DefaultMaxHeadBytes bounds a message head: the start line, every field
	// line and the empty line that ends the head.
	DefaultMaxHeadBytes = 64 << 10
	// DefaultMaxHeaders bounds the number of field lines of a head.
	DefaultMaxHeaders = 100
)

// A Parser finds and parses message heads in a byte stream that arrives in
// pieces. It remembers how far it has searched for the end of an incomplete
// head, so that a head trickling in byte by byte is scanned once, not once
// per read.
//
// Use one Parser per byte stream (a client connection's requests or an
// upstream connection's responses), from one goroutine at a time. The zero
// value is ready to use with the default limits.
type Parser struct {
	// MaxHeadBytes bounds the length of a head; 0 means DefaultMaxHeadBytes.
	MaxHeadBytes int
	// MaxHeaders bounds the number of field lines; 0 means DefaultMaxHeaders.
	MaxHeaders int

	scan int // start of the first line not known to be complete
	line lineCheck
}

// Reset forgets a partly received head. Call it before parsing a different
// stream after a parse returned ErrNeedMore.
func (p *Parser) Reset() { p.scan, p.line = 0, lineCheck{} }

// headEnd returns the length of the head at the start of buf: up to and
// including the first empty line, where lines end in LF or CRLF, as
// textproto reads them (bufio.Reader.ReadLine).
func (p *Parser) headEnd(buf []byte) (int, error) {
	limit := p.MaxHeadBytes
	if limit <= 0 {
		limit = DefaultMaxHeadBytes
	}
	lim := buf
	if len(lim) > limit {
		lim = lim[:limit]
	}
	i := p.scan
	if i > len(lim) {
		i = 0
	}
	for {
		j := bytes.IndexByte(lim[i:], '\n')
		if j < 0 {
			break
		}
		j += i
		if j == i || j == i+1 && lim[i] == '\r' {
			p.scan = 0
			return j + 1, nil
		}
		i = j + 1
	}
	if len(buf) >= limit {
		p.scan = 0
		return 0, ErrHeadTooLarge
	}
	p.scan = i
	return 0, ErrNeedMore
}

func (p *Parser) maxHeaders() int {
	if p.MaxHeaders <= 0 {
		return DefaultMaxHeaders
	}
	return p.MaxHeaders
}

// A Header is one field line of a parsed head. Name and Value alias the
// parsed buffer.
type Header struct {
	Name  []byte // field name as received
	Value []byte // field value without leading and trailing SP and HTAB

	// Hop reports whether the field is hop-by-hop: Connection, Keep-Alive,
	// Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
	// Transfer-Encoding, Upgrade (httputil.ReverseProxy's list), or a name
	// listed in a Connection field.
	Hop bool

	kind kind
}

// Headers is the list of field lines of a head, in the order received.
type Headers []Header

// Get returns the value of the first field named name, compared ASCII
// case-insensitively, and whether there is one.
func (hs Headers) Get(name string) ([]byte, bool) {
	for i := range hs {
		if equalFold(hs[i].Name, name) {
			return hs[i].Value, true
		}
	}
	return nil, false
}

// ConnTokens records the options listed in Connection fields.
type ConnTokens uint8

const (
	ConnClose     ConnTokens = 1 << iota // "close"
	ConnKeepAlive                        // "keep-alive"
	ConnUpgrade                          // "upgrade"
	ConnOther                            // any other token: a field name to drop
)

// Framing says how a message body is delimited on the wire.
type Framing uint8

const (
	NoBody   Framing = iota // no body follows the head
	ByLength                // ContentLength bytes follow the head
	ByChunks                // a chunked body follows; see Chunked
	ByClose                 // the body runs until the connection closes (responses only)
)

// kind identifies the fields the parser and the forwarding helpers act on.
type kind uint8

const (
	kOther kind = iota
	kHost
	kContentLength
	kTransferEncoding
	kConnection
	kKeepAlive
	kProxyConnection
	kProxyAuthenticate
	kProxyAuthorization
	kTE
	kTrailer
	kUpgrade
	kExpect
	// The forwarded fields stay last: AppendRequest tells them by
	// kind >= kXForwardedFor.
	kXForwardedFor
	kXForwardedHost
	kXForwardedProto
	kForwarded
	kXRealIP
	kTrueClientIP
)

// hopKind reports the fields of httputil.ReverseProxy's hopHeaders.
func hopKind(k kind) bool {
	switch k {
	case kTransferEncoding, kConnection, kKeepAlive, kProxyConnection,
		kProxyAuthenticate, kProxyAuthorization, kTE, kTrailer, kUpgrade:
		return true
	}
	return false
}

func lookupKind(n []byte) kind {
	switch len(n) {
	case 2:
		if equalFold(n, "te") {
			return kTE
		}
	case 4:
		if equalFold(n, "host") {
			return kHost
		}
	case 6:
		if equalFold(n, "expect") {
			return kExpect
		}
	case 7:
		if equalFold(n, "trailer") {
			return kTrailer
		}
		if equalFold(n, "upgrade") {
			return kUpgrade
		}
	case 9:
		if equalFold(n, "forwarded") {
			return kForwarded
		}
		if equalFold(n, "x-real-ip") {
			return kXRealIP
		}
	case 10:
		if equalFold(n, "connection") {
			return kConnection
		}
		if equalFold(n, "keep-alive") {
			return kKeepAlive
		}
	case 14:
		if equalFold(n, "content-length") {
			return kContentLength
		}
		if equalFold(n, "true-client-ip") {
			return kTrueClientIP
		}
	case 15:
		if equalFold(n, "x-forwarded-for") {
			return kXForwardedFor
		}
	case 16:
		if equalFold(n, "proxy-connection") {
			return kProxyConnection
		}
		if equalFold(n, "x-forwarded-host") {
			return kXForwardedHost
		}
	case 17:
		if equalFold(n, "transfer-encoding") {
			return kTransferEncoding
		}
		if equalFold(n, "x-forwarded-proto") {
			return kXForwardedProto
		}
	case 18:
		if equalFold(n, "proxy-authenticate") {
			return kProxyAuthenticate
		}
	case 19:
		if equalFold(n, "proxy-authorization") {
			return kProxyAuthorization
		}
	}
	return kOther
}

// Byte classes.
const (
	cToken = 1 << iota // tchar (RFC 9110 section 5.6.2; httpguts isTokenTable)
	cValue             // field-value byte: HTAB, SP, VCHAR, obs-text (textproto validHeaderValueByte)
	cHost              // httpguts validHostByte
	cHex               // HEXDIG
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if c == '\t' || c >= 0x20 && c != 0x7f {
			t[c] |= cValue
		}
		alnum := '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if alnum {
			t[c] |= cToken | cHost
		}
		if '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' {
			t[c] |= cHex
		}
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] |= cToken
	}
	for _, c := range []byte("!$%&()*+,-.:;=['_~]") {
		t[c] |= cHost
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if class[c]&cToken == 0 {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b and s are equal under ASCII case folding.
func equalFold[S ~string | ~[]byte](b []byte, s S) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// validValue reports whether v holds only field-value bytes: no control
// byte other than HTAB. It tests eight bytes at a time for a byte below
// 0x20 or equal to 0x7f and looks at single bytes only from there.
func validValue(v []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(v) >= 8 {
		x := binary.LittleEndian.Uint64(v)
		d := x ^ ones*0x7f
		if ((x-ones*0x20)&^x|(d-ones)&^d)&highs != 0 {
			break
		}
		v = v[8:]
	}
	for _, c := range v {
		if class[c]&cValue == 0 {
			return false
		}
	}
	return true
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// nextElement splits the first element off a comma-separated list, trimmed
// of OWS (httpguts headerValueContainsToken, net/http foreachHeaderElement).
func nextElement(v []byte) (elem, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		return trimOWS(v[:i]), v[i+1:]
	}
	return trimOWS(v), nil
}

// containsToken reports whether the list v has the element token
// (httpguts.HeaderValuesContainsToken for one value).
func containsToken(v []byte, token string) bool {
	for len(v) > 0 {
		var e []byte
		e, v = nextElement(v)
		if equalFold(e, token) {
			return true
		}
	}
	return false
}

// hasToken is net/http's hasToken (header.go): token occurs in v with
// space, tab or comma boundaries. The server uses it on the first value of
// Connection and Expect.
func hasToken(v []byte, token string) bool {
	if len(token) > len(v) {
		return false
	}
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if sp > 0 && !isTokenBoundary(v[sp-1]) {
			continue
		}
		if end := sp + len(token); end != len(v) && !isTokenBoundary(v[end]) {
			continue
		}
		if equalFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func isTokenBoundary(c byte) bool { return c == ' ' || c == ',' || c == '\t' }

// facts collects what the framing rules need while fields are parsed.
type facts struct {
	hosts, cls, tes int
	host, cl, te    []byte
	clConflict      bool
	conn            ConnTokens
	connFirst       []byte
	hasConn         bool
	upgrade         []byte
	hasUpgrade      bool
	expect          []byte
	hasExpect       bool
	teTrailers      bool
	trailer         bool
}

// parseFields parses the field lines of head from pos up to the empty line
// that ends it, with textproto's readMIMEHeader rules except obs-fold and
// names with spaces, which it rejects.
func parseFields(head []byte, pos int, hs *Headers, max int, f *facts) error {
	for {
		nl := pos + bytes.IndexByte(head[pos:], '\n')
		line := head[pos:nl]
		pos = nl + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			break
		}
		if isOWS(line[0]) {
			// textproto joins such a line to the previous field, or
			// rejects it as the first one ("malformed MIME header initial line").
			return ErrObsFold
		}
		k := 0
		for k < len(line) && class[line[k]]&cToken != 0 {
			k++
		}
		switch {
		case k == len(line):
			return ErrHeaderLine
		case line[k] != ':' || k == 0:
			if bytes.IndexByte(line[k:], ':') < 0 {
				return ErrHeaderLine
			}
			return ErrHeaderName
		}
		v := trimOWS(line[k+1:])
		if !validValue(v) {
			return ErrHeaderValue
		}
		if len(*hs) >= max {
			return ErrTooManyHeaders
		}
		h := Header{Name: line[:k], Value: v, kind: lookupKind(line[:k])}
		h.Hop = hopKind(h.kind)
		switch h.kind {
		case kHost:
			if f.hosts++; f.hosts == 1 {
				f.host = v
			}
		case kContentLength:
			if f.cls++; f.cls == 1 {
				f.cl = v
			} else if !bytes.Equal(f.cl, v) {
				f.clConflict = true
			}
		case kTransferEncoding:
			if f.tes++; f.tes == 1 {
				f.te = v
			}
		case kConnection:
			if !f.hasConn {
				f.connFirst, f.hasConn = v, true
			}
			for rest := v; len(rest) > 0; {
				var e []byte
				e, rest = nextElement(rest)
				switch {
				case len(e) == 0:
				case equalFold(e, "close"):
					f.conn |= ConnClose
				case equalFold(e, "keep-alive"):
					f.conn |= ConnKeepAlive
				case equalFold(e, "upgrade"):
					f.conn |= ConnUpgrade
				default:
					f.conn |= ConnOther
				}
			}
		case kTE:
			f.teTrailers = f.teTrailers || containsToken(v, "trailers")
		case kUpgrade:
			if !f.hasUpgrade {
				f.upgrade, f.hasUpgrade = v, true
			}
		case kExpect:
			if !f.hasExpect {
				f.expect, f.hasExpect = v, true
			}
		case kTrailer:
			f.trailer = true
		}
		*hs = append(*hs, h)
	}
	if f.conn&ConnOther != 0 {
		markListed(*hs)
	}
	return nil
}

// markListed marks the fields named in a Connection field as hop-by-hop
// (RFC 9110 section 7.6.1; httputil removeHopByHopHeaders).
func markListed(hs Headers) {
	for i := range hs {
		if hs[i].kind != kConnection {
			continue
		}
		for v := hs[i].Value; len(v) > 0; {
			var e []byte
			e, v = nextElement(v)
			if len(e) == 0 {
				continue
			}
			for j := range hs {
				if !hs[j].Hop && len(hs[j].Name) == len(e) && equalFold(hs[j].Name, e) {
					hs[j].Hop = true
				}
			}
		}
	}
}

// checkFraming applies the Content-Length, Transfer-Encoding and Trailer
// rules shared by requests and responses (transfer.go: readTransfer).
// minor is the HTTP/1.x minor version. It returns the declared length (-1
// if none) and whether the body is chunked.
func checkFraming(f *facts, minor int, hs Headers) (cl int64, chunked bool, err error) {
	// parseTransferEncoding: ignored before HTTP/1.1; exactly one field
	// whose value is "chunked" (ASCII case-insensitive) otherwise.
	if f.tes > 0 && minor >= 1 {
		if f.tes > 1 || !equalFold(f.te, "chunked") {
			return 0, false, ErrTransferEncoding
		}
		chunked = true
	}
	// fixLength: differing repeated values are an error, identical ones
	// collapse; parseContentLength: empty or not a uint63 is an error.
	cl = -1
	if f.cls > 0 {
		if f.clConflict {
			return 0, false, ErrMultipleContentLength
		}
		var ok bool
		if cl, ok = parseContentLength(f.cl); !ok {
			return 0, false, ErrContentLength
		}
	}
	// fixTrailer: a chunked message may not announce these as trailers.
	if chunked && f.trailer {
		for i := range hs {
			if hs[i].kind != kTrailer {
				continue
			}
			for v := hs[i].Value; len(v) > 0; {
				var e []byte
				e, v = nextElement(v)
				if equalFold(e, "transfer-encoding") || equalFold(e, "trailer") || equalFold(e, "content-length") {
					return 0, false, ErrTrailerField
				}
			}
		}
	}
	return cl, chunked, nil
}

// parseContentLength mirrors strconv.ParseUint(v, 10, 63).
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	const max = 1<<63 - 1
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (max-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return int64(n), true
}

// parseVersion mirrors net/http's ParseHTTPVersion: "HTTP/" DIGIT "." DIGIT.
func parseVersion(v []byte) (major, minor int, ok bool) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' ||
		v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, 0, false
	}
	return int(v[5] - '0'), int(v[7] - '0'), true
}

// firstLine returns the first line of head without its LF or CRLF and the
// offset of the next line.
func firstLine(head []byte) (line []byte, next int) {
	nl := bytes.IndexByte(head, '\n')
	line = head[:nl]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nl + 1
}

// LeadingCRLF returns how many of the first four bytes of buf are CR or LF.
// net/http's server discards them before reading a request that follows a
// POST, a tolerance for old clients that send CRLF after a body (RFC 9112
// section 2.2); a forwarder does the same before ParseRequest.
func LeadingCRLF(buf []byte) int {
	n := 0
	for n < len(buf) && n < 4 && (buf[n] == '\r' || buf[n] == '\n') {
		n++
	}
	return n
}
