package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// NewServer returns the entry-point HTTP server for handler, with the
// time limits a public-facing proxy needs: slow-header clients are cut off,
// idle keep-alive connections are closed after nginx's keepalive_timeout.
// They are the defaults of the fast path's (see Timeouts).
func NewServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: DefaultRequestHeaderTimeout,
		IdleTimeout:       DefaultClientIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
	}
}

// Server is what Serve runs: *http.Server (the reference engine) or
// *FastServer.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// Serve serves srv on ln until ctx is done, then stops accepting and lets
// in-flight requests finish for at most grace. It returns nil after a clean
// shutdown.
func Serve(ctx context.Context, srv Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		return errors.New("shutdown timeout: some requests were cut off")
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, errServerClosed) {
		return serr
	}
	return err
}
