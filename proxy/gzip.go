package proxy

import (
	"fmt"
	"net/http"

	"github.com/klauspost/compress/gzhttp"
)

// DefaultGzipTypes are the gzip_types of the nginx set-up wharf replaces.
var DefaultGzipTypes = []string{
	"text/plain", "text/css", "application/json", "application/x-javascript",
	"text/xml", "application/xml", "application/xml+rss", "text/javascript",
}

// GzipMinSize is the smallest answer worth compressing: below it the gzip
// framing costs more than it saves.
const GzipMinSize = 256

// Gzip wraps h so that answers whose Content-Type is one of types are
// gzip-compressed for clients that accept it, when the peer did not encode
// them already and they are at least GzipMinSize bytes; Vary:
// Accept-Encoding is set on every answer that could have been compressed.
// Streaming (Flush) and upgrades (Hijack) pass through.
func Gzip(h http.Handler, types []string) (http.Handler, error) {
	wrap, err := gzhttp.NewWrapper(gzhttp.ContentTypes(types), gzhttp.MinSize(GzipMinSize), gzhttp.EnableZstd(false))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return wrap(h), nil
}
