package proxy

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"

	"github.com/wharflb/wharf/proxy/internal/httpwire"
)

// DefaultGzipTypes are the gzip_types of the nginx set-up wharf replaces.
var DefaultGzipTypes = []string{
	"text/plain", "text/css", "application/json", "application/x-javascript",
	"text/xml", "application/xml", "application/xml+rss", "text/javascript",
}

// GzipMinLength is the shortest answer of known length worth compressing
// (nginx's gzip_min_length default): below it the gzip framing (18 bytes)
// costs more than it can save. An answer of unknown length is compressed
// whatever its length, as nginx does.
const GzipMinLength = 20

// DefaultGzipLevel is nginx's gzip_comp_level default: the fastest level,
// which already gets most of the gain on text.
const DefaultGzipLevel = 1

// GzipConfig is response compression (nginx's gzip module). The zero value
// compresses nothing.
type GzipConfig struct {
	// On compresses, for clients whose Accept-Encoding allows gzip, the
	// answers whose media type is in Types (or text/html, which nginx
	// always compresses) that have a body, no Content-Encoding, no
	// Content-Range (nor a 206 status), no "Cache-Control: no-transform",
	// and, when their length is known, at least GzipMinLength bytes.
	// Such answers carry "Vary: Accept-Encoding" whether compressed or
	// not.
	On bool
	// Types are the media types compressed, compared without parameters
	// and case; "*" is any type. nil means DefaultGzipTypes.
	Types []string
	// Level is the compression level, 1 (fastest) to 9 (smallest); 0 means
	// DefaultGzipLevel. The fast path takes the nearest level for one
	// outside the range (Validate refuses it).
	Level int
}

// Validate reports a level outside 1 to 9 or an empty type.
func (g GzipConfig) Validate() error {
	if g.Level != 0 && (g.Level < gzip.BestSpeed || g.Level > gzip.BestCompression) {
		return fmt.Errorf("gzip: level %d is not between 1 and 9", g.Level)
	}
	for _, t := range g.Types {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("gzip: empty media type")
		}
	}
	return nil
}

// gzipRules is a GzipConfig made ready for the data path: the types
// lowercased, and the compressors of its level pooled. A nil *gzipRules
// compresses nothing.
type gzipRules struct {
	types   [][]byte
	anyType bool
	level   int
	writers sync.Pool // of *gzipStream
}

func newGzipRules(g GzipConfig) *gzipRules {
	if !g.On {
		return nil
	}
	types := g.Types
	if types == nil {
		types = DefaultGzipTypes
	}
	r := &gzipRules{level: g.Level}
	if r.level == 0 {
		r.level = DefaultGzipLevel
	}
	r.level = min(max(r.level, gzip.BestSpeed), gzip.BestCompression)
	for _, t := range append([]string{"text/html"}, types...) {
		t = strings.ToLower(strings.TrimSpace(t))
		r.anyType = r.anyType || t == "*"
		r.types = append(r.types, []byte(t))
	}
	return r
}

// compressible reports whether the answer res, to a request that was not
// HEAD, may be compressed (see GzipConfig.On); it then depends on the
// client's Accept-Encoding, and says so in Vary.
func (g *gzipRules) compressible(res *httpwire.Response) bool {
	if g == nil || res.Status == http.StatusPartialContent || res.Upgrade != nil {
		return false
	}
	switch res.Framing {
	case httpwire.NoBody:
		return false
	case httpwire.ByLength:
		if res.ContentLength < GzipMinLength {
			return false
		}
	}
	f := httpwire.ScanGzipFields(res)
	if f.Encoded || f.Ranged || f.NoTransform || f.ContentType == nil {
		return false
	}
	return g.matchType(f.ContentType)
}

// matchType reports whether the media type mt (without parameters) is
// one of the types.
func (g *gzipRules) matchType(mt []byte) bool {
	if g.anyType {
		return true
	}
	for _, t := range g.types {
		if len(t) == len(mt) && bytes.EqualFold(t, mt) {
			return true
		}
	}
	return false
}
