package httpwire

import "bytes"

// Limits of net/http's chunked reader (net/http/internal/chunked.go and
// transfer.go), with its default 4096-byte bufio.Reader.
const (
	maxChunkLine   = 4096     // a chunk-size line, CRLF included (bufio ReadSlice)
	maxTrailer     = 4096     // the trailer section, final CRLF included (seeUpcomingDoubleCRLF)
	maxChunkExcess = 16 << 10 // framing bytes beyond 16 per chunk plus twice the data
)

// Chunked states.
const (
	stSizeStart    uint8 = iota // first byte of a chunk-size line
	stSize                      // in the hex digits
	stSizeWS                    // in white space after the digits
	stExt                       // in a chunk extension
	stSizeLF                    // after the CR of a chunk-size line
	stData                      // in chunk data
	stDataCR                    // after chunk data
	stDataLF                    // after the CR following chunk data
	stTrailerStart              // at the start of a trailer line
	stTrailerName               // in a trailer field name
	stTrailerValue              // in a trailer field value
	stTrailerLF                 // after the CR of a trailer field line
	stTrailerEnd                // after the CR of the empty line
	stDone                      // after the body
	stFailed                    // after an error
)

// Chunked follows a body in the chunked transfer coding as it arrives in
// pieces, validating every byte as strictly as net/http's chunked reader
// and its trailer reading, so that the bytes can be passed on unchanged
// and the end of the message, where the next one starts on a persistent
// connection, is known exactly.
//
// A Chunked holds no reference to the buffers it is given. The zero value
// is ready to follow one body; Reset it for the next. It is used by one
// goroutine at a time.
type Chunked struct {
	state   uint8
	digits  uint8
	size    uint64 // chunk size while reading its line, then data left
	line    int    // bytes of the current chunk-size line
	trailer int    // bytes of the trailer section
	excess  int64  // net/http's chunkedReader.excess
	err     error
}

// Reset prepares c to follow a new body.
func (c *Chunked) Reset() { *c = Chunked{} }

// Done reports whether the whole body, trailer section included, has been
// seen.
func (c *Chunked) Done() bool { return c.state == stDone }

// Scan follows the next bytes of the body, p, and returns how many of them
// belong to the body. Unless done, n == len(p) and the body continues in
// the next bytes; when done, p[:n] ends the body and p[n:] starts the next
// message. After an error the body is malformed and the connection must
// not be reused; later calls return the same error.
func (c *Chunked) Scan(p []byte) (n int, done bool, err error) {
	for n < len(p) && c.state != stDone {
		if c.state == stData {
			k := len(p) - n
			if uint64(k) >= c.size {
				k = int(c.size)
				c.state = stDataCR
			}
			c.size -= uint64(k)
			n += k
			continue
		}
		k, err := c.framing(p[n:])
		n += k
		if err != nil {
			return n, false, err
		}
	}
	if c.err != nil {
		return n, false, c.err
	}
	return n, c.state == stDone, nil
}

// TrailerLen is how many bytes of the trailer section, its empty last
// line included, have been followed. The section ends the body: a caller
// that drops trailer fields passes on the body but for these bytes, then
// an empty line.
func (c *Chunked) TrailerLen() int { return c.trailer }

// Decode is Scan for a reader that needs the data itself (for example to
// send the body unchunked to an HTTP/1.0 client): it follows p up to the end
// of the first run of chunk data and returns how many bytes of p it used and
// that data, a subslice of p. Call it again with p[n:] until p is used up or
// done is true; trailer fields are validated and skipped.
func (c *Chunked) Decode(p []byte) (n int, data []byte, done bool, err error) {
	for n < len(p) && c.state != stDone {
		if c.state == stData {
			k := len(p) - n
			if uint64(k) >= c.size {
				k = int(c.size)
				c.state = stDataCR
			}
			c.size -= uint64(k)
			data = p[n : n+k]
			return n + k, data, false, nil
		}
		k, err := c.framing(p[n:])
		n += k
		if err != nil {
			return n, nil, false, err
		}
	}
	if c.err != nil {
		return n, nil, false, c.err
	}
	return n, nil, c.state == stDone, nil
}

func (c *Chunked) fail(err *Error) error {
	c.state, c.err = stFailed, err
	return err
}

// framing consumes framing bytes from p until chunk data starts, the body
// ends, p is used up, or an error.
func (c *Chunked) framing(p []byte) (int, error) {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch c.state {
		case stFailed:
			return i, c.err
		case stSizeStart, stSize, stSizeWS, stExt, stSizeLF:
			// readChunkLine: the line, CRLF included, fits the 4096-byte
			// bufio buffer, ends in CRLF and has no other CR.
			if c.state == stSizeStart {
				c.line = 0
			}
			// bufio.Reader.ReadSlice fails once its buffer is full
			// without an LF.
			if c.line++; c.line > maxChunkLine || c.line == maxChunkLine && b != '\n' {
				return i, c.fail(ErrChunkLineTooLong)
			}
			switch {
			case c.state == stSizeLF:
				if b != '\n' {
					return i, c.fail(ErrChunkFraming)
				}
				if err := c.endSizeLine(); err != nil {
					return i, err
				}
				if c.state == stData {
					return i + 1, nil
				}
				continue
			case b == '\n':
				return i, c.fail(ErrChunkFraming)
			case b == '\r' && c.state != stSizeStart:
				c.state = stSizeLF
			case c.state == stExt:
				// removeChunkExtension: anything up to CRLF.
			case c.state == stSizeWS:
				// trimTrailingWhitespace runs before the extension is cut,
				// so white space may only end the line.
				if !isOWS(b) {
					return i, c.fail(ErrChunkSize)
				}
			case class[b]&cHex != 0 && c.state != stSizeWS:
				// parseHexUint: at most 16 digits.
				if c.digits == 16 {
					return i, c.fail(ErrChunkSizeTooLarge)
				}
				c.digits++
				c.size = c.size<<4 | uint64(unhex(b))
				c.state = stSize
			case c.state == stSize && b == ';':
				c.state = stExt
			case c.state == stSize && isOWS(b):
				c.state = stSizeWS
			default:
				return i, c.fail(ErrChunkSize)
			}
		case stDataCR:
			if b != '\r' {
				return i, c.fail(ErrChunkFraming)
			}
			c.state = stDataLF
		case stDataLF:
			if b != '\n' {
				return i, c.fail(ErrChunkFraming)
			}
			c.state = stSizeStart
		default:
			// The trailer section: field lines as in a head, each ending
			// in CRLF, then CRLF (readTrailer, textproto.ReadMIMEHeader).
			// seeUpcomingDoubleCRLF gives up when its 4096-byte peek
			// does not end the section.
			if c.trailer++; c.trailer > maxTrailer || c.trailer == maxTrailer && (c.state != stTrailerEnd || b != '\n') {
				return i, c.fail(ErrTrailerTooLarge)
			}
			switch c.state {
			case stTrailerStart:
				switch {
				case b == '\r':
					c.state = stTrailerEnd
				case class[b]&cToken != 0:
					c.state = stTrailerName
				default:
					return i, c.fail(ErrTrailer)
				}
			case stTrailerName:
				switch {
				case b == ':':
					c.state = stTrailerValue
				case class[b]&cToken == 0:
					return i, c.fail(ErrTrailer)
				}
			case stTrailerValue:
				switch {
				case b == '\r':
					c.state = stTrailerLF
				case class[b]&cValue == 0:
					return i, c.fail(ErrTrailer)
				}
			case stTrailerLF:
				if b != '\n' {
					return i, c.fail(ErrTrailer)
				}
				c.state = stTrailerStart
			case stTrailerEnd:
				if b != '\n' {
					return i, c.fail(ErrTrailer)
				}
				c.state = stDone
				return i + 1, nil
			}
		}
	}
	return len(p), nil
}

// endSizeLine is chunkedReader.beginChunk after the line is read.
func (c *Chunked) endSizeLine() error {
	if c.digits == 0 {
		return c.fail(ErrChunkSize)
	}
	c.excess += int64(c.line) // len(line) + 2 for the CRLF
	c.excess -= 16 + (2 * int64(c.size))
	c.excess = max(c.excess, 0)
	c.digits = 0
	if c.size == 0 {
		// The last chunk: net/http reports io.EOF here even when the
		// excess is too large.
		c.state, c.trailer = stTrailerStart, 0
		return nil
	}
	if c.excess > maxChunkExcess {
		return c.fail(ErrChunkOverhead)
	}
	c.state = stData
	return nil
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// VisitTrailerFields calls emit with each field of a trailer section that
// may be passed on with the answer r, in the order received: section is
// the section as [Chunked] followed it (its last TrailerLen bytes, the
// empty line included). Fields that must not travel in a trailer are
// left out: the hop-by-hop ones (see [Header.Hop], names listed in r's
// Connection fields included) and those of framing and routing,
// Content-Length and Host. Name and value alias section; the value is
// trimmed of OWS. A line that is not a field, which Chunked does not let
// through, is skipped.
func VisitTrailerFields(section []byte, r *Response, emit func(name, value []byte)) {
	for len(section) > 0 {
		line := section
		if i := bytes.IndexByte(section, '\n'); i >= 0 {
			line, section = section[:i], section[i+1:]
		} else {
			section = nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			return // the empty line ends the section
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 || !isToken(line[:i]) {
			continue
		}
		name := line[:i]
		switch k := lookupKind(name); {
		case hopKind(k), k == kContentLength, k == kHost, listedInConnection(r, name):
			continue
		}
		emit(name, trimOWS(line[i+1:]))
	}
}

// listedInConnection reports whether a Connection field of r lists name,
// which makes a field of that name hop-by-hop.
func listedInConnection(r *Response, name []byte) bool {
	if r.Connection&ConnOther == 0 {
		return false
	}
	for i := range r.Headers {
		if r.Headers[i].kind != kConnection {
			continue
		}
		for v := r.Headers[i].Value; len(v) > 0; {
			var e []byte
			e, v = nextElement(v)
			if equalFold(e, name) {
				return true
			}
		}
	}
	return false
}
