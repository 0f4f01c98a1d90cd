package httpwire

import (
	"path"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/", "/", true},
		{"/api/users", "/api/users", true},
		{"/api/users/", "/api/users/", true},
		{"/.well-known/acme", "/.well-known/acme", true},
		{"/api/../secret", "/secret", true},
		{"/api/%2e%2e/secret", "/secret", true},
		{"/api/%2E%2E/secret", "/secret", true},
		{"/api/..%2fsecret", "/secret", true},
		{"/api/..%2Fsecret", "/secret", true},
		{"/api/./x", "/api/x", true},
		{"/api/.", "/api/", true},
		{"/api/..", "/", true},
		{"//api///x", "/api/x", true},
		{"/api/x/..%2f..%2fsecret", "/secret", true},
		{"/%61pi/x", "/api/x", true},
		{"/a%20b", "/a b", true},
		{"/a/b/../../..", "", false},
		{"/../secret", "", false},
		{"/%2e%2e/secret", "", false},
		{"/api/...", "/api/...", true},
		{"/api/..x", "/api/..x", true},
		{"*", "*", true},
	} {
		got, ok := NormalizePath(nil, []byte(tc.in))
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("NormalizePath(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestNormalizePathAgreesWithClean holds NormalizePath to path.Clean for
// paths without escapes, up to the trailing slash that Clean drops.
func TestNormalizePathAgreesWithClean(t *testing.T) {
	parts := []string{"a", "b", ".", "..", "", ".x"}
	var gen func(prefix string, depth int)
	gen = func(prefix string, depth int) {
		if depth == 0 {
			return
		}
		for _, p := range parts {
			in := prefix + "/" + p
			got, ok := NormalizePath(make([]byte, 0, 4), []byte(in))
			clean := path.Clean(in)
			if ok == climbs(in) {
				t.Errorf("NormalizePath(%q) ok %v, but climbing above the root is %v", in, ok, climbs(in))
			} else if g := string(got); ok && g != clean && g != clean+"/" {
				t.Errorf("NormalizePath(%q) = %q; Clean says %q", in, g, clean)
			}
			gen(in, depth-1)
		}
	}
	gen("", 5)
}

// climbs reports whether a ".." of p goes above the root, where Clean
// stays at "/" and NormalizePath refuses.
func climbs(p string) bool {
	depth := 0
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func TestNormalizePathAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 64)
	for _, p := range [][]byte{[]byte("/api/users?x=1"), []byte("/api/../x/%2e/y")} {
		if n := testing.AllocsPerRun(100, func() { NormalizePath(buf, p) }); n != 0 {
			t.Errorf("NormalizePath(%q): %v allocations, want 0", p, n)
		}
	}
}
