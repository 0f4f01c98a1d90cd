package reference

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzhttp"
)

// gzipMinLength is nginx's gzip_min_length default, as on the data path:
// an answer of known length shorter than it is not compressed.
const gzipMinLength = 20

// Gzip wraps h so that answers are compressed at level (1 to 9) for
// clients that accept gzip, by gzhttp's rules, when their media type,
// compared without parameters and case, is one of types ("*" is any) or
// text/html, which nginx always compresses. Its rules differ from the
// data path's in details: every answer that passes the wrapper carries
// Vary, and ETags are kept.
func Gzip(h http.Handler, types []string, level int) (http.Handler, error) {
	if level < 1 || level > 9 {
		return nil, fmt.Errorf("gzip: level %d is not between 1 and 9", level)
	}
	want := map[string]bool{"text/html": true}
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			return nil, fmt.Errorf("gzip: empty media type")
		}
		want[t] = true
	}
	match := func(ct string) bool {
		mt, _, _ := strings.Cut(ct, ";")
		return want["*"] || want[strings.ToLower(strings.TrimSpace(mt))]
	}
	wrap, err := gzhttp.NewWrapper(gzhttp.ContentTypeFilter(match), gzhttp.MinSize(gzipMinLength),
		gzhttp.CompressionLevel(level), gzhttp.EnableZstd(false))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return wrap(h), nil
}
