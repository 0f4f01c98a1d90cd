package httpwire

// NormalizePath returns path, the path of an origin-form request-target
// (before any query, %-escapes as received), as routing must see it: the
// way nginx reads a URI before it matches a location, with %XX escapes
// decoded, "." and ".." segments resolved and runs of "/" merged. Routing on
// the path as received would let "/api/../secret", "/api/%2e%2e/secret" or
// "/api/..%2fsecret" match a service of prefix /api and reach a path
// outside it on a backend that resolves them itself.
//
// When there is nothing to change (the usual path) it returns path itself
// and allocates nothing; otherwise it writes into buf, which it grows when
// too small, and returns the result in it. ok is false when ".." climbs
// above the root; nginx answers such a request 400. A path that does not
// start with "/" (an asterisk-form or authority-form target) is returned as
// it is.
func NormalizePath(buf, path []byte) (norm []byte, ok bool) {
	if len(path) == 0 || path[0] != '/' || !needsNormalizing(path) {
		return path, true
	}
	d := buf[:0]
	for i := 0; i < len(path); i++ {
		if c := path[i]; c == '%' && i+2 < len(path) && class[path[i+1]]&cHex != 0 && class[path[i+2]]&cHex != 0 {
			d = append(d, unhex(path[i+1])<<4|unhex(path[i+2]))
			i += 2
		} else {
			d = append(d, c)
		}
	}
	// Resolve segments in place: what is written never overtakes what is
	// read, since each segment written was preceded by at least one "/"
	// read.
	out := d[:0]
	trailing := false
	for i := 0; i < len(d); {
		if d[i] == '/' {
			i++
			trailing = true
			continue
		}
		j := i
		for j < len(d) && d[j] != '/' {
			j++
		}
		switch seg := d[i:j]; string(seg) {
		case ".":
			trailing = true
		case "..":
			if len(out) == 0 {
				return nil, false
			}
			k := len(out) - 1
			for out[k] != '/' {
				k--
			}
			out = out[:k]
			trailing = true
		default:
			out = append(out, '/')
			out = append(out, seg...)
			trailing = false
		}
		i = j
	}
	if trailing || len(out) == 0 {
		out = append(out, '/')
	}
	return out, true
}

// needsNormalizing reports whether NormalizePath could change path: it
// holds an escape, an empty segment or a segment starting with ".".
func needsNormalizing(path []byte) bool {
	for i, c := range path {
		if c == '%' || c == '/' && i+1 < len(path) && (path[i+1] == '/' || path[i+1] == '.') {
			return true
		}
	}
	return false
}

// AppendEscapedPath appends path to dst with every byte that may not stand
// as itself in a path (RFC 3986 pchar and "/") %-escaped: a normalized
// path holds what its escapes stood for, and a decoded "?" or space must
// not change the meaning of the target it is sent in.
func AppendEscapedPath(dst, path []byte) []byte {
	const hexDigits = "0123456789ABCDEF"
	for _, c := range path {
		if pathChar(c) {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return dst
}

// pathChar reports whether c stands as itself in a path: unreserved,
// sub-delims, ":", "@" and "/".
func pathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/':
		return true
	}
	return false
}
