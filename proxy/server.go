package proxy

import (
	"context"
	"errors"
	"net"
	"time"
)

// Server is what Serve runs: *FastServer.
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
	if serr := <-errc; serr != nil && !errors.Is(serr, errServerClosed) {
		return serr
	}
	return err
}
