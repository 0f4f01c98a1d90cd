package httpwire

import "errors"

// ErrNeedMore reports that the buffer does not yet hold a complete message
// head. Read more bytes, append them to the same buffer and parse again.
var ErrNeedMore = errors.New("httpwire: incomplete message head")

// An Error is a protocol violation that makes a message unacceptable. The
// error values below are the only ones the package returns besides
// [ErrNeedMore]; compare with ==.
type Error struct {
	msg    string
	status int
}

func (e *Error) Error() string { return "httpwire: " + e.msg }

// Status returns the status code a server answers a request rejected with e:
// 400, 431, 501 or 505, as net/http does. A proxy answers a response
// rejected with any of them with 502.
func (e *Error) Status() int { return e.status }

// Errors of message heads. The comments name the net/http (Go 1.26) check
// each one mirrors; those marked "stricter" are checks net/http does not make
// (see the package documentation for why).
var (
	// The head is longer than Parser.MaxHeadBytes (server.go: initialReadLimitSize, errTooLarge).
	ErrHeadTooLarge = &Error{"message head too large", 431}
	// More than Parser.MaxHeaders field lines (stricter: net/http bounds only bytes).
	ErrTooManyHeaders = &Error{"too many header fields", 431}
	// The request-line is not "method SP target SP version" (request.go: parseRequestLine).
	ErrRequestLine = &Error{"malformed request line", 400}
	// The method is not a token (request.go: validMethod).
	ErrMethod = &Error{"invalid method", 400}
	// The request-target is not accepted by url.ParseRequestURI (request.go: readRequest).
	ErrTarget = &Error{"invalid request target", 400}
	// The version is not "HTTP/" DIGIT "." DIGIT (request.go: ParseHTTPVersion).
	ErrVersion = &Error{"malformed HTTP version", 400}
	// A request version other than HTTP/1.x (server.go: http1ServerSupportsRequest;
	// stricter for "PRI * HTTP/2.0" and for HTTP/0.x and HTTP/2+ responses).
	ErrUnsupportedVersion = &Error{"unsupported HTTP version", 505}
	// The status-line is malformed (response.go: ReadResponse).
	ErrStatusLine = &Error{"malformed status line", 400}
	// The status code is not three digits from 100 to 999 (stricter: ReadResponse
	// takes any strconv.Atoi value of three characters, such as "+99" or "000").
	ErrStatusCode = &Error{"invalid status code", 400}
	// The reason phrase holds a control character (stricter: ReadResponse
	// accepts any byte but LF).
	ErrReason = &Error{"invalid reason phrase", 400}
	// A field line without a colon (textproto: mustHaveFieldNameColon).
	ErrHeaderLine = &Error{"malformed header line", 400}
	// A field name that is empty or not a token, including white space before
	// the colon (textproto: canonicalMIMEHeaderKey; server.go: "invalid header
	// name"; stricter for responses, where ReadResponse keeps names with spaces).
	ErrHeaderName = &Error{"invalid header field name", 400}
	// A field value with a control character other than HTAB, such as NUL or
	// CR (textproto: validHeaderValueByte; httpguts.ValidHeaderFieldValue).
	ErrHeaderValue = &Error{"invalid header field value", 400}
	// A field line starting with SP or HTAB: a continuation (obs-fold) or
	// white space before the first field (textproto: "malformed MIME header
	// initial line"; stricter for continuations, which textproto joins and
	// RFC 9112 section 5.2 allows rejecting).
	ErrObsFold = &Error{"obsolete line folding", 400}
	// An HTTP/1.1 request without Host (server.go: "missing required Host header").
	ErrMissingHost = &Error{"missing Host header", 400}
	// More than one Host field (request.go: "too many Host headers").
	ErrMultipleHost = &Error{"multiple Host headers", 400}
	// A Host value with a byte that cannot occur in a host (server.go:
	// httpguts.ValidHostHeader).
	ErrHost = &Error{"malformed Host header", 400}
	// A Content-Length that is empty or not a decimal below 2^63
	// (transfer.go: parseContentLength).
	ErrContentLength = &Error{"invalid Content-Length", 400}
	// Several Content-Length fields with different values (transfer.go: fixLength).
	ErrMultipleContentLength = &Error{"conflicting Content-Length headers", 400}
	// A Transfer-Encoding other than one field "chunked" (transfer.go:
	// parseTransferEncoding, unsupportedTEError).
	ErrTransferEncoding = &Error{"unsupported transfer encoding", 501}
	// A request with both Content-Length and Transfer-Encoding (stricter:
	// net/http drops Content-Length; RFC 9112 section 6.1, nginx reject).
	ErrLengthAndChunked = &Error{"both Content-Length and Transfer-Encoding", 400}
	// An HTTP/1.0 request with Transfer-Encoding (stricter: net/http ignores
	// the field; nginx rejects).
	ErrTransferEncoding10 = &Error{"Transfer-Encoding in an HTTP/1.0 request", 400}
	// A Trailer field naming Transfer-Encoding, Trailer or Content-Length in a
	// chunked message (transfer.go: fixTrailer).
	ErrTrailerField = &Error{"bad trailer key", 400}
	// A request upgrading to a protocol name that is not printable ASCII
	// (reverseproxy.go: "client tried to switch to invalid protocol").
	ErrUpgrade = &Error{"invalid Upgrade protocol", 400}
)

// Errors of chunked bodies (net/http/internal/chunked.go and transfer.go).
var (
	// A chunk-size line that does not end in CRLF, has a CR elsewhere, or
	// data not followed by CRLF (readChunkLine, "malformed chunked encoding").
	ErrChunkFraming = &Error{"malformed chunked encoding", 400}
	// A chunk size that is empty, not hex, or has white space before an
	// extension (parseHexUint, removeChunkExtension).
	ErrChunkSize = &Error{"invalid chunk size", 400}
	// A chunk size of more than 16 hex digits (parseHexUint).
	ErrChunkSizeTooLarge = &Error{"chunk size too large", 400}
	// A chunk-size line longer than 4096 bytes (ErrLineTooLong).
	ErrChunkLineTooLong = &Error{"chunk line too long", 400}
	// Chunk framing and extensions outweigh the data (beginChunk:
	// "chunked encoding contains too much non-data").
	ErrChunkOverhead = &Error{"chunked encoding contains too much non-data", 400}
	// A trailer section longer than 4096 bytes (readTrailer: "suspiciously
	// long trailer after chunked body").
	ErrTrailerTooLarge = &Error{"trailer section too large", 400}
	// A malformed trailer field line (textproto as for heads; stricter: each
	// line must end in CRLF and must not be folded, since trailers are passed
	// through unchanged).
	ErrTrailer = &Error{"malformed trailer section", 400}
)
