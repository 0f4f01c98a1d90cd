package httpwire

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// stricter lists the errors for requests net/http's server accepts.
var stricter = map[error]bool{
	ErrObsFold: true, ErrLengthAndChunked: true, ErrTransferEncoding10: true,
	ErrUnsupportedVersion: true, ErrUpgrade: true,
}

// TestAgainstServer sends every complete request seed to a real net/http
// server and expects the status it answers to be the one ParseRequest
// implies: the handler's 200, 417 for an unsupported expectation, or the
// rejection's Status.
func TestAgainstServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
	}))
	defer srv.Close()
	for _, s := range requestSeeds() {
		var p Parser
		var r Request
		err := p.ParseRequest(&r, []byte(s))
		want := 200
		switch e, _ := err.(*Error); {
		case err == ErrNeedMore:
			continue
		case err == ErrUnsupportedVersion && r.Minor == 0 && string(r.Method) == "PRI":
			continue // the server hands "PRI * HTTP/2.0" to the handler
		case e != nil:
			want = e.Status()
		case r.ExpectOther:
			want = 417
		}
		got := serverStatus(t, srv.Listener.Addr().String(), s)
		if got == want || stricter[err] && got == 200 {
			continue
		}
		t.Errorf("%q: net/http server answers %d, ParseRequest implies %d (%v)", s, got, want, err)
	}
}

func serverStatus(t *testing.T, addr, req string) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite() // ends an incomplete body
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	return res.StatusCode
}
