package httpwire

import (
	"strings"
	"testing"
)

type resSummary struct {
	Minor, Status int
	Reason        string
	ContentLength int64
	Chunked       bool
	Framing       Framing
	Close         bool
	Upgrade       string
	Informational bool
	HeadLen       int
}

func summarizeResponse(r *Response) resSummary {
	return resSummary{Minor: r.Minor, Status: r.Status, Reason: string(r.Reason), ContentLength: r.ContentLength,
		Chunked: r.Chunked, Framing: r.Framing, Close: r.Close, Upgrade: string(r.Upgrade),
		Informational: r.Informational(), HeadLen: r.HeadLen}
}

func TestParseResponseAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		head bool
		want resSummary
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: 2, Framing: ByLength}},
		{"zero length", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: 0, Framing: NoBody}},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: -1, Chunked: true, Framing: ByChunks}},
		{"chunked wins over length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: 5, Chunked: true, Framing: ByChunks}},
		{"until close", "HTTP/1.1 200 OK\r\n\r\nbody", false,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: -1, Framing: ByClose, Close: true}},
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: 99, Framing: NoBody}},
		{"HEAD chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: -1, Chunked: true, Framing: NoBody}},
		{"HEAD without length", "HTTP/1.1 200 OK\r\n\r\n", true,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: -1, Framing: NoBody}},
		{"204 ignores length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false,
			resSummary{Minor: 1, Status: 204, Reason: "No Content", ContentLength: 5, Framing: NoBody}},
		{"304 ignores chunked", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", false,
			resSummary{Minor: 1, Status: 304, Reason: "Not Modified", ContentLength: -1, Chunked: true, Framing: NoBody}},
		{"100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", false,
			resSummary{Minor: 1, Status: 100, Reason: "Continue", ContentLength: -1, Informational: true}},
		{"103 Early Hints", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", false,
			resSummary{Minor: 1, Status: 103, Reason: "Early Hints", ContentLength: -1, Informational: true}},
		{"101 upgrade", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false,
			resSummary{Minor: 1, Status: 101, Reason: "Switching Protocols", ContentLength: -1, Upgrade: "websocket"}},
		{"101 with close is no switch", "HTTP/1.1 101 Switching Protocols\r\nConnection: close, upgrade\r\nUpgrade: websocket\r\n\r\n", false,
			resSummary{Minor: 1, Status: 101, Reason: "Switching Protocols", ContentLength: -1, Close: true}},
		{"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false,
			resSummary{Minor: 0, Status: 200, Reason: "OK", ContentLength: 1, Framing: ByLength, Close: true}},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false,
			resSummary{Minor: 0, Status: 200, Reason: "OK", ContentLength: 1, Framing: ByLength}},
		{"HTTP/1.0 ignores Transfer-Encoding", "HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\n", false,
			resSummary{Minor: 0, Status: 200, Reason: "OK", ContentLength: 1, Framing: ByLength, Close: true}},
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: 1, Framing: ByLength, Close: true}},
		{"no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false,
			resSummary{Minor: 1, Status: 200, ContentLength: 0}},
		{"spaces before code", "HTTP/1.1   200  OK\r\nContent-Length: 0\r\n\r\n", false,
			resSummary{Minor: 1, Status: 200, Reason: " OK", ContentLength: 0}},
		{"unknown code", "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n", false,
			resSummary{Minor: 1, Status: 999, Reason: "Odd", ContentLength: 0}},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false,
			resSummary{Minor: 1, Status: 200, Reason: "OK", ContentLength: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Parser
			var r Response
			if err := p.ParseResponse(&r, []byte(tt.in), tt.head); err != nil {
				t.Fatalf("ParseResponse(%q): %v", tt.in, err)
			}
			want := tt.want
			want.HeadLen = len(tt.in)
			for _, end := range []string{"\r\n\r\n", "\n\n"} {
				if i := strings.Index(tt.in, end); i >= 0 {
					want.HeadLen = i + len(end)
					break
				}
			}
			if got := summarizeResponse(&r); got != want {
				t.Errorf("ParseResponse(%q):\ngot  %+v\nwant %+v", tt.in, got, want)
			}
		})
	}
}

func TestParseResponseRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  *Error
	}{
		{"no space", "HTTP/1.1\r\n\r\n", ErrStatusLine},
		{"two-digit code", "HTTP/1.1 20 OK\r\n\r\n", ErrStatusLine},
		{"four-digit code", "HTTP/1.1 2000 OK\r\n\r\n", ErrStatusLine},
		{"tab after code", "HTTP/1.1 200\tOK\r\n\r\n", ErrStatusLine},
		{"signed code", "HTTP/1.1 +99 OK\r\n\r\n", ErrStatusCode},
		{"code below 100", "HTTP/1.1 099 OK\r\n\r\n", ErrStatusCode},
		{"letters in code", "HTTP/1.1 2x0 OK\r\n\r\n", ErrStatusCode},
		{"CR in reason", "HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n", ErrReason},
		{"NUL in reason", "HTTP/1.1 200 O\x00K\r\n\r\n", ErrReason},
		{"bad version", "HTTP/1.x 200 OK\r\n\r\n", ErrVersion},
		{"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", ErrUnsupportedVersion},
		{"HTTP/0.9", "HTTP/0.9 200 OK\r\n\r\n", ErrUnsupportedVersion},
		{"space before colon", "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n", ErrHeaderName},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", ErrObsFold},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n", ErrHeaderValue},
		{"CL conflict", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", ErrMultipleContentLength},
		{"bad CL on 204", "HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n", ErrContentLength},
		{"gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ErrTransferEncoding},
		{"two TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", ErrTransferEncoding},
		{"TE on 1xx still checked", "HTTP/1.1 100 Continue\r\nTransfer-Encoding: x\r\n\r\n", ErrTransferEncoding},
		{"bad trailer key", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Transfer-Encoding\r\n\r\n", ErrTrailerField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Parser
			var r Response
			if err := p.ParseResponse(&r, []byte(tt.in), false); err != tt.err {
				t.Errorf("ParseResponse(%q) = %v, want %v", tt.in, err, tt.err)
			}
		})
	}
}

// TestParseResponseInterim follows a 100 Continue and the final response
// arriving in one read.
func TestParseResponseInterim(t *testing.T) {
	stream := []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
	var p Parser
	var r Response
	if err := p.ParseResponse(&r, stream, false); err != nil || !r.Informational() {
		t.Fatalf("interim response: %v, status %d", err, r.Status)
	}
	stream = stream[r.HeadLen:]
	if err := p.ParseResponse(&r, stream, false); err != nil || r.Status != 201 || r.Framing != NoBody || r.HeadLen != len(stream) {
		t.Fatalf("final response: %v, status %d", err, r.Status)
	}
	if err := p.ParseResponse(&r, []byte("HTTP/1.1 200 OK\r\n"), false); err != ErrNeedMore {
		t.Fatalf("partial head: %v", err)
	}
}
