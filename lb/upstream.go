package lb

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseUpstream parses a static peer as given to --upstream, in the words
// of nginx's server directive:
//
//	HOST:PORT[,weight=N][,backup][,max_fails=N][,fail_timeout=D][,service=NAME]
//	unix:/PATH[,...]
//
// fail_timeout is a Go duration ("30s") or a number of seconds ("30").
func ParseUpstream(spec string) (Backend, error) {
	parts := strings.Split(spec, ",")
	addr := strings.TrimSpace(parts[0])
	b := Backend{
		Service:     DefaultService,
		Weight:      DefaultWeight,
		MaxFails:    DefaultMaxFails,
		FailTimeout: DefaultFailTimeout,
	}
	switch {
	case strings.HasPrefix(addr, "unix:"):
		b.Network, b.Addr = "unix", strings.TrimPrefix(addr, "unix:")
		if !strings.HasPrefix(b.Addr, "/") {
			return b, fmt.Errorf("upstream %q: a unix socket needs an absolute path (unix:/run/app.sock)", spec)
		}
	default:
		host, port, ok := cutLast(addr, ':')
		if !ok || host == "" {
			return b, fmt.Errorf("upstream %q: want HOST:PORT or unix:/PATH", spec)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return b, fmt.Errorf("upstream %q: port %q is not a number from 1 to 65535", spec, port)
		}
		b.Network, b.Addr = "tcp", addr
	}
	b.ID, b.Name = "static:"+addr, addr
	for _, opt := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(opt), "=")
		var err error
		switch k {
		case "weight":
			b.Weight, err = strconv.Atoi(v)
			if err == nil && (b.Weight < 1 || b.Weight > MaxWeight) {
				err = fmt.Errorf("out of range 1-%d", MaxWeight)
			}
		case "backup":
			if v != "" {
				b.Backup, err = strconv.ParseBool(v)
			} else {
				b.Backup = true
			}
		case "max_fails":
			b.MaxFails, err = strconv.Atoi(v)
			if err == nil && b.MaxFails < 0 {
				err = fmt.Errorf("negative")
			}
		case "fail_timeout":
			b.FailTimeout, err = ParseSeconds(v)
		case "service":
			b.Service = v
			if v == "" {
				err = fmt.Errorf("empty")
			}
		default:
			return b, fmt.Errorf("upstream %q: unknown option %q (want weight, backup, max_fails, fail_timeout or service)", spec, k)
		}
		if err != nil {
			return b, fmt.Errorf("upstream %q: bad %s %q: %v", spec, k, v, err)
		}
	}
	return b, nil
}

// ParseSeconds parses a positive Go duration, or a bare number of seconds
// as nginx writes its times.
func ParseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("must be positive")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("want a duration like 10s")
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive")
	}
	return d, nil
}

func cutLast(s string, sep byte) (before, after string, found bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
