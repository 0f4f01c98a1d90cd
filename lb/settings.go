package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// A Setting is one per-peer setting as every source names it: a container
// label without its prefix ("lb.weight" is "weight"), a Swarm service label,
// an --upstream option. All of them parse values with ParseSettings, so a
// setting's name, range and default are stated once, in this table.
//
// Which container a label belongs to, and the container port (lb.enable,
// lb.port), are Docker's business and live with the Docker source.
//
// A new setting is one row of settingTable plus its field in Backend (which
// Backend.Equal's test then demands be compared) and its row in the README's
// Labels table (which a test compares with this table). Every label source
// takes it at once; --upstream when its Upstream form is set.
type Setting struct {
	Name string

	// Default is what holds when the setting is absent, as the README's
	// Labels table states it: a value ("10s"), or a word where absence
	// means no rule ("any", "off").
	Default string

	// Want says which values are allowed, as error messages say it.
	Want string

	// Upstream is the setting's form among the options of --upstream
	// ("weight=N", "backup"), or "" when --upstream does not take it. The
	// flag keeps to the parameters of nginx's server directive, plus
	// service; host could not join as it is, since its list's commas are the
	// flag's option separator.
	Upstream string

	// parse stores the value, trimmed, in b, or returns what is allowed.
	parse func(b *Backend, v string) (want string)
}

// What the values allow, as error messages say it.
const (
	wantBool       = "want true or false (also t/f, yes/no, on/off, 1/0; no value means true)"
	wantMaxFails   = "want an integer of 0 or more (0 disables the failure count)"
	wantDuration   = "want a duration greater than 0 such as 10s, 1m30s or 500ms (a plain number means seconds)"
	wantHosts      = "want comma-separated host names such as api.example.com or *.example.com"
	wantPath       = "want a path prefix starting with \"/\", without spaces, '?', '#', empty, \".\" or \"..\" segments"
	wantTLS        = "want acme (the service's lb.host names get certificates from the ACME CA)"
	wantHealthPath = "want a path starting with \"/\" (a query is allowed), without spaces or '#'"
)

// The messages made from constants; set once, never changed.
var (
	wantWeight  = fmt.Sprintf("want an integer from %d to %d", MinWeight, MaxWeight)
	wantService = fmt.Sprintf("want a name of 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", maxServiceName)
	wantPolicy  = "want " + orList(policies[:])
)

// Length limits of names: a service name, a DNS name and one of its labels.
const (
	maxServiceName  = 63
	maxHostName     = 253
	maxHostNameComp = 63
)

// The two settings that constrain each other (the timeout is shorter than
// the interval), checked after each is parsed alone.
const (
	settingHealthInterval = "health.interval"
	settingHealthTimeout  = "health.timeout"
)

// settingTable is in the order of the README's Labels table, which a test
// compares with it; errors come in this order too.
var settingTable = [...]Setting{
	{Name: "weight", Default: strconv.Itoa(DefaultWeight), Want: wantWeight, Upstream: "weight=N",
		parse: func(b *Backend, v string) string {
			n, err := strconv.Atoi(v)
			if err != nil || n < MinWeight || n > MaxWeight {
				return wantWeight
			}
			b.Weight = n
			return ""
		}},
	{Name: "backup", Default: "false", Want: wantBool, Upstream: "backup",
		parse: func(b *Backend, v string) string { return setBool(&b.Backup, v) }},
	{Name: "max_fails", Default: strconv.Itoa(DefaultMaxFails), Want: wantMaxFails, Upstream: "max_fails=N",
		parse: func(b *Backend, v string) string {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return wantMaxFails
			}
			b.MaxFails = n
			return ""
		}},
	{Name: "fail_timeout", Default: DefaultFailTimeout.String(), Want: wantDuration, Upstream: "fail_timeout=D",
		parse: func(b *Backend, v string) string { return setDuration(&b.FailTimeout, v) }},
	{Name: "service", Default: DefaultService, Want: wantService, Upstream: "service=NAME",
		parse: func(b *Backend, v string) string {
			if !validServiceName(v) {
				return wantService
			}
			b.Service = v
			return ""
		}},
	{Name: "host", Default: "any", Want: wantHosts,
		parse: func(b *Backend, v string) string {
			hosts, want := parseHosts(v)
			if want != "" {
				return want
			}
			b.Rules.Hosts = hosts
			return ""
		}},
	{Name: "path", Default: "/", Want: wantPath,
		parse: func(b *Backend, v string) string {
			if !validPathPrefix(v) {
				return wantPath
			}
			b.Rules.PathPrefix = v
			return ""
		}},
	{Name: "path.strip", Default: "false", Want: wantBool,
		parse: func(b *Backend, v string) string { return setBool(&b.Rules.StripPrefix, v) }},
	{Name: "policy", Default: string(RoundRobin), Want: wantPolicy,
		parse: func(b *Backend, v string) string {
			p, err := ParsePolicy(strings.ToLower(v))
			if err != nil || v == "" {
				return wantPolicy
			}
			b.Rules.Policy = p
			return ""
		}},
	{Name: "tls", Default: "off", Want: wantTLS,
		parse: func(b *Backend, v string) string {
			if !strings.EqualFold(v, string(TLSACME)) {
				return wantTLS
			}
			b.Rules.TLS = TLSACME
			return ""
		}},
	{Name: "health.path", Default: "off", Want: wantHealthPath,
		parse: func(b *Backend, v string) string {
			if !validHealthPath(v) {
				return wantHealthPath
			}
			b.Health.Path = v
			return ""
		}},
	{Name: settingHealthInterval, Default: DefaultHealthInterval.String(), Want: wantDuration,
		parse: func(b *Backend, v string) string { return setDuration(&b.Health.Interval, v) }},
	{Name: settingHealthTimeout, Default: DefaultHealthTimeout.String(), Want: wantDuration,
		parse: func(b *Backend, v string) string { return setDuration(&b.Health.Timeout, v) }},
}

// Settings returns the per-peer settings, in the order of the README's
// Labels table. The slice is a copy.
func Settings() []Setting { return append([]Setting(nil), settingTable[:]...) }

// LookupSetting returns the setting called name ("weight", "health.path").
func LookupSetting(name string) (Setting, bool) {
	for _, s := range settingTable {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// UpstreamOptions returns the options --upstream takes, as its usage writes
// them: "weight=N,backup,max_fails=N,fail_timeout=D,service=NAME".
func UpstreamOptions() string {
	var opts []string
	for _, s := range settingTable {
		if s.Upstream != "" {
			opts = append(opts, s.Upstream)
		}
	}
	return strings.Join(opts, ",")
}

// ParseSettings reads the per-peer settings from values, where setting s
// has the value values[prefix+s.Name]: prefix is "lb." for container or
// Swarm service labels, "" for the options of --upstream. Keys that name no
// setting are ignored; what they mean is the source's business.
//
// It returns a template of a Backend: the settings given, the defaults for
// the absent ones, and no identity or address, which the source fills in.
// The routing rules are the exception to the defaults: an absent host, path,
// policy or tls leaves the zero value in Rules, so that the Balancer, which
// merges the rules of a service's members, can tell "no opinion" from an
// explicit value; the zero Rules mean the defaults.
//
// Values are trimmed of surrounding white space. Their syntax:
//
//   - booleans (backup, path.strip): see ParseBool.
//   - weight: an integer from MinWeight to MaxWeight. max_fails: an integer
//     of 0 or more, 0 disables passive health.
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
//   - policy: one of Policies, in any case, but not empty.
//   - tls: "acme", in any case.
//   - health.path: starts with "/", may carry a query.
//
// Any other value, including an empty one for a setting that is not a
// boolean, is an error. The error is a SettingErrors naming every bad
// setting, with its key and value, in the order of Settings; the template
// then holds every setting that did parse.
func ParseSettings(values map[string]string, prefix string) (Backend, error) {
	b := Backend{
		Service:     DefaultService,
		Weight:      DefaultWeight,
		MaxFails:    DefaultMaxFails,
		FailTimeout: DefaultFailTimeout,
		Health:      HealthCheck{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout},
	}
	var errs SettingErrors
	bad := map[string]bool{}
	for _, s := range settingTable {
		raw, ok := values[prefix+s.Name]
		if !ok {
			continue
		}
		if want := s.parse(&b, strings.TrimSpace(raw)); want != "" {
			errs = append(errs, &SettingError{Key: prefix + s.Name, Value: raw, Want: want})
			bad[s.Name] = true
		}
	}

	// health.timeout must be shorter than health.interval; blame the
	// setting that was given (the timeout when both were).
	if !bad[settingHealthInterval] && !bad[settingHealthTimeout] && b.Health.Timeout >= b.Health.Interval {
		interval, timeout := prefix+settingHealthInterval, prefix+settingHealthTimeout
		if v, ok := values[timeout]; ok {
			errs = append(errs, &SettingError{Key: timeout, Value: v,
				Want: fmt.Sprintf("want a duration shorter than %s (%s)", interval, b.Health.Interval)})
		} else {
			errs = append(errs, &SettingError{Key: interval, Value: values[interval],
				Want: fmt.Sprintf("want a duration longer than %s (%s)", timeout, b.Health.Timeout)})
		}
	}
	if len(errs) > 0 {
		return b, errs
	}
	return b, nil
}

// SettingError is one setting whose value cannot be used.
type SettingError struct {
	Key   string // as the source names it: "lb.weight", or "weight"
	Value string // as given
	Want  string // what is allowed, or what is wrong with the value
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("bad %s %q: %s", e.Key, e.Value, e.Want)
}

// SettingErrors lists every bad setting of one peer, in the order of
// Settings.
type SettingErrors []*SettingError

func (es SettingErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.As find each *SettingError.
func (es SettingErrors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// ParseBool parses a boolean setting: true/false, t/f, yes/no, on/off, 1/0,
// in any case. An empty value means true, so that a bare "backup" (nginx's
// flag, or "--label lb.backup") sets it. The error says what is allowed.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "true", "t", "yes", "on", "1":
		return true, nil
	case "false", "f", "no", "off", "0":
		return false, nil
	}
	return false, errors.New(wantBool)
}

func setBool(dst *bool, v string) string {
	b, err := ParseBool(v)
	if err != nil {
		return wantBool
	}
	*dst = b
	return ""
}

// parseDuration parses a Go duration or a plain integer of seconds, as
// nginx writes its times; the result must be greater than 0, and a number of
// seconds too large for a Duration is refused rather than wrapped.
func parseDuration(v string) (time.Duration, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > int64(1<<63-1)/int64(time.Second) {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

func setDuration(dst *time.Duration, v string) string {
	d, ok := parseDuration(v)
	if !ok {
		return wantDuration
	}
	*dst = d
	return ""
}

// validServiceName is the one rule for service names, whichever source
// gives them: they appear in metrics labels, logs and the admin API.
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

// orList writes policies as a message lists them: "a, b, c or d".
func orList(ps []Policy) string {
	var sb strings.Builder
	for i, p := range ps {
		switch {
		case i == 0:
		case i == len(ps)-1:
			sb.WriteString(" or ")
		default:
			sb.WriteString(", ")
		}
		sb.WriteString(string(p))
	}
	return sb.String()
}

// parseHosts parses the comma-separated host value (see ParseSettings).
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
		return nil, wantHosts
	}
	return hosts, ""
}

// normHost validates one host item and returns it lower-cased, without
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
		if !validPort(port) {
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

// validPort reports whether s is a TCP port number, 1-65535, in digits.
func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && s[0] != '+'
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

// validPathPrefix reports whether s can be a path prefix of a service.
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
