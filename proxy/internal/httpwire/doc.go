// Package httpwire parses HTTP/1.1 message heads and chunked bodies in
// place, for wharf's forwarding data path. It does no I/O: the forwarder
// reads bytes into a buffer, asks this package where the head ends and how
// the body is framed, writes the rewritten head upstream with one append,
// and passes the body through while Chunked follows it.
//
// # Buffers and lifetimes
//
// [Parser.ParseRequest] and [Parser.ParseResponse] fill a [Request] or
// [Response] whose byte slices alias the caller's buffer. They are valid
// until the buffer is modified or reused and until the next parse into the
// same value. Once a Request's Headers slice has grown to its working size,
// parsing an origin-form request allocates nothing. [AppendRequest] and
// [AppendResponse] only append to the caller's slice; [Chunked] keeps no
// reference to the buffers it follows.
//
// A Parser, a Request, a Response and a Chunked are each used by one
// goroutine at a time. The package has no mutable global state.
//
// # Strictness
//
// The parser accepts nothing that net/http (Go 1.26) rejects, since a
// proxy that is more lenient than the server behind it is how request
// smuggling starts. It mirrors these rules; file:line refer to Go 1.26.8.
//
//   - Lines end in LF or CRLF in a head (bufio/bufio.go:430, as textproto
//     reads them), but only in CRLF in chunked framing (internal/chunked.go:174,176).
//   - The request-line is cut at its first two spaces (request.go:1097);
//     the method must be a token (request.go:1101); the version must be
//     "HTTP/" DIGIT "." DIGIT (request.go:1105) with major 1 (server.go:1006).
//   - The target must satisfy url.ParseRequestURI (request.go:1123): no
//     control byte (url.go:436), origin-form or absolute-form only
//     (url.go:471), valid %-escapes in the path (url.go:506); a CONNECT
//     target not starting with "/" is an authority. Origin-form targets
//     are checked in place; others go through net/url, which allocates.
//   - A field line needs a colon (textproto/reader.go:610), a name of token
//     characters (reader.go:558, server.go:1023) and a value without control
//     bytes other than HTAB (reader.go:563, server.go:1027); the value is
//     trimmed of SP and HTAB on both sides (reader.go:574 and trim).
//   - Host: at most one (request.go:1139), required from HTTP/1.1 on except
//     for CONNECT (server.go:1016), made of host bytes (server.go:1019); an
//     absolute-form target's authority overrides it (request.go:1149).
//   - Transfer-Encoding is ignored before HTTP/1.1 (transfer.go:639); from
//     HTTP/1.1 on it must be exactly one field whose value is "chunked" in
//     any case (transfer.go:647,650), else 501. This rejects
//     "chunked, identity", "xchunked", repeated fields and, through the
//     field-name rules, "Transfer-Encoding : chunked".
//   - Content-Length: repeated fields must be identical (transfer.go:666,673);
//     the value must be a non-empty decimal below 2^63 (transfer.go:1063,1065),
//     also on responses that have no body (transfer.go:687).
//   - A chunked message may not announce Transfer-Encoding, Trailer or
//     Content-Length in Trailer (transfer.go:792).
//   - Connection tokens decide persistence (transfer.go:748, and the
//     server's wantsClose, request.go:1520, header.go:240); Expect is
//     read from its first field (server.go:2040,2047).
//   - Responses: the version ends at the first space, spaces before the
//     three-character code are skipped (response.go:168,173,176); the body is
//     absent for HEAD, 1xx, 204 and 304 (transfer.go:694, 461), chunked,
//     Content-Length, or delimited by closing, which also marks the
//     connection as closing (transfer.go:555). A 101 switches protocols with
//     Upgrade and "upgrade" in Connection (response.go:368).
//   - Chunked bodies: a size line fits 4096 bytes with its CRLF
//     (internal/chunked.go:156), is hex of at most 16 digits (chunked.go:293),
//     may end in white space and carry any extension after ";"
//     (chunked.go:54,207), and data is followed by CRLF (chunked.go:107);
//     framing overhead is bounded (chunked.go:53,80); the trailer section
//     fits 4096 bytes (transfer.go:933) and follows the field rules.
//
// It is stricter than net/http where net/http's leniency helps no real
// client and could let an upstream read a message differently:
//
//   - obs-fold (a field line starting with SP or HTAB) is rejected, not
//     joined (RFC 9112 section 5.2 allows either; nginx rejects).
//   - A response field name with a space before the colon is rejected;
//     ReadResponse keeps it as a separate, unrecognized field, so
//     "Transfer-Encoding : chunked" could reach a client that trims it.
//   - A request with both Content-Length and Transfer-Encoding is rejected
//     (net/http drops Content-Length; RFC 9112 section 6.1 says it ought to
//     be an error; nginx rejects), and so is Transfer-Encoding in an
//     HTTP/1.0 request (net/http ignores it; nginx rejects).
//   - "PRI * HTTP/2.0" is rejected: wharf does not speak HTTP/2 over
//     cleartext HTTP/1 connections. Responses must be HTTP/1.x, with a
//     status code of three digits from 100 and a reason phrase without
//     control bytes (ReadResponse takes "+99", "000" and a CR in the reason).
//   - A request upgrading to a protocol name with bytes outside printable
//     ASCII is rejected at parse time, where httputil.ReverseProxy fails it
//     later (reverseproxy.go:478).
//   - Trailer lines must end in CRLF and must not be folded or have spaces
//     in names: trailers are passed through unchanged, so they must mean
//     the same to every reader.
//   - A head may hold at most Parser.MaxHeaders field lines (default 100,
//     as Apache and HAProxy), which bounds the per-parser Headers storage.
//
// A head is limited to Parser.MaxHeadBytes, 64 KiB by default, where
// net/http allows 1 MiB plus 4096 bytes (server.go:904). A proxy keeps every
// connection's head in memory until it has been forwarded, so the limit is a
// per-connection memory bound; 64 KiB is twice what nginx's default buffers
// accept (4 x 8 KiB), so no head that nginx forwards is refused.
package httpwire
