package discovery

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/wharflb/wharf/lb"
)

// DefaultPrefix is the label prefix used when none is configured
// (--label-prefix).
const DefaultPrefix = "lb"

// Labels is the validated content of a container's <prefix>.* labels: the
// two that only a container has, and the peer settings every source shares
// (lb.Settings), with the defaults of the README's Labels table filled in
// for absent labels (see lb.ParseSettings for the routing rules, which stay
// empty when absent).
type Labels struct {
	Enable bool // <prefix>.enable
	Port   int  // <prefix>.port; 0 when absent (Map then infers it)

	// Peer holds the peer settings (<prefix>.weight, <prefix>.service, ...)
	// as lb.ParseSettings returns them: a template without identity or
	// address.
	Peer lb.Backend

	// Unknown holds the full keys of labels that carry the prefix but are not
	// wharf labels (a typo such as "lb.wieght", or a newer wharf's label),
	// sorted. They are not an error; the caller may log them.
	Unknown []string
}

// LabelError is one label whose value cannot be used: a setting's error as
// a container label names it.
type LabelError lb.SettingError

func (e *LabelError) Error() string {
	return fmt.Sprintf("label %s=%q: %s", e.Key, e.Value, e.Want)
}

// LabelErrors lists every bad label of one container, in the order of the
// README's Labels table.
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

// The labels only a container has, without the prefix; the others are
// lb.Settings.
const (
	labelEnable = "enable"
	labelPort   = "port"
)

const wantPort = "want a container port from 1 to 65535"

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
// <prefix>.enable is a boolean as lb.ParseBool reads it; <prefix>.port is
// 1-65535, optionally followed by "/tcp". Every other wharf label is a peer
// setting, parsed by lb.ParseSettings, whose documentation gives the syntax
// of each value; absent labels take the defaults of the README's Labels
// table.
//
// The error is a LabelErrors listing every bad label, each naming the full
// key, the value and what is allowed, e.g.
// `label lb.weight="abc": want an integer from 1 to 1000`. Even then the
// returned Labels holds every label that did parse, and Enable and Unknown
// are set.
//
// Labels with the prefix that are not wharf labels are not an error: their
// keys are returned in Labels.Unknown.
func ParseLabels(labels map[string]string, prefix string) (Labels, error) {
	prefix = normPrefix(prefix) + "."
	var l Labels
	var errs LabelErrors
	if raw, ok := labels[prefix+labelEnable]; ok {
		enable, err := lb.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			errs = append(errs, &LabelError{Key: prefix + labelEnable, Value: raw, Want: err.Error()})
		}
		l.Enable = enable
	}
	if raw, ok := labels[prefix+labelPort]; ok {
		port, ok := parsePort(strings.TrimSpace(raw))
		if !ok {
			errs = append(errs, &LabelError{Key: prefix + labelPort, Value: raw, Want: wantPort})
		}
		l.Port = port
	}
	var err error
	l.Peer, err = lb.ParseSettings(labels, prefix)
	var bad lb.SettingErrors
	if errors.As(err, &bad) {
		for _, e := range bad {
			errs = append(errs, (*LabelError)(e))
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
	_, ok := lb.LookupSetting(name)
	return ok || name == labelEnable || name == labelPort
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
