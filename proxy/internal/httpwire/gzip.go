package httpwire

import "bytes"

// AcceptsGzip reports whether the Accept-Encoding fields of a request
// allow a gzip-coded answer (RFC 9110 section 12.5.3): "gzip" (or its
// alias "x-gzip") listed with a weight above zero, or, when neither is
// listed, "*" with a weight above zero. "gzip;q=0" refuses it, as does a
// weight that is not a qvalue. It allocates nothing.
func AcceptsGzip(hs Headers) bool {
	named, star := false, false
	for i := range hs {
		h := &hs[i]
		if len(h.Name) != len("accept-encoding") || !equalFold(h.Name, "accept-encoding") {
			continue
		}
		for v := h.Value; len(v) > 0; {
			var e []byte
			e, v = nextElement(v)
			coding, params, _ := bytes.Cut(e, []byte{';'})
			coding = trimOWS(coding)
			switch {
			case equalFold(coding, "gzip"), equalFold(coding, "x-gzip"):
				if positiveWeight(params) {
					return true
				}
				named = true
			case len(coding) == 1 && coding[0] == '*':
				star = star || positiveWeight(params)
			}
		}
	}
	return !named && star
}

// positiveWeight reports whether the parameters after a coding give it a
// weight above zero: no "q" parameter means 1, and a malformed one counts
// as refusing.
func positiveWeight(params []byte) bool {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte{';'})
		p = trimOWS(p)
		if len(p) < 2 || lower(p[0]) != 'q' || p[1] != '=' {
			continue
		}
		return qvalueAboveZero(p[2:])
	}
	return true
}

// qvalueAboveZero parses a qvalue: "0" or "1", then optionally "." and up
// to three digits (RFC 9110 section 12.4.2).
func qvalueAboveZero(q []byte) bool {
	if len(q) == 0 || (q[0] != '0' && q[0] != '1') {
		return false
	}
	nonZero := q[0] == '1'
	if len(q) > 1 {
		if q[1] != '.' || len(q) > 5 {
			return false
		}
		for _, d := range q[2:] {
			if d < '0' || d > '9' || (q[0] == '1' && d != '0') {
				return false
			}
			nonZero = nonZero || d != '0'
		}
	}
	return nonZero
}

// GzipFields are the response fields that decide whether an answer may be
// gzip-coded on its way through (see ScanGzipFields).
type GzipFields struct {
	ContentType []byte // the media type, without parameters; nil if absent
	// Encoded: a Content-Encoding other than empty is set, the body is
	// coded already. Ranged: a Content-Range is set. NoTransform:
	// Cache-Control has no-transform, which forbids a proxy to change the
	// coding (RFC 9111 section 5.2.2.6).
	Encoded, Ranged, NoTransform bool
}

// ScanGzipFields reads the fields of r that decide on compressing it.
func ScanGzipFields(r *Response) GzipFields {
	var g GzipFields
	for i := range r.Headers {
		h := &r.Headers[i]
		switch len(h.Name) {
		case len("content-type"):
			if g.ContentType == nil && equalFold(h.Name, "content-type") {
				mt, _, _ := bytes.Cut(h.Value, []byte{';'})
				g.ContentType = trimOWS(mt)
			}
		case len("content-encoding"):
			if equalFold(h.Name, "content-encoding") && len(h.Value) > 0 {
				g.Encoded = true
			}
		case len("content-range"):
			if equalFold(h.Name, "content-range") {
				g.Ranged = true
			} else if equalFold(h.Name, "cache-control") && containsToken(h.Value, "no-transform") {
				g.NoTransform = true
			}
		}
	}
	return g
}

// appendGzipField appends h as it goes with a gzip-coded body: without
// Accept-Ranges, since ranges of the coded body are not served, and with
// a strong ETag made weak, as the coded bytes differ from those the tag
// names (nginx drops a malformed one). It reports false for a field it
// leaves out.
func appendGzipField(dst []byte, h *Header) ([]byte, bool) {
	switch len(h.Name) {
	case len("accept-ranges"):
		if equalFold(h.Name, "accept-ranges") {
			return dst, false
		}
	case len("etag"):
		if equalFold(h.Name, "etag") {
			v := h.Value
			switch {
			case len(v) >= 2 && v[0] == 'W' && v[1] == '/':
			case len(v) >= 1 && v[0] == '"':
				dst = append(dst, h.Name...)
				dst = append(dst, ": W/"...)
				dst = append(dst, v...)
				return append(dst, "\r\n"...), true
			default:
				return dst, false
			}
		}
	}
	return appendField(dst, h.Name, h.Value), true
}

// listsAcceptEncoding reports whether a Vary field value already names
// Accept-Encoding, or "*".
func listsAcceptEncoding(v []byte) bool {
	return containsToken(v, "accept-encoding") || containsToken(v, "*")
}
