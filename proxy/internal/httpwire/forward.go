package httpwire

import (
	"net/netip"
	"strconv"
)

// RequestOptions adjust the head AppendRequest writes. The zero value
// forwards the request as received. Target and Host are written as given:
// the caller makes sure they hold no SP, CR, LF or other control byte.
type RequestOptions struct {
	// Target replaces the request-target; nil sends r.Target.
	Target []byte
	// Host replaces the Host field value; nil sends r.Host.
	Host []byte
	// ClientIP, when valid, is the client's address: it is appended to the
	// X-Forwarded-For list (received X-Forwarded-For fields are folded into
	// one, as httputil.ReverseProxy does), X-Forwarded-Host is set to
	// r.Host and X-Forwarded-Proto to "http" or "https" (TLS), replacing
	// received ones (httputil.ProxyRequest.SetXForwarded). When invalid,
	// received X-Forwarded-* fields pass unchanged.
	ClientIP netip.Addr
	// TLS reports that the client connection uses TLS.
	TLS bool
}

// AppendRequest appends to dst the HTTP/1.1 head that forwards r upstream,
// as httputil.ReverseProxy would send it, and returns the extended slice:
//
//   - the request line with r's method and the target, then Host;
//   - every received field except hop-by-hop ones (see Header.Hop), Host,
//     Content-Length and Transfer-Encoding, in the order received; a
//     Trailer field stays with a chunked body, whose trailers pass through;
//   - the framing: "Transfer-Encoding: chunked" for a chunked body, else
//     the Content-Length received, normalized;
//   - "TE: trailers" when the client sent it, and "Connection: Upgrade"
//     with "Upgrade" when the client asks to upgrade;
//   - the X-Forwarded-* fields described at RequestOptions.
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
		case h.Hop, h.kind == kHost, h.kind == kContentLength:
			continue
		case xf && (h.kind == kXForwardedFor || h.kind == kXForwardedHost || h.kind == kXForwardedProto):
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
	if xf {
		dst = append(dst, "X-Forwarded-For: "...)
		for i := range r.Headers {
			if h := &r.Headers[i]; h.kind == kXForwardedFor && !h.Hop {
				dst = append(dst, h.Value...)
				dst = append(dst, ", "...)
			}
		}
		dst = o.ClientIP.AppendTo(dst)
		dst = append(dst, "\r\nX-Forwarded-Host: "...)
		dst = append(dst, r.Host...)
		dst = append(dst, "\r\nX-Forwarded-Proto: http"...)
		if o.TLS {
			dst = append(dst, 's')
		}
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
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
}

// AppendResponse appends to dst the HTTP/1.1 head that forwards r to the
// client and returns the extended slice: the status line with r's code and
// reason phrase, every received field except hop-by-hop ones,
// Content-Length and Transfer-Encoding (a Trailer field stays with a
// chunked body), then the framing (chunked, or the received
// Content-Length except on 1xx and 204), then "Connection: Upgrade" and
// Upgrade for a 101, else the Connection option of o. It allocates only if
// dst lacks capacity.
func AppendResponse(dst []byte, r *Response, o *ResponseOptions) []byte {
	if o == nil {
		o = &ResponseOptions{}
	}
	chunked := r.Chunked && !o.Unchunk
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, ' ')
	dst = append(dst, r.Reason...)
	dst = append(dst, "\r\n"...)
	for i := range r.Headers {
		h := &r.Headers[i]
		switch {
		case h.kind == kTrailer && chunked:
		case h.Hop, h.kind == kContentLength:
			continue
		}
		dst = appendField(dst, h.Name, h.Value)
	}
	switch {
	case chunked && bodyAllowedForStatus(r.Status):
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case !r.Chunked && r.ContentLength >= 0 && (r.Status == 304 || bodyAllowedForStatus(r.Status)):
		dst = appendFraming(dst, false, r.ContentLength)
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
