package httpwire

import (
	"bytes"
	"net/url"
)

// A Request is a parsed request head. Its byte slices alias the buffer
// given to [Parser.ParseRequest]: they are valid until that buffer is
// modified or reused, and the next ParseRequest into the same Request
// overwrites them. Reusing a Request reuses its Headers storage, so
// parsing allocates nothing once Headers has grown to its working size.
type Request struct {
	Method []byte // method token, e.g. "GET"
	Target []byte // request-target as received
	// Path is the target's path and query: Target itself in origin-form,
	// the part after "scheme:" and the authority in absolute-form (empty
	// when the URL has no path), and Target for "*" and for CONNECT's
	// authority-form.
	Path    []byte
	Minor   int     // minor version of HTTP/1.x: 0 or 1 (net/http also takes 2-9)
	Headers Headers // field lines in order
	HeadLen int     // length of the head; the body starts at buf[HeadLen]

	// Host is the request's host: the authority of an absolute-form or
	// authority-form target if it has one (as received, %-escapes
	// included), else the Host field, else empty (HTTP/1.0).
	Host []byte

	ContentLength int64   // the Content-Length value, -1 if absent
	Chunked       bool    // Transfer-Encoding: chunked
	Framing       Framing // NoBody, ByLength or ByChunks

	// Close reports that the client connection closes after this
	// exchange: HTTP/1.0 without "Connection: keep-alive", or a
	// "Connection: close" (net/http's Request.Close or wantsClose).
	Close      bool
	Connection ConnTokens // options listed in Connection fields

	// Upgrade is the protocol the client asks to switch to: the first
	// Upgrade value when Connection lists "upgrade" (httputil.ReverseProxy's
	// upgradeType); nil otherwise.
	Upgrade []byte

	// ExpectContinue reports "Expect: 100-continue". A server sends
	// "100 Continue" only to HTTP/1.1 requests with a body.
	ExpectContinue bool
	// ExpectOther reports another, non-empty Expect value; net/http answers
	// 417 Expectation Failed and closes the connection.
	ExpectOther bool
	// TETrailers reports that a TE field lists "trailers".
	TETrailers bool
}

// ParseRequest parses the request head at the start of buf into r.
//
// It returns ErrNeedMore if buf holds no complete head yet: append more
// bytes to buf and call again with the same buffer contents at its start;
// the search resumes where it stopped. Any other error is an [*Error] and
// the request must be rejected with its Status; r's content is then
// unspecified. Bytes after the head (r.HeadLen onwards) are not examined.
//
// The rules are those of net/http's http.ReadRequest plus the checks its
// server adds in conn.readRequest, with the exceptions the package
// documentation lists.
func (p *Parser) ParseRequest(r *Request, buf []byte) error {
	end, err := p.headEnd(buf)
	if err == ErrNeedMore {
		// A start that can never become a request (a TLS handshake, a
		// line without a version) is refused now, not when the header
		// timeout ends the wait for the rest of a head.
		if err := p.line.check(buf); err != nil {
			p.Reset()
			return err
		}
		return ErrNeedMore
	}
	p.line = lineCheck{}
	if err != nil {
		return err
	}
	head := buf[:end]
	*r = Request{Headers: r.Headers[:0], HeadLen: end}

	line, next := firstLine(head)
	var minor int
	if r.Method, r.Target, _, minor, err = parseRequestLine(line); err != nil {
		return err
	}
	r.Minor = minor
	connect := string(r.Method) == "CONNECT"
	urlHost, path, ok := parseTarget(r.Target, connect)
	if !ok {
		return ErrTarget
	}
	r.Path = path

	var f facts
	if err := parseFields(head, next, &r.Headers, p.maxHeaders(), &f); err != nil {
		return err
	}

	// request.go: "too many Host headers"; server.go: Host required from
	// HTTP/1.1 on except for CONNECT, and must pass ValidHostHeader.
	if f.hosts > 1 {
		return ErrMultipleHost
	}
	if f.hosts == 0 && minor >= 1 && !connect {
		return ErrMissingHost
	}
	for _, c := range f.host {
		if class[c]&cHost == 0 {
			return ErrHost
		}
	}
	r.Host = urlHost
	if len(r.Host) == 0 {
		r.Host = f.host
	}

	// Stricter: Transfer-Encoding on HTTP/1.0 (net/http ignores it) and
	// together with Content-Length (net/http drops Content-Length).
	if f.tes > 0 && minor == 0 {
		return ErrTransferEncoding10
	}
	r.ContentLength, r.Chunked, err = checkFraming(&f, minor, r.Headers)
	if err != nil {
		return err
	}
	switch {
	case r.Chunked && f.cls > 0:
		return ErrLengthAndChunked
	case r.Chunked:
		r.Framing = ByChunks
	case r.ContentLength > 0:
		r.Framing = ByLength
	}

	// transfer.go: shouldClose; server.go: wantsClose.
	r.Connection = f.conn
	if minor == 0 {
		r.Close = f.conn&ConnClose != 0 || f.conn&ConnKeepAlive == 0
	} else {
		r.Close = f.conn&ConnClose != 0
	}
	r.Close = r.Close || hasToken(f.connFirst, "close")

	// httputil.ReverseProxy: upgradeType and its ascii.IsPrint check.
	if f.conn&ConnUpgrade != 0 && len(f.upgrade) > 0 {
		for _, c := range f.upgrade {
			if c < ' ' || c > '~' {
				return ErrUpgrade
			}
		}
		r.Upgrade = f.upgrade
	}

	// server.go: expectsContinue looks at the first Expect value only.
	r.ExpectContinue = hasToken(f.expect, "100-continue")
	r.ExpectOther = !r.ExpectContinue && len(f.expect) > 0
	r.TETrailers = f.teTrailers
	return nil
}

// parseTarget validates a request-target as net/http does with
// url.ParseRequestURI, prefixing "http://" to a CONNECT target that does
// not start with "/". It returns the URL's authority host, if any, and the
// target's path and query. The origin-form is checked in place; the rare
// other forms go through net/url itself, which allocates.
// parseRequestLine splits a request-line (without its line end) into its
// method, target and version, with net/http's checks in its order
// (request.go: parseRequestLine cuts at the first two spaces, then
// validMethod, ParseHTTPVersion, server.go: http1ServerSupportsRequest,
// where PRI * HTTP/2.0 is rejected too). The target is the caller's to
// check, with parseTarget.
func parseRequestLine(line []byte) (method, target []byte, major, minor int, err error) {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return nil, nil, 0, 0, ErrRequestLine
	}
	method, line = line[:sp], line[sp+1:]
	if sp = bytes.IndexByte(line, ' '); sp < 0 {
		return nil, nil, 0, 0, ErrRequestLine
	}
	target = line[:sp]
	if !isToken(method) {
		return nil, nil, 0, 0, ErrMethod
	}
	major, minor, ok := parseVersion(line[sp+1:])
	if !ok {
		return nil, nil, 0, 0, ErrVersion
	}
	if major != 1 {
		return nil, nil, 0, 0, ErrUnsupportedVersion
	}
	return method, target, major, minor, nil
}

// lineCheck follows the request-line of a head that has not fully arrived,
// byte by byte as it comes, and fails as soon as no continuation can make
// it valid: a method byte that is not a token character (a TLS handshake
// sent to the plain port starts with 0x16), or a version that is not
// becoming "HTTP/" DIGIT "." DIGIT. It resumes where it stopped, so a line
// that trickles in is examined once, not once per read.
type lineCheck struct {
	pos   int  // bytes of the line examined
	phase byte // what pos is in: lineMethod, lineTarget, lineVersion or lineDone
	vpos  int  // bytes of the version examined
}

const (
	lineMethod byte = iota
	lineTarget
	lineVersion
	lineDone // the line is complete and valid; the rest is the head's business
)

// check examines what arrived of the request-line at the start of buf.
// Whatever it rejects, ParseRequest rejects with the same status once the
// head is complete. The error is the one ParseRequest returns, except that
// a bad method byte is ErrMethod even where the complete line would lack
// its second space (ErrRequestLine): which one is not known yet.
func (c *lineCheck) check(buf []byte) error {
	if c.phase == lineDone {
		return nil
	}
	if c.pos > len(buf) {
		*c = lineCheck{}
	}
	for ; c.pos < len(buf); c.pos++ {
		b := buf[c.pos]
		if b == '\n' {
			line, _ := firstLine(buf)
			method, target, _, _, err := parseRequestLine(line)
			if err != nil {
				return err
			}
			if _, _, ok := parseTarget(target, string(method) == "CONNECT"); !ok {
				return ErrTarget
			}
			c.phase = lineDone
			return nil
		}
		if b == '\r' {
			if c.pos+1 == len(buf) {
				return nil // perhaps the line's end; the next byte tells
			}
			if buf[c.pos+1] == '\n' {
				continue // the line's end, judged whole at the LF
			}
		}
		switch c.phase {
		case lineMethod:
			switch {
			case b == ' ' && c.pos > 0:
				c.phase = lineTarget
			case b == ' ' || class[b]&cToken == 0:
				return ErrMethod
			}
		case lineTarget:
			// A bad target byte is judged at the line's end: before the
			// target, net/http checks the version, which may yet be
			// unsupported (505).
			if b == ' ' {
				c.phase = lineVersion
			}
		case lineVersion:
			// "HTTP/" DIGIT "." DIGIT, and nothing after it but the line end.
			ok := false
			switch {
			case c.vpos < 5:
				ok = b == "HTTP/"[c.vpos]
			case c.vpos == 5 || c.vpos == 7:
				ok = b >= '0' && b <= '9'
			case c.vpos == 6:
				ok = b == '.'
			}
			if !ok {
				return ErrVersion
			}
			c.vpos++
		}
	}
	return nil
}

func parseTarget(t []byte, connect bool) (host, path []byte, ok bool) {
	if len(t) > 0 && t[0] == '/' {
		// url.parse: no control byte anywhere; setPath: every "%" in the
		// path (before the first "?") starts a %XX escape.
		q := len(t)
		for i, c := range t {
			if c < ' ' || c == 0x7f {
				return nil, nil, false
			}
			if c == '?' && q == len(t) {
				q = i
			}
		}
		for i := 0; i < q; i++ {
			if t[i] == '%' && (i+2 >= q || class[t[i+1]]&cHex == 0 || class[t[i+2]]&cHex == 0) {
				return nil, nil, false
			}
		}
		return nil, t, true
	}
	if !connect && len(t) == 1 && t[0] == '*' {
		return nil, t, true
	}
	raw := string(t)
	if connect {
		raw = "http://" + raw
	}
	if _, err := url.ParseRequestURI(raw); err != nil {
		return nil, nil, false
	}
	rest := t
	if connect {
		path = t
	} else {
		// The URL parsed, so its scheme ends at the first colon.
		rest = t[bytes.IndexByte(t, ':')+1:]
		path = rest
		if len(rest) < 2 || rest[0] != '/' || rest[1] != '/' {
			return nil, path, true
		}
		rest = rest[2:]
	}
	// The authority runs to the first "/" or "?"; the host follows the
	// last "@" in it.
	a := rest
	if i := bytes.IndexAny(a, "/?"); i >= 0 {
		a = a[:i]
		if !connect {
			path = rest[i:]
		}
	} else if !connect {
		path = rest[len(rest):]
	}
	if i := bytes.LastIndexByte(a, '@'); i >= 0 {
		a = a[i+1:]
	}
	return a, path, true
}
