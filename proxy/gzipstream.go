package proxy

import (
	"errors"
	"io"
	"strconv"

	"github.com/klauspost/compress/gzip"

	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// gzipStream is one answer body on its way to the client gzip-coded. The
// gzip.Writer writes into buf, which is sent to the client as one chunk
// when it is full, when the peer's body pauses (see relayGzip) and at the
// end; the first send carries the response head too, so an answer that
// arrives whole goes out in one write. A gzipStream and its compressor are
// pooled per level (gzipRules.writers): in the steady state compressing
// allocates nothing.
type gzipStream struct {
	zw      *gzip.Writer
	c       *fastConn
	buf     []byte // what is gathered for the next send
	chunked bool   // chunk framing (an HTTP/1.1 client), or none: the end is the close
	// buf[:headEnd] is the response head not yet sent (0 once sent), and
	// buf[headEnd:dataAt] room for the chunk-size line of the data that
	// follows at buf[dataAt:].
	headEnd, dataAt int
	// fresh: input has been compressed since the last flush.
	fresh bool
	err   error // the client write that failed
}

// Chunk framing: room reserved before the data for its size line (8 hex
// digits and CRLF), and after it for its CRLF and the last chunk.
const (
	chunkSizeRoom = 10
	chunkTailRoom = len("\r\n0\r\n\r\n")
)

var noChunkSize [chunkSizeRoom]byte

// getStream takes a pooled stream for an answer to c whose head is in
// head (in c's output buffer, whose room the stream uses).
func (g *gzipRules) getStream(c *fastConn, head []byte, chunked bool) *gzipStream {
	s, _ := g.writers.Get().(*gzipStream)
	if s == nil {
		s = &gzipStream{}
		// The level was checked when the rules were made.
		s.zw, _ = gzip.NewWriterLevel(s, g.level)
	}
	s.zw.Reset(s)
	s.c, s.chunked, s.fresh, s.err = c, chunked, false, nil
	s.headEnd, s.buf = len(head), head
	if chunked {
		s.buf = append(s.buf, noChunkSize[:]...)
	}
	s.dataAt = len(s.buf)
	return s
}

func (g *gzipRules) putStream(s *gzipStream) {
	s.c, s.buf = nil, nil
	g.writers.Put(s)
}

// Write gathers compressed bytes, sending what is gathered when the buffer
// is full. It is the gzip.Writer's output.
func (s *gzipStream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := cap(s.buf) - len(s.buf) - chunkTailRoom
		if room <= 0 {
			if err := s.send(false); err != nil {
				return n - len(p), err
			}
			continue
		}
		k := min(room, len(p))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
	}
	return n, nil
}

// send writes what is gathered to the client: the head if not yet sent,
// the compressed bytes as one chunk, and with last the end of the body.
func (s *gzipStream) send(last bool) error {
	if s.err != nil {
		return s.err
	}
	b, start := s.buf, 0
	if s.chunked {
		size := len(b) - s.dataAt
		at := s.dataAt
		if size > 0 {
			var line [chunkSizeRoom]byte
			l := strconv.AppendUint(line[:0], uint64(size), 16)
			l = append(l, '\r', '\n')
			at -= len(l)
			copy(b[at:], l)
			b = append(b, '\r', '\n')
		}
		start = at - s.headEnd
		if s.headEnd > 0 {
			// Close the gap between the head and the size line.
			copy(b[start:], b[:s.headEnd])
		}
		if size == 0 {
			b = append(b[:start+s.headEnd], b[s.dataAt:]...)
		}
		if last {
			b = append(b, "0\r\n\r\n"...)
		}
	}
	if _, err := s.c.write(b[start:]); err != nil {
		s.err = err
		return err
	}
	s.headEnd = 0
	s.buf = s.buf[:0]
	if s.chunked {
		s.buf = s.buf[:chunkSizeRoom]
	}
	s.dataAt = len(s.buf)
	return nil
}

// compress feeds body bytes to the compressor.
func (s *gzipStream) compress(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	s.fresh = true
	_, err := s.zw.Write(p)
	return err
}

// flush sends what the compressor holds so far, so that a client of a
// stream that pauses (server-sent events, a long poll) gets each part when
// it comes: the head at once, then what the peer sent. It does nothing
// when all was sent.
func (s *gzipStream) flush() error {
	if !s.fresh && s.headEnd == 0 {
		return nil
	}
	s.fresh = false
	if err := s.zw.Flush(); err != nil {
		return err
	}
	return s.send(false)
}

// relayGzip passes the answer in res (its first bytes in rbuf) to the
// client gzip-coded, with the head opts say. It compresses what has come
// of the body, and before waiting for more it sends what it has: as nginx
// does without proxy buffering, a pause of the peer is a flush. It reports
// whether the peer connection may be reused, and the outcome.
func (f *forwarding) relayGzip(up *upConn, res *httpwire.Response, rbuf *[]byte, opts *httpwire.ResponseOptions) (reuse bool, out outcome) {
	c, req := f.c, &f.c.x.req
	var head []byte
	if c.h2s != nil {
		// The head goes as HEADERS; the stream's DATA use the buffer.
		if c.h2s.answer(res, opts, -1, nil, false) != nil {
			return false, clientGone
		}
		head = (*c.out)[:0]
	} else {
		head = httpwire.AppendResponse((*c.out)[:0], res, opts)
		if req.Minor == 0 {
			head[7] = '0'
		}
	}
	g := c.s.gzip
	s := g.getStream(c, head, !opts.Unchunk)
	defer g.putStream(s)
	fail := func(err error) (bool, outcome) {
		if s.err != nil || errors.Is(err, errClientClosed) {
			return false, clientGone
		}
		return false, brokenAnswer
	}

	reuse = !res.Close
	left := res.ContentLength
	var ch httpwire.Chunked
	pending := (*rbuf)[res.HeadLen:up.rw]
	for done := false; !done; {
		switch res.Framing {
		case httpwire.ByLength:
			k := min(int64(len(pending)), left)
			reuse = reuse && int64(len(pending)) <= left
			if err := s.compress(pending[:k]); err != nil {
				return fail(err)
			}
			left -= k
			done = left == 0
		case httpwire.ByChunks:
			for len(pending) > 0 && !done {
				n, data, end, err := ch.Decode(pending)
				if err != nil {
					return false, brokenAnswer
				}
				if err := s.compress(data); err != nil {
					return fail(err)
				}
				pending, done = pending[n:], end
			}
			reuse = reuse && len(pending) == 0
		default: // ByClose
			if err := s.compress(pending); err != nil {
				return fail(err)
			}
		}
		if done {
			break
		}
		want := *rbuf
		if res.Framing == httpwire.ByLength {
			want = want[:min(int64(len(want)), left)]
		}
		up.armRead(c.s.cfg.Timeouts.UpstreamRead)
		k, err := up.sock.ReadNow(want)
		if err == errWouldBlock {
			if err := s.flush(); err != nil {
				return fail(err)
			}
			k, err = up.sock.Read(want)
		}
		if k == 0 && err != nil {
			if err == io.EOF && res.Framing == httpwire.ByClose {
				break
			}
			return false, brokenAnswer
		}
		pending = want[:k]
	}
	if err := s.zw.Close(); err != nil {
		return fail(err)
	}
	if err := s.send(true); err != nil {
		return false, clientGone
	}
	return reuse && res.Framing != httpwire.ByClose, answered
}
