package discovery

import (
	"fmt"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wharflb/wharf/lb"
)

// DefaultPrefix is the label prefix used when none is configured
// (--label-prefix).
const DefaultPrefix = "lb"

// Defaults of the active health check labels.
const (
	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
)

// Labels is the validated content of a container's <prefix>.* labels, with
// the defaults of DESIGN.md filled in for absent labels.
//
// The routing rules are the exception: an absent lb.host, lb.path or
// lb.policy leaves the zero value in Rules (no hosts, "" path, "" policy),
// so that whoever merges the rules of a service's members can tell "no
// opinion" from an explicit value. The zero Rules match every request, and
// lb.ParsePolicy("") is lb.RoundRobin, so the zero values mean the defaults.
type Labels struct {
	Enable bool // <prefix>.enable
	Port   int  // <prefix>.port; 0 when absent (Map then infers it)

	Service     string
	Weight      int
	Backup      bool
	MaxFails    int
	FailTimeout time.Duration

	Rules  lb.Rules
	Health lb.HealthCheck

	// Unknown holds the full keys of labels that carry the prefix but are not
	// wharf labels (a typo such as "lb.wieght", or a newer wharf's label),
	// sorted. They are not an error; the caller may log them.
	Unknown []string
}

// LabelError is one label whose value cannot be used.
type LabelError struct {
	Key   string // full key, e.g. "lb.weight"
	Value string // the value as given
	Want  string // what is allowed, or what is wrong with the value
}

func (e *LabelError) Error() string {
	return fmt.Sprintf("label %s=%q: %s", e.Key, e.Value, e.Want)
}

// LabelErrors lists every bad label of one container, in the order of the
// labels table of DESIGN.md.
type LabelErrors []*LabelError

func (es LabelErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.As find each *LabelError.
func (es LabelErrors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// The wharf labels, without the prefix, in the order of DESIGN.md.
const (
	labelEnable         = "enable"
	labelPort           = "port"
	labelWeight         = "weight"
	labelBackup         = "backup"
	labelMaxFails       = "max_fails"
	labelFailTimeout    = "fail_timeout"
	labelService        = "service"
	labelHost           = "host"
	labelPath           = "path"
	labelPathStrip      = "path.strip"
	labelPolicy         = "policy"
	labelHealthPath     = "health.path"
	labelHealthInterval = "health.interval"
	labelHealthTimeout  = "health.timeout"
)

// What each label allows, as error messages say it.
const (
	wantBool       = "want true or false (also yes/no, on/off, 1/0; no value means true)"
	wantPort       = "want a container port from 1 to 65535"
	wantWeight     = "want an integer from 1 to 1000"
	wantMaxFails   = "want an integer of 0 or more (0 disables the failure count)"
	wantDuration   = "want a duration greater than 0 such as 10s, 1m30s or 500ms (a plain number means seconds)"
	wantService    = "want a name of 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
	wantPath       = "want a path prefix starting with \"/\", without spaces, '?', '#', empty, \".\" or \"..\" segments"
	wantPolicy     = "want round_robin, least_conn, ip_hash or p2c"
	wantHealthPath = "want a path starting with \"/\" (a query is allowed), without spaces or '#'"
)

// Length limits of names: a service name, a DNS name and one of its labels.
const (
	maxServiceName  = 63
	maxHostName     = 253
	maxHostNameComp = 63
)

type labelSpec struct {
	name string
	// parse stores the value in l, or returns what is allowed.
	parse func(l *Labels, v string) (want string)
}

var labelSpecs = []labelSpec{
	{labelEnable, func(l *Labels, v string) string { return parseBool(&l.Enable, v) }},
	{labelPort, func(l *Labels, v string) string {
		n, ok := parsePort(v)
		if !ok {
			return wantPort
		}
		l.Port = n
		return ""
	}},
	{labelWeight, func(l *Labels, v string) string {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > lb.MaxWeight {
			return wantWeight
		}
		l.Weight = n
		return ""
	}},
	{labelBackup, func(l *Labels, v string) string { return parseBool(&l.Backup, v) }},
	{labelMaxFails, func(l *Labels, v string) string {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return wantMaxFails
		}
		l.MaxFails = n
		return ""
	}},
	{labelFailTimeout, func(l *Labels, v string) string { return parseDuration(&l.FailTimeout, v) }},
	{labelService, func(l *Labels, v string) string {
		if !validServiceName(v) {
			return wantService
		}
		l.Service = v
		return ""
	}},
	{labelHost, func(l *Labels, v string) string {
		hosts, want := parseHosts(v)
		if want != "" {
			return want
		}
		l.Rules.Hosts = hosts
		return ""
	}},
	{labelPath, func(l *Labels, v string) string {
		if !validPathPrefix(v) {
			return wantPath
		}
		l.Rules.PathPrefix = v
		return ""
	}},
	{labelPathStrip, func(l *Labels, v string) string { return parseBool(&l.Rules.StripPrefix, v) }},
	{labelPolicy, func(l *Labels, v string) string {
		p, err := lb.ParsePolicy(strings.ToLower(v))
		if err != nil || v == "" {
			return wantPolicy
		}
		l.Rules.Policy = p
		return ""
	}},
	{labelHealthPath, func(l *Labels, v string) string {
		if !validHealthPath(v) {
			return wantHealthPath
		}
		l.Health.Path = v
		return ""
	}},
	{labelHealthInterval, func(l *Labels, v string) string { return parseDuration(&l.Health.Interval, v) }},
	{labelHealthTimeout, func(l *Labels, v string) string { return parseDuration(&l.Health.Timeout, v) }},
}

// normPrefix returns the prefix without a trailing dot; "" means
// DefaultPrefix.
func normPrefix(prefix string) string {
	prefix = strings.TrimSuffix(prefix, ".")
	if prefix == "" {
		return DefaultPrefix
	}
	return prefix
}

// ParseLabels parses and validates the labels of a container whose keys
// start with prefix + "." (prefix "" means DefaultPrefix). Keys are matched
// exactly (case-sensitively); values are trimmed of surrounding white space.
//
// Absent labels take the defaults of DESIGN.md (see Labels for the routing
// rules). The value syntax:
//
//   - booleans (enable, backup, path.strip): true/false, yes/no, on/off, 1/0,
//     in any case; an empty value means true, so "--label lb.backup" works
//     like nginx's "backup" flag.
//   - port: 1-65535, optionally followed by "/tcp".
//   - weight: integer 1-1000. max_fails: integer >= 0, 0 disables.
//   - durations (fail_timeout, health.interval, health.timeout): Go syntax
//     ("30s", "1m30s", "500ms") or a plain integer meaning seconds (nginx's
//     "fail_timeout=30"); always greater than 0, and health.timeout shorter
//     than health.interval.
//   - service: 1-63 letters, digits, '.', '_', '-', starting with a letter
//     or digit; case is kept.
//   - host: comma-separated host names, exact ("api.example.com") or one
//     leading wildcard label ("*.example.com"), or IP addresses. Names are
//     lower-cased, a ":port" and a trailing dot are removed, IPv6 brackets
//     are removed ("[::1]:80" becomes "::1"), duplicates and empty items are
//     dropped.
//   - path: a prefix starting with "/", without spaces, '?', '#', or empty,
//     "." and ".." segments; kept as given (a trailing "/" is significant).
//   - policy: as lb.ParsePolicy, in any case, but not empty.
//   - health.path: starts with "/", may carry a query.
//
// Any other value, including an empty one for a non-boolean label, is an
// error. The error is a LabelErrors listing every bad label, each naming the
// full key, the value and what is allowed, e.g.
// `label lb.weight="abc": want an integer from 1 to 1000`. Even then the
// returned Labels holds every label that did parse, and Enable and Unknown
// are set.
//
// Labels with the prefix that are not wharf labels are not an error: their
// keys are returned in Labels.Unknown.
func ParseLabels(labels map[string]string, prefix string) (Labels, error) {
	prefix = normPrefix(prefix) + "."
	l := Labels{
		Service:     lb.DefaultService,
		Weight:      lb.DefaultWeight,
		MaxFails:    lb.DefaultMaxFails,
		FailTimeout: lb.DefaultFailTimeout,
		Health: lb.HealthCheck{
			Interval: DefaultHealthInterval,
			Timeout:  DefaultHealthTimeout,
		},
	}
	var errs LabelErrors
	bad := map[string]bool{}
	for _, s := range labelSpecs {
		raw, ok := labels[prefix+s.name]
		if !ok {
			continue
		}
		if want := s.parse(&l, strings.TrimSpace(raw)); want != "" {
			errs = append(errs, &LabelError{Key: prefix + s.name, Value: raw, Want: want})
			bad[s.name] = true
		}
	}

	// health.timeout must be shorter than health.interval; blame the label
	// that was set (the timeout when both were).
	if !bad[labelHealthInterval] && !bad[labelHealthTimeout] && l.Health.Timeout >= l.Health.Interval {
		if v, ok := labels[prefix+labelHealthTimeout]; ok {
			errs = append(errs, &LabelError{Key: prefix + labelHealthTimeout, Value: v,
				Want: fmt.Sprintf("want a duration shorter than %s%s (%s)", prefix, labelHealthInterval, l.Health.Interval)})
		} else {
			errs = append(errs, &LabelError{Key: prefix + labelHealthInterval, Value: labels[prefix+labelHealthInterval],
				Want: fmt.Sprintf("want a duration longer than %s%s (%s)", prefix, labelHealthTimeout, l.Health.Timeout)})
		}
	}

	for k := range labels {
		if name, ok := strings.CutPrefix(k, prefix); ok && !knownLabel(name) {
			l.Unknown = append(l.Unknown, k)
		}
	}
	sort.Strings(l.Unknown)

	if len(errs) > 0 {
		return l, errs
	}
	return l, nil
}

func knownLabel(name string) bool {
	for _, s := range labelSpecs {
		if s.name == name {
			return true
		}
	}
	return false
}

func parseBool(dst *bool, v string) string {
	switch strings.ToLower(v) {
	case "", "true", "yes", "on", "1":
		*dst = true
	case "false", "no", "off", "0":
		*dst = false
	default:
		return wantBool
	}
	return ""
}

// parsePort parses "6969" or "6969/tcp".
func parsePort(v string) (int, bool) {
	num, proto, found := strings.Cut(v, "/")
	if found && strings.ToLower(proto) != "tcp" {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n > 65535 || num[0] == '+' {
		return 0, false
	}
	return n, true
}

// parseDuration parses a Go duration or a plain integer of seconds; the
// result must be greater than 0.
func parseDuration(dst *time.Duration, v string) string {
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > int64(1<<63-1)/int64(time.Second) {
			return wantDuration
		}
		d = time.Duration(n) * time.Second
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			return wantDuration
		}
	}
	*dst = d
	return ""
}

func validServiceName(s string) bool {
	if s == "" || len(s) > maxServiceName || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// parseHosts parses the comma-separated lb.host value (see ParseLabels).
func parseHosts(v string) ([]string, string) {
	var hosts []string
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		h, ok := normHost(item)
		if !ok {
			return nil, fmt.Sprintf("%q is not a host name: want comma-separated names such as api.example.com or *.example.com, or IP addresses, with an optional :port", item)
		}
		if !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return nil, "want comma-separated host names such as api.example.com or *.example.com"
	}
	return hosts, ""
}

// normHost validates one lb.host item and returns it lower-cased, without
// port, trailing dot or IPv6 brackets.
func normHost(s string) (string, bool) {
	s = strings.ToLower(s)
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["): // [v6] or [v6]:port
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", false
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			var ok bool
			if port, ok = strings.CutPrefix(port, ":"); !ok {
				return "", false
			}
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return "", false
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
	case strings.Count(s, ":") > 1: // a bare IPv6 address
		if a, err := netip.ParseAddr(s); err != nil || !a.Is6() {
			return "", false
		}
		return s, true
	}
	if port != "" {
		if _, ok := parsePort(port); !ok {
			return "", false
		}
	} else if strings.HasSuffix(s, ":") {
		return "", false
	}
	if strings.Contains(host, ":") { // IPv6 literal
		return host, true
	}
	host = strings.TrimSuffix(host, ".")
	name, wild := strings.CutPrefix(host, "*.")
	if !validHostName(name) {
		return "", false
	}
	if wild {
		if _, err := netip.ParseAddr(name); err == nil {
			return "", false // *.10.0.0.1
		}
	}
	return host, true
}

// validHostName reports whether s is a DNS name of letters, digits, '-' and
// '_' (as Docker and Compose names use), or an IPv4 address.
func validHostName(s string) bool {
	if s == "" || len(s) > maxHostName {
		return false
	}
	for _, comp := range strings.Split(s, ".") {
		if comp == "" || len(comp) > maxHostNameComp || comp[0] == '-' || comp[len(comp)-1] == '-' {
			return false
		}
		for i := 0; i < len(comp); i++ {
			if c := comp[i]; !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// validPathPrefix reports whether s can be an lb.path prefix.
func validPathPrefix(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, "?#") || hasSpaceOrControl(s) {
		return false
	}
	if s == "/" {
		return true
	}
	segs := strings.Split(s[1:], "/")
	for i, seg := range segs {
		if seg == "" && i == len(segs)-1 {
			break // a trailing slash
		}
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// validHealthPath reports whether s can be requested as a health check: an
// absolute path with an optional query.
func validHealthPath(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.Contains(s, "#") || hasSpaceOrControl(s) {
		return false
	}
	u, err := url.ParseRequestURI(s)
	return err == nil && u.Scheme == "" && u.Host == ""
}

func hasSpaceOrControl(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '\u00a0' {
			return true
		}
	}
	return false
}
