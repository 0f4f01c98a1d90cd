package reference

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"
)

// The reference engine's client limits: net/http bounds a request's head
// and an idle connection itself, but not the wait between two reads of a
// body or two writes of an answer. These wrappers move the connection's
// deadlines before each read and write, through http.ResponseController,
// so that a client that stops sending a body, or stops taking an answer,
// is cut off after Config.RequestBody or Config.ClientSend.

// bodyReadLimit bounds each read of a request body by d.
type bodyReadLimit struct {
	io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
}

func (b *bodyReadLimit) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.d)) // not supported by every writer: then unbounded
	return b.ReadCloser.Read(p)
}

// sendLimit bounds each write of an answer by d. Unwrap lets
// ReverseProxy reach Flush of the real writer; Hijack clears the
// deadlines first, so that an upgraded connection (WebSocket) is not cut
// off by them.
type sendLimit struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (s *sendLimit) Write(p []byte) (int, error) {
	s.rc.SetWriteDeadline(time.Now().Add(s.d))
	return s.ResponseWriter.Write(p)
}

func (s *sendLimit) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *sendLimit) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	s.rc.SetReadDeadline(time.Time{})
	s.rc.SetWriteDeadline(time.Time{})
	return http.NewResponseController(s.ResponseWriter).Hijack()
}
