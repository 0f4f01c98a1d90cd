package httpwire

import (
	"bytes"
	"net/netip"
	"strconv"
	"unsafe"
)

// RequestOptions adjust the head AppendRequest writes. The zero value
// forwards the request as received. Target and Host are written as given:
// the caller makes sure they hold no SP, CR, LF or other control byte.
type RequestOptions struct {
	// Target replaces the request-target; nil sends r.Target.
	Target []byte
	// Host replaces the Host field value; nil sends r.Host.
	Host []byte
	// ClientIP, when valid, is the client's address, and the forwarded
	// fields are written by the trust model described at AppendRequest.
	// When invalid, received forwarded fields pass unchanged.
	ClientIP netip.Addr
	// Trusted lists the addresses of proxies whose forwarded fields are
	// believed (nginx set_real_ip_from); empty trusts no client.
	Trusted []netip.Prefix
	// TLS reports that the client connection uses TLS.
	TLS bool
}

// AppendRequest appends to dst the HTTP/1.1 head that forwards r upstream,
// as httputil.ReverseProxy would send it, and returns the extended slice:
//
//   - the request line with r's method and the target, then Host;
//   - every received field except hop-by-hop ones (see Header.Hop), Host,
//     Content-Length, Transfer-Encoding and names holding "_" (nginx's
//     underscores_in_headers off: WSGI and CGI servers read X_Forwarded_For
//     as X-Forwarded-For), in the order received; a Trailer field stays
//     with a chunked body, whose trailers pass through;
//   - the framing: "Transfer-Encoding: chunked" for a chunked body, else
//     the Content-Length received, normalized;
//   - "TE: trailers" when the client sent it, and "Connection: Upgrade"
//     with "Upgrade" when the client asks to upgrade;
//   - the forwarded fields, when o.ClientIP is valid.
//
// The forwarded fields follow nginx's realip module with
// proxy_set_header. A client outside o.Trusted could write anything in
// them, so its X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto,
// Forwarded, X-Real-IP and True-Client-IP are dropped, and wharf sends
// X-Forwarded-For and X-Real-IP with the client's address, X-Forwarded-Host
// with r.Host and X-Forwarded-Proto with "http" or "https" (TLS). A trusted
// client's X-Forwarded-For fields are folded into one with its address
// appended, its X-Forwarded-Host, X-Forwarded-Proto, Forwarded and
// True-Client-IP are kept (the first two set as above when absent), and
// X-Real-IP is RealIP of the folded list. A Connection field naming one of
// them changes none of this: it would let a client strip what wharf
// vouches for.
//
// It allocates only if dst lacks capacity.
func AppendRequest(dst []byte, r *Request, o *RequestOptions) []byte {
	if o == nil {
		o = &RequestOptions{}
	}
	target, host := r.Target, r.Host
	if o.Target != nil {
		target = o.Target
	}
	if o.Host != nil {
		host = o.Host
	}
	xf := o.ClientIP.IsValid()
	trusted := xf && Trusts(o.Trusted, o.ClientIP)
	var hasXFH, hasXFP bool
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\n"...)
	for i := range r.Headers {
		h := &r.Headers[i]
		switch {
		case h.kind == kTrailer && r.Chunked:
		case xf && h.kind >= kXForwardedFor:
			// The forwarded fields: written below, kept or dropped by
			// trust alone, whatever Connection lists.
			switch h.kind {
			case kXForwardedHost:
				hasXFH = hasXFH || trusted
			case kXForwardedProto:
				hasXFP = hasXFP || trusted
			}
			if !trusted || (h.kind != kForwarded && h.kind != kTrueClientIP) {
				continue
			}
		case h.Hop, h.kind == kHost, h.kind == kContentLength:
			continue
		case bytes.IndexByte(h.Name, '_') >= 0:
			continue
		}
		dst = appendField(dst, h.Name, h.Value)
	}
	dst = appendFraming(dst, r.Chunked, r.ContentLength)
	if r.TETrailers {
		dst = append(dst, "TE: trailers\r\n"...)
	}
	if r.Upgrade != nil {
		dst = append(dst, "Connection: Upgrade\r\nUpgrade: "...)
		dst = append(dst, r.Upgrade...)
		dst = append(dst, "\r\n"...)
	}
	if !xf {
		return append(dst, "\r\n"...)
	}
	dst = append(dst, "X-Forwarded-For: "...)
	list := len(dst)
	if trusted {
		for i := range r.Headers {
			if h := &r.Headers[i]; h.kind == kXForwardedFor {
				dst = append(dst, h.Value...)
				dst = append(dst, ", "...)
			}
		}
	}
	dst = o.ClientIP.AppendTo(dst)
	realIP := o.ClientIP
	if trusted {
		realIP = RealIP(dst[list:], o.Trusted)
	}
	dst = append(dst, "\r\nX-Real-IP: "...)
	dst = realIP.AppendTo(dst)
	dst = append(dst, "\r\n"...)
	if hasXFH || hasXFP {
		for i := range r.Headers {
			switch h := &r.Headers[i]; h.kind {
			case kXForwardedHost:
				dst = appendField(dst, []byte("X-Forwarded-Host"), h.Value)
			case kXForwardedProto:
				dst = appendField(dst, []byte("X-Forwarded-Proto"), h.Value)
			}
		}
	}
	if !hasXFH {
		dst = append(dst, "X-Forwarded-Host: "...)
		dst = append(dst, r.Host...)
		dst = append(dst, "\r\n"...)
	}
	if !hasXFP {
		dst = append(dst, "X-Forwarded-Proto: http"...)
		if o.TLS {
			dst = append(dst, 's')
		}
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// Trusts reports whether addr is in one of the prefixes.
func Trusts(prefixes []netip.Prefix, addr netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// RealIP returns the client a chain of proxies speaks for, as nginx's
// realip module with real_ip_recursive on: list is an X-Forwarded-For
// value whose last element is the address of the connection, and it is
// walked from the right while the address reached is in trusted. The
// first untrusted address is the answer; when every one is trusted, or an
// element is not an address, the last trusted address reached is, so a
// trusted proxy cannot be made to vouch for junk. It does not allocate.
func RealIP(list []byte, trusted []netip.Prefix) netip.Addr {
	var addr netip.Addr
	for len(list) > 0 && (!addr.IsValid() || Trusts(trusted, addr)) {
		i := bytes.LastIndexByte(list, ',')
		e := trimOWS(list[i+1:])
		list = list[:max(i, 0)]
		if len(e) == 0 {
			continue
		}
		a, ok := parseAddr(e)
		if !ok {
			break
		}
		addr = a
	}
	return addr
}

// parseAddr parses an address as nginx's realip does, with or without a
// port. Zones are refused: netip would keep a copy of the string.
func parseAddr(b []byte) (netip.Addr, bool) {
	if bytes.IndexByte(b, '%') >= 0 {
		return netip.Addr{}, false
	}
	// The string is only read while parsing: netip keeps nothing of it.
	// An address with a port is tried only when it has one, as a failed
	// parse allocates its error.
	s := unsafe.String(&b[0], len(b))
	if b[0] == '[' || bytes.Count(b, []byte(":")) == 1 {
		ap, err := netip.ParseAddrPort(s)
		return ap.Addr().Unmap(), err == nil
	}
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err == nil
}

// ResponseOptions adjust the head AppendResponse writes.
type ResponseOptions struct {
	// Close adds "Connection: close": the client connection closes after
	// this response.
	Close bool
	// KeepAlive adds "Connection: keep-alive", which an HTTP/1.0 client
	// needs to keep its connection open.
	KeepAlive bool
	// Unchunk drops "Transfer-Encoding: chunked" and Trailer: the forwarder
	// decodes the body (Chunked.Decode) and ends it by closing, as an
	// HTTP/1.0 client requires.
	Unchunk bool
	// Gzip: the forwarder sends the body gzip-coded. "Content-Encoding:
	// gzip" is added, Content-Length, Accept-Ranges and Trailer are
	// dropped, a strong ETag is made weak (as nginx does), and the body is
	// chunked, or with Unchunk ends by closing.
	Gzip bool
	// Vary adds "Vary: Accept-Encoding" unless a Vary field lists it (or
	// "*") already: the answer depends on the client's Accept-Encoding.
	Vary bool
}

// AppendResponse appends to dst the HTTP/1.1 head that forwards r to the
// client and returns the extended slice: the status line with r's code and
// reason phrase, every received field except hop-by-hop ones,
// Content-Length and Transfer-Encoding (a Trailer field stays with a
// chunked body), then the framing (chunked, or the received
// Content-Length except on 1xx and 204), then "Connection: Upgrade" and
// Upgrade for a 101, else the Connection option of o; o's Gzip and Vary
// change the fields as they say. It allocates only if dst lacks capacity.
func AppendResponse(dst []byte, r *Response, o *ResponseOptions) []byte {
	if o == nil {
		o = &ResponseOptions{}
	}
	chunked := r.Chunked && !o.Unchunk
	if o.Gzip {
		chunked = !o.Unchunk
	}
	vary := o.Vary
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, r.Reason...)
	dst = append(dst, "\r\n"...)
	for i := range r.Headers {
		h := &r.Headers[i]
		switch {
		case h.kind == kTrailer && chunked && !o.Gzip:
		case h.Hop, h.kind == kContentLength:
			continue
		case vary && len(h.Name) == len("vary") && equalFold(h.Name, "vary") && listsAcceptEncoding(h.Value):
			vary = false
		}
		if o.Gzip {
			dst, _ = appendGzipField(dst, h)
			continue
		}
		dst = appendField(dst, h.Name, h.Value)
	}
	switch {
	case chunked && bodyAllowedForStatus(r.Status):
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case o.Gzip:
		// The coded length is not known in advance: the body ends by
		// closing.
	case !r.Chunked && r.ContentLength >= 0 && (r.Status == 304 || bodyAllowedForStatus(r.Status)):
		dst = appendFraming(dst, false, r.ContentLength)
	}
	if o.Gzip {
		dst = append(dst, "Content-Encoding: gzip\r\n"...)
	}
	if vary {
		dst = append(dst, "Vary: Accept-Encoding\r\n"...)
	}
	switch {
	case r.Upgrade != nil:
		dst = append(dst, "Connection: Upgrade\r\nUpgrade: "...)
		dst = append(dst, r.Upgrade...)
		dst = append(dst, "\r\n"...)
	case o.Close:
		dst = append(dst, "Connection: close\r\n"...)
	case o.KeepAlive:
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	return append(dst, "\r\n"...)
}

func appendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

func appendFraming(dst []byte, chunked bool, cl int64) []byte {
	switch {
	case chunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case cl >= 0:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, cl, 10)
		dst = append(dst, "\r\n"...)
	}
	return dst
}

// VisitResponseFields calls emit with each field that forwards r to an
// HTTP/2 client, chosen as AppendResponse chooses them for HTTP/1.1 and
// changed by o's Gzip and Vary as there: no hop-by-hop field, no
// Content-Length, Transfer-Encoding or Trailer (the caller adds the
// length it sends), and "vary: accept-encoding" last when Vary asks for
// it. weak reports a strong ETag that is to be sent weak, with "W/"
// before value. Names are given as received: HTTP/2 wants them in lower
// case.
func VisitResponseFields(r *Response, o *ResponseOptions, emit func(name, value []byte, weak bool)) {
	vary := o.Vary
	for i := range r.Headers {
		h := &r.Headers[i]
		switch {
		case h.Hop, h.kind == kContentLength, h.kind == kTrailer:
			continue
		case vary && len(h.Name) == len("vary") && equalFold(h.Name, "vary") && listsAcceptEncoding(h.Value):
			vary = false
		}
		if !o.Gzip {
			emit(h.Name, h.Value, false)
			continue
		}
		switch {
		case len(h.Name) == len("accept-ranges") && equalFold(h.Name, "accept-ranges"):
		case len(h.Name) == len("etag") && equalFold(h.Name, "etag"):
			v := h.Value
			switch {
			case len(v) >= 2 && v[0] == 'W' && v[1] == '/':
				emit(h.Name, v, false)
			case len(v) >= 1 && v[0] == '"':
				emit(h.Name, v, true)
			}
		default:
			emit(h.Name, h.Value, false)
		}
	}
	if o.Gzip {
		emit(contentEncoding, gzipToken, false)
	}
	if vary {
		emit(varyName, acceptEncoding, false)
	}
}

var (
	contentEncoding = []byte("content-encoding")
	gzipToken       = []byte("gzip")
	varyName        = []byte("vary")
	acceptEncoding  = []byte("Accept-Encoding")
)
