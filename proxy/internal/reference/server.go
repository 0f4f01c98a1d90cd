package reference

import "net/http"

// NewServer returns the entry-point HTTP server for h, which cuts off a
// client whose request head takes longer than Config.RequestHeader to
// arrive, and closes a keep-alive connection idle for Config.ClientIdle.
func NewServer(h *Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: h.cfg.RequestHeader,
		IdleTimeout:       h.cfg.ClientIdle,
		MaxHeaderBytes:    64 << 10,
	}
}
