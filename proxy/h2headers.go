package proxy

import (
	"errors"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// An HTTP/2 request's header block is decoded here rather than by the
// Framer's ReadMetaHeaders, which makes a frame, a closure and a growing
// field slice for every block: four to six allocations a request, most
// of what the front end allocated. The checks are the Framer's, in the
// same order, with the same errors: a field name or value HTTP forbids,
// a pseudo-header after a regular field, unknown or repeated
// pseudo-headers; a list over h2MaxHeaderBytes is truncated (the request
// is answered 431), and a sender that goes on far past it, or sends more
// CONTINUATION frames after an invalid field, loses the connection
// (CVE-2024-27316).

// h2Block is a decoded header block: its HEADERS frame and its fields,
// pseudo-headers first. Fields are valid until the next block is read.
type h2Block struct {
	*http2.HeadersFrame
	fields    []hpack.HeaderField
	truncated bool // the list went over h2MaxHeaderBytes: fields is partial
}

// pseudo returns the block's pseudo-header fields.
func (b *h2Block) pseudo() []hpack.HeaderField {
	for i, f := range b.fields {
		if !strings.HasPrefix(f.Name, ":") {
			return b.fields[:i]
		}
	}
	return b.fields
}

// regular returns the block's other fields.
func (b *h2Block) regular() []hpack.HeaderField { return b.fields[len(b.pseudo()):] }

// h2Decoding is a connection's header decoding state, kept between
// blocks so that decoding allocates nothing of its own.
type h2Decoding struct {
	dec     *hpack.Decoder
	block   h2Block
	remain  uint32 // what the list may still hold
	trailer uint32 // the same for the Trailer field's names, as the Framer counts them
	regular bool   // a regular field was seen
	invalid error
}

func (d *h2Decoding) init() {
	d.dec = hpack.NewDecoder(h2HeaderTableSize, d.emit)
	d.dec.SetMaxStringLength(h2MaxHeaderBytes)
}

var (
	errH2FieldName      = errors.New("invalid header field name")
	errH2FieldValue     = errors.New("invalid header field value")
	errH2PseudoAfter    = errors.New("pseudo header field after regular")
	errH2PseudoUnknown  = errors.New("invalid pseudo-header")
	errH2PseudoRepeated = errors.New("duplicate pseudo-header")
	errH2PseudoMixed    = errors.New("mix of request and response pseudo headers")
)

func (d *h2Decoding) emit(f hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		d.invalid = errH2FieldValue
	}
	if strings.HasPrefix(f.Name, ":") {
		if d.regular {
			d.invalid = errH2PseudoAfter
		}
	} else {
		d.regular = true
		if !validFieldName(f.Name) {
			d.invalid = errH2FieldName
		}
	}
	if d.invalid != nil {
		d.dec.SetEmitEnabled(false)
		return
	}
	remain, size := &d.remain, f.Size()
	if f.Name == "trailer" {
		n := uint32(strings.Count(f.Value, ",") + 1)
		remain, size = &d.trailer, uint32(len(f.Value))-n+1+n*hpack.HeaderField{}.Size()
	}
	if size > *remain {
		d.dec.SetEmitEnabled(false)
		d.block.truncated = true
		d.remain, d.trailer = 0, 0
		return
	}
	*remain -= size
	d.block.fields = append(d.block.fields, f)
}

// validFieldName reports whether name may be a field's name on the
// HTTP/2 wire: a token, in lower case.
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !httpguts.IsTokenRune(r) || 'A' <= r && r <= 'Z' {
			return false
		}
	}
	return true
}

// readBlock decodes the header block that f begins, reading its
// CONTINUATION frames. The block is valid until the next call.
func (h *h2Conn) readBlock(f *http2.HeadersFrame) (*h2Block, error) {
	d := &h.dec
	clear(d.block.fields)
	d.block = h2Block{HeadersFrame: f, fields: d.block.fields[:0]}
	d.remain, d.trailer, d.regular, d.invalid = h2MaxHeaderBytes, h2MaxHeaderBytes, false, nil
	d.dec.SetEmitEnabled(true)
	frag, ended := f.HeaderBlockFragment(), f.HeadersEnded()
	for {
		// A sender far over the limit, or going on after an invalid
		// field, is not decoded further: the connection ends.
		if int64(len(frag)) > 2*int64(d.remain+d.trailer) || d.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := d.dec.Write(frag); err != nil {
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if ended {
			break
		}
		// The Framer lets only a CONTINUATION of this stream follow.
		next, err := h.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		c := next.(*http2.ContinuationFrame)
		frag, ended = c.HeaderBlockFragment(), c.HeadersEnded()
	}
	if err := d.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if d.invalid != nil {
		return nil, http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol, Cause: d.invalid}
	}
	if err := checkPseudo(d.block.pseudo()); err != nil {
		return nil, http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return &d.block, nil
}

// checkPseudo refuses unknown, repeated, or request and response
// pseudo-headers together.
func checkPseudo(pf []hpack.HeaderField) error {
	var request, response bool
	for i, f := range pf {
		switch f.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return errH2PseudoUnknown
		}
		for _, g := range pf[:i] {
			if f.Name == g.Name {
				return errH2PseudoRepeated
			}
		}
	}
	if request && response {
		return errH2PseudoMixed
	}
	return nil
}
