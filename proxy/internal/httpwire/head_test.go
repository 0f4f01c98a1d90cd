package httpwire

import (
	"strings"
	"testing"
)

func TestValidValue(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c == '\t' || c >= 0x20 && c != 0x7f
		for _, pos := range []int{0, 3, 7, 8, 12, 16} {
			v := []byte(strings.Repeat("a", 17))
			v[pos] = byte(c)
			if got := validValue(v); got != want {
				t.Errorf("validValue with %#x at %d = %v", c, pos, got)
			}
		}
	}
}
