package lb

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseUpstream parses a static peer as given to --upstream, in the words
// of nginx's server directive:
//
//	HOST:PORT[,weight=N][,backup][,max_fails=N][,fail_timeout=D][,service=NAME]
//	unix:/PATH[,...]
//
// The options are the settings whose Upstream form is set (UpstreamOptions),
// parsed by ParseSettings as the labels are: fail_timeout is a Go duration
// ("30s") or a number of seconds ("30"), a bare "backup" means backup=true.
// A later option overrides an earlier one of the same name. The error names
// the spec and every bad option with its value.
func ParseUpstream(spec string) (Backend, error) {
	parts := strings.Split(spec, ",")
	addr := strings.TrimSpace(parts[0])
	var network, path string
	switch {
	case strings.HasPrefix(addr, "unix:"):
		network, path = "unix", strings.TrimPrefix(addr, "unix:")
		if !strings.HasPrefix(path, "/") {
			return Backend{}, fmt.Errorf("upstream %q: a unix socket needs an absolute path (unix:/run/app.sock)", spec)
		}
	default:
		host, port, ok := cutLast(addr, ':')
		if !ok || host == "" {
			return Backend{}, fmt.Errorf("upstream %q: want HOST:PORT or unix:/PATH", spec)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return Backend{}, fmt.Errorf("upstream %q: port %q is not a number from 1 to 65535", spec, port)
		}
		network, path = "tcp", addr
	}

	opts := make(map[string]string, len(parts)-1)
	for _, opt := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(opt), "=")
		if s, ok := LookupSetting(k); !ok || s.Upstream == "" {
			return Backend{}, fmt.Errorf("upstream %q: unknown option %q (want %s)", spec, k, UpstreamOptions())
		}
		opts[k] = v
	}
	b, err := ParseSettings(opts, "")
	if err != nil {
		return b, fmt.Errorf("upstream %q: %w", spec, err)
	}
	b.ID, b.Name = "static:"+addr, addr
	b.Network, b.Addr = network, path
	return b, nil
}

func cutLast(s string, sep byte) (before, after string, found bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
