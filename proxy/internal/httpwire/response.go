package httpwire

import "bytes"

// A Response is a parsed response head. Its byte slices alias the buffer
// given to [Parser.ParseResponse], with the same lifetime rules as a
// [Request]'s.
type Response struct {
	Minor   int     // minor version of HTTP/1.x
	Status  int     // status code, 100 to 999
	Reason  []byte  // reason phrase, possibly empty
	Headers Headers // field lines in order
	HeadLen int     // length of the head; the body starts at buf[HeadLen]

	// ContentLength is the Content-Length value, -1 if absent. With
	// Chunked it is only metadata: the framing is chunked.
	ContentLength int64
	Chunked       bool // Transfer-Encoding: chunked (ignored before HTTP/1.1)
	// Framing is how the body is delimited: NoBody for a response to HEAD
	// and for 1xx, 204 and 304; otherwise ByChunks, ByLength (NoBody for
	// a length of 0) or, with neither, ByClose.
	Framing Framing

	// Close reports that the upstream connection cannot be reused after
	// this response: HTTP/1.0 without "Connection: keep-alive", a
	// "Connection: close", or a body delimited by closing (net/http's
	// Response.Close).
	Close      bool
	Connection ConnTokens // options listed in Connection fields

	// Upgrade is the protocol switched to by a 101 response with an
	// Upgrade field and "upgrade" in Connection; nil otherwise. After such
	// a response the connection carries that protocol.
	Upgrade []byte
}

// Informational reports a 1xx response other than 101: an interim response
// (such as 100 Continue) after which the final response head follows on
// the same connection.
func (r *Response) Informational() bool {
	return r.Status >= 100 && r.Status <= 199 && r.Status != 101
}

// bodyAllowedForStatus is net/http's (transfer.go).
func bodyAllowedForStatus(status int) bool {
	return !(status >= 100 && status <= 199 || status == 204 || status == 304)
}

// ParseResponse parses the response head at the start of buf into r. head
// reports that the response answers a HEAD request, which makes it
// bodiless whatever its fields say.
//
// Results and errors are as for [Parser.ParseRequest]. The rules are those
// of net/http's http.ReadResponse, with the exceptions the package
// documentation lists. A 2xx response to CONNECT starts a tunnel; Framing
// does not describe that.
func (p *Parser) ParseResponse(r *Response, buf []byte, head bool) error {
	end, err := p.headEnd(buf)
	if err != nil {
		return err
	}
	h := buf[:end]
	*r = Response{Headers: r.Headers[:0], HeadLen: end}

	// response.go: ReadResponse cuts the version at the first space, trims
	// spaces before the code and cuts the code at the next space.
	line, next := firstLine(h)
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return ErrStatusLine
	}
	major, minor, ok := parseVersion(line[:sp])
	if !ok {
		return ErrVersion
	}
	rest := line[sp+1:]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	code := rest
	if sp = bytes.IndexByte(rest, ' '); sp >= 0 {
		code, r.Reason = rest[:sp], rest[sp+1:]
	}
	if len(code) != 3 {
		return ErrStatusLine
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return ErrStatusCode
		}
		r.Status = r.Status*10 + int(c-'0')
	}
	// Stricter: net/http takes "+99" and "000", HTTP/0.x and HTTP/2+, and
	// control bytes such as CR in the reason phrase.
	if r.Status < 100 {
		return ErrStatusCode
	}
	if major != 1 {
		return ErrUnsupportedVersion
	}
	for _, c := range r.Reason {
		if class[c]&cValue == 0 {
			return ErrReason
		}
	}
	r.Minor = minor

	var f facts
	if err := parseFields(h, next, &r.Headers, p.maxHeaders(), &f); err != nil {
		return err
	}
	r.ContentLength, r.Chunked, err = checkFraming(&f, minor, r.Headers)
	if err != nil {
		return err
	}
	switch {
	case head || !bodyAllowedForStatus(r.Status):
	case r.Chunked:
		r.Framing = ByChunks
	case r.ContentLength > 0:
		r.Framing = ByLength
	case r.ContentLength < 0:
		r.Framing = ByClose
	}

	// transfer.go: shouldClose, and readTransfer's unbounded body.
	r.Connection = f.conn
	if minor == 0 {
		r.Close = f.conn&ConnClose != 0 || f.conn&ConnKeepAlive == 0
	} else {
		r.Close = f.conn&ConnClose != 0
	}
	r.Close = r.Close || r.Framing == ByClose

	// response.go: isProtocolSwitchResponse, looking at the fields left
	// after shouldClose removed "Connection" when it lists "close".
	if r.Status == 101 && len(f.upgrade) > 0 && f.conn&ConnUpgrade != 0 &&
		(minor == 0 || f.conn&ConnClose == 0) {
		r.Upgrade = f.upgrade
	}
	return nil
}
