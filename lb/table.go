package lb

import (
	"fmt"
	"sort"
	"strings"
)

// Table is an immutable snapshot of every service and its routing rules.
// Route is safe for concurrent use and allocates nothing.
type Table struct {
	pools  []*Pool // by name
	byName map[string]*Pool

	exact map[string][]route // lower-case host → routes, longest prefix first
	wild  []wildRoutes       // "*.example.com" rules, longest suffix first
	any   []route            // services without a host rule

	// Warnings name rule conflicts found while building the table.
	Warnings []string
}

type route struct {
	prefix string // "" matches every path
	pool   *Pool
}

type wildRoutes struct {
	suffix string // ".example.com"
	routes []route
}

// Pools lists the services by name.
func (t *Table) Pools() []*Pool { return t.pools }

// Pool returns the named service, or nil.
func (t *Table) Pool(name string) *Pool { return t.byName[name] }

// Route returns the service for a request to host (as sent in the Host
// header; a port is ignored) and path, or nil when no service matches.
//
// Host rules choose first: an exact name, then the longest matching
// wildcard, then the services without a host rule; within the first group
// that has a match, the longest matching path prefix wins. A prefix matches
// whole path segments: "/api" matches "/api" and "/api/x", not "/apix".
func (t *Table) Route(host, path string) *Pool {
	host = stripPort(host)
	var buf [256]byte
	if needsLower(host) && len(host) <= len(buf) {
		n := copy(buf[:], host)
		for i := 0; i < n; i++ {
			if c := buf[i]; 'A' <= c && c <= 'Z' {
				buf[i] = c + 'a' - 'A'
			}
		}
		if rs, ok := t.exact[string(buf[:n])]; ok {
			if p := matchPath(rs, path); p != nil {
				return p
			}
		}
		host = string(buf[:n]) // rare: upper-case Host header
	} else if rs, ok := t.exact[host]; ok {
		if p := matchPath(rs, path); p != nil {
			return p
		}
	}
	for i := range t.wild {
		w := &t.wild[i]
		if len(host) > len(w.suffix) && strings.HasSuffix(host, w.suffix) {
			if p := matchPath(w.routes, path); p != nil {
				return p
			}
		}
	}
	return matchPath(t.any, path)
}

func matchPath(rs []route, path string) *Pool {
	for _, r := range rs {
		if pathHasPrefix(path, r.prefix) {
			return r.pool
		}
	}
	return nil
}

func pathHasPrefix(path, prefix string) bool {
	if prefix == "" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		return host[:i]
	}
	return host
}

func needsLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// normalizePrefix turns "/", "" and "/api/" style prefixes into the form
// Route compares: "" for everything, otherwise without a trailing slash
// unless the prefix is meant to require one.
func normalizePrefix(p string) string {
	if p == "/" {
		return ""
	}
	return p
}

// buildTable assembles the routing structures for pools. A rule (host and
// path) claimed by two services goes to the one whose name sorts first and
// yields a warning naming both.
func buildTable(pools []*Pool) *Table {
	sort.Slice(pools, func(i, j int) bool { return pools[i].name < pools[j].name })
	t := &Table{pools: pools, byName: make(map[string]*Pool, len(pools)), exact: map[string][]route{}}
	type key struct{ host, prefix string }
	owner := map[key]*Pool{}
	wild := map[string][]route{}
	for _, p := range pools {
		t.byName[p.name] = p
		prefix := normalizePrefix(p.rules.PathPrefix)
		hosts := p.rules.Hosts
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		for _, h := range hosts {
			h = strings.ToLower(stripPort(h))
			k := key{h, prefix}
			if o, dup := owner[k]; dup {
				t.Warnings = append(t.Warnings, fmt.Sprintf(
					"services %q and %q both claim host %q path %q; %q receives the requests",
					o.name, p.name, displayHost(h), displayPrefix(prefix), o.name))
				continue
			}
			owner[k] = p
			r := route{prefix: prefix, pool: p}
			switch {
			case h == "":
				t.any = append(t.any, r)
			case strings.HasPrefix(h, "*."):
				wild[h[1:]] = append(wild[h[1:]], r)
			default:
				t.exact[h] = append(t.exact[h], r)
			}
		}
	}
	byLen := func(rs []route) {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].prefix) > len(rs[j].prefix) })
	}
	for _, rs := range t.exact {
		byLen(rs)
	}
	byLen(t.any)
	for s, rs := range wild {
		byLen(rs)
		t.wild = append(t.wild, wildRoutes{suffix: s, routes: rs})
	}
	sort.Slice(t.wild, func(i, j int) bool {
		if len(t.wild[i].suffix) != len(t.wild[j].suffix) {
			return len(t.wild[i].suffix) > len(t.wild[j].suffix)
		}
		return t.wild[i].suffix < t.wild[j].suffix
	})
	return t
}

func displayHost(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

func displayPrefix(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
