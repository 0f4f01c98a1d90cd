package lb

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// defaultTemplate is what ParseSettings returns when no setting is given.
func defaultTemplate() Backend {
	return Backend{
		Service:     DefaultService,
		Weight:      DefaultWeight,
		MaxFails:    DefaultMaxFails,
		FailTimeout: DefaultFailTimeout,
		Health:      HealthCheck{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout},
	}
}

func TestParseBool(t *testing.T) {
	for _, v := range []string{"", "true", "TRUE", "True", "t", "T", "yes", "Yes", "on", "ON", "1"} {
		if got, err := ParseBool(v); err != nil || !got {
			t.Errorf("ParseBool(%q) = %v, %v; want true", v, got, err)
		}
	}
	for _, v := range []string{"false", "FALSE", "f", "F", "no", "NO", "off", "Off", "0"} {
		if got, err := ParseBool(v); err != nil || got {
			t.Errorf("ParseBool(%q) = %v, %v; want false", v, got, err)
		}
	}
	for _, v := range []string{"banana", "tru", "2", "-1", "y", "n", " true"} {
		if _, err := ParseBool(v); err == nil || err.Error() != wantBool {
			t.Errorf("ParseBool(%q): got error %v, want %q", v, err, wantBool)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"30":          30 * time.Second, // nginx: a number of seconds
		"+30":         30 * time.Second,
		"30s":         30 * time.Second,
		"1m30s":       90 * time.Second,
		"500ms":       500 * time.Millisecond,
		"1h":          time.Hour,
		"9223372036":  9223372036 * time.Second, // the most seconds a Duration holds
		"2562047h47m": 2562047*time.Hour + 47*time.Minute,
	}
	for v, want := range good {
		if got, ok := parseDuration(v); !ok || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "soon", "0", "0s", "-5", "-5s", "10d", "1.5", "9223372037", "99999999999999", "99999999999999999999", "3000000h"} {
		if got, ok := parseDuration(v); ok {
			t.Errorf("parseDuration(%q) = %v, want an error", v, got)
		}
	}
}

func TestValidServiceName(t *testing.T) {
	for _, s := range []string{"default", "api", "Web_Test-2.v1", "9lives", strings.Repeat("a", maxServiceName)} {
		if !validServiceName(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "-api", ".api", "_api", "my api", "api/v1", "café", "a,b", strings.Repeat("a", maxServiceName+1)} {
		if validServiceName(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

// TestParseSettings runs every setting with good and bad values, under a
// label prefix and without one (as --upstream gives them). Exhaustive value
// tables per setting are in discovery's label tests, which run through the
// same parser.
func TestParseSettings(t *testing.T) {
	tests := []struct {
		name, value string
		set         func(*Backend) // applied to defaultTemplate() for a good value
		want        string         // the error's Want for a bad value
	}{
		{"weight", "5", func(b *Backend) { b.Weight = 5 }, ""},
		{"weight", " 1000 ", func(b *Backend) { b.Weight = MaxWeight }, ""},
		{"weight", "1", func(b *Backend) { b.Weight = MinWeight }, ""},
		{"weight", "0", nil, wantWeight},
		{"weight", "1001", nil, wantWeight},
		{"weight", "abc", nil, wantWeight},
		{"weight", "", nil, wantWeight},
		{"backup", "", func(b *Backend) { b.Backup = true }, ""},
		{"backup", "t", func(b *Backend) { b.Backup = true }, ""},
		{"backup", "yes", func(b *Backend) { b.Backup = true }, ""},
		{"backup", "off", func(b *Backend) {}, ""},
		{"backup", "maybe", nil, wantBool},
		{"max_fails", "0", func(b *Backend) { b.MaxFails = 0 }, ""},
		{"max_fails", "3", func(b *Backend) { b.MaxFails = 3 }, ""},
		{"max_fails", "-1", nil, wantMaxFails},
		{"max_fails", "", nil, wantMaxFails},
		{"fail_timeout", "30", func(b *Backend) { b.FailTimeout = 30 * time.Second }, ""},
		{"fail_timeout", "1m30s", func(b *Backend) { b.FailTimeout = 90 * time.Second }, ""},
		{"fail_timeout", "soon", nil, wantDuration},
		{"fail_timeout", "99999999999999", nil, wantDuration},
		{"service", "api-v2", func(b *Backend) { b.Service = "api-v2" }, ""},
		{"service", "my api", nil, wantService},
		{"service", "", nil, wantService},
		{"host", "API.example.com:443, *.example.com", func(b *Backend) {
			b.Rules.Hosts = []string{"api.example.com", "*.example.com"}
		}, ""},
		{"host", "[::1]:80", func(b *Backend) { b.Rules.Hosts = []string{"::1"} }, ""},
		{"host", " , ", nil, wantHosts},
		{"host", "a.*.com", nil, `"a.*.com" is not a host name: want comma-separated names such as api.example.com or *.example.com, or IP addresses, with an optional :port`},
		{"path", "/api/", func(b *Backend) { b.Rules.PathPrefix = "/api/" }, ""},
		{"path", "/api/../x", nil, wantPath},
		{"path.strip", "true", func(b *Backend) { b.Rules.StripPrefix = true }, ""},
		{"path.strip", "strip", nil, wantBool},
		{"policy", "P2C", func(b *Backend) { b.Rules.Policy = P2C }, ""},
		{"policy", "", nil, wantPolicy},
		{"policy", "random", nil, wantPolicy},
		{"tls", "ACME", func(b *Backend) { b.Rules.TLS = TLSACME }, ""},
		{"tls", "letsencrypt", nil, wantTLS},
		{"tls", "", nil, wantTLS},
		{"health.path", "/healthz?deep=1", func(b *Backend) { b.Health.Path = "/healthz?deep=1" }, ""},
		{"health.path", "healthz", nil, wantHealthPath},
		{"health.interval", "10", func(b *Backend) { b.Health.Interval = 10 * time.Second }, ""},
		{"health.interval", "0", nil, wantDuration},
		{"health.timeout", "1s", func(b *Backend) { b.Health.Timeout = time.Second }, ""},
		{"health.timeout", "-1s", nil, wantDuration},
	}
	for _, prefix := range []string{"", "lb."} {
		for _, tt := range tests {
			key := prefix + tt.name
			t.Run(key+"="+tt.value, func(t *testing.T) {
				got, err := ParseSettings(map[string]string{key: tt.value, "enable": "x", prefix + "colour": "blue"}, prefix)
				if tt.want != "" {
					var es SettingErrors
					if !errors.As(err, &es) || len(es) != 1 {
						t.Fatalf("got error %v, want one SettingError", err)
					}
					if want := (SettingError{Key: key, Value: tt.value, Want: tt.want}); *es[0] != want {
						t.Errorf("got %+v\nwant %+v", *es[0], want)
					}
					return
				}
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				want := defaultTemplate()
				tt.set(&want)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("\ngot  %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

func TestParseSettingsDefaults(t *testing.T) {
	for _, values := range []map[string]string{nil, {}, {"weight": "5"}} {
		got, err := ParseSettings(values, "lb.") // no key has the prefix
		if err != nil || !reflect.DeepEqual(got, defaultTemplate()) {
			t.Errorf("ParseSettings(%v, \"lb.\") = %+v, %v; want the defaults", values, got, err)
		}
	}
}

// Each setting's documented Default is what holds without it: given as a
// value, it changes nothing. The routing rules and the health path are the
// exceptions: absent, they are no rule, which the Balancer reads as their
// default.
func TestSettingDefaultsAreTheDefaults(t *testing.T) {
	noRule := map[string]bool{"host": true, "path": true, "policy": true, "tls": true, "health.path": true}
	for _, s := range Settings() {
		got, err := ParseSettings(map[string]string{s.Name: s.Default}, "")
		switch {
		case noRule[s.Name]:
			if err == nil && reflect.DeepEqual(got, defaultTemplate()) {
				t.Errorf("%s: its default %q is not a rule; remove it from noRule", s.Name, s.Default)
			}
		case err != nil:
			t.Errorf("%s: default %q does not parse: %v", s.Name, s.Default, err)
		case !reflect.DeepEqual(got, defaultTemplate()):
			t.Errorf("%s: default %q gives\n%+v, absent gives\n%+v", s.Name, s.Default, got, defaultTemplate())
		}
	}
	// The rules' words mean what the Balancer does with no rule.
	if p, _ := ParsePolicy(""); p != RoundRobin {
		t.Errorf("no policy is %q, the policy setting's default says %q", p, RoundRobin)
	}
}

func TestParseSettingsNamesEveryBadSetting(t *testing.T) {
	values := map[string]string{
		"lb.health.path":  "healthz",
		"lb.weight":       "abc",
		"lb.fail_timeout": "soon",
		"lb.service":      "api",
		"lb.policy":       "fastest",
	}
	got, err := ParseSettings(values, "lb.")
	want := `bad lb.weight "abc": ` + wantWeight +
		`; bad lb.fail_timeout "soon": ` + wantDuration +
		`; bad lb.policy "fastest": ` + wantPolicy +
		`; bad lb.health.path "healthz": ` + wantHealthPath
	if err == nil || err.Error() != want {
		t.Errorf("got error\n%v\nwant\n%s", err, want)
	}
	if got.Service != "api" {
		t.Errorf("got service %q, want the one that parsed, api", got.Service)
	}
	var se *SettingError
	if !errors.As(err, &se) || se.Key != "lb.weight" {
		t.Errorf("errors.As found %+v, want the lb.weight error first", se)
	}
}

func TestParseSettingsHealthTimeoutBelowInterval(t *testing.T) {
	tests := []struct {
		values map[string]string
		want   string
	}{
		{map[string]string{"lb.health.interval": "10s", "lb.health.timeout": "10s"},
			`bad lb.health.timeout "10s": want a duration shorter than lb.health.interval (10s)`},
		{map[string]string{"lb.health.timeout": "5s"},
			`bad lb.health.timeout "5s": want a duration shorter than lb.health.interval (5s)`},
		{map[string]string{"lb.health.interval": "1s"},
			`bad lb.health.interval "1s": want a duration longer than lb.health.timeout (2s)`},
		// A bad interval does not also blame the timeout.
		{map[string]string{"lb.health.interval": "x", "lb.health.timeout": "10s"},
			`bad lb.health.interval "x": ` + wantDuration},
	}
	for _, tt := range tests {
		if _, err := ParseSettings(tt.values, "lb."); err == nil || err.Error() != tt.want {
			t.Errorf("%v: got error %v, want %s", tt.values, err, tt.want)
		}
	}
}

// An --upstream option means what the label of the same name means.
func TestUpstreamOptionsParseAsSettings(t *testing.T) {
	values := map[string][]string{
		"weight":       {"7", "0", "x"},
		"backup":       {"", "true", "t", "no", "maybe"},
		"max_fails":    {"0", "3", "-1"},
		"fail_timeout": {"30", "1m", "soon", "99999999999999"},
		"service":      {"api", "my api", "a/b"},
	}
	for _, s := range Settings() {
		if s.Upstream == "" {
			continue
		}
		if len(values[s.Name]) == 0 {
			t.Errorf("no test values for --upstream option %s", s.Name)
		}
		for _, v := range values[s.Name] {
			label, labelErr := ParseSettings(map[string]string{"lb." + s.Name: v}, "lb.")
			up, upErr := ParseUpstream("127.0.0.1:1," + s.Name + "=" + v)
			if (labelErr == nil) != (upErr == nil) {
				t.Errorf("%s=%q: label error %v, --upstream error %v", s.Name, v, labelErr, upErr)
				continue
			}
			if labelErr != nil {
				if want := `bad ` + s.Name + ` "` + v + `"`; !strings.Contains(upErr.Error(), want) {
					t.Errorf("%s=%q: --upstream error %v does not say %s", s.Name, v, upErr, want)
				}
				continue
			}
			label.ID, label.Name, label.Network, label.Addr = up.ID, up.Name, up.Network, up.Addr
			if !label.Equal(up) {
				t.Errorf("%s=%q: label gives\n%+v, --upstream gives\n%+v", s.Name, v, label, up)
			}
		}
	}
}

func TestPolicies(t *testing.T) {
	ps := Policies()
	if len(ps) == 0 || ps[0] != RoundRobin {
		t.Fatalf("Policies() = %v, want round_robin first", ps)
	}
	for _, p := range ps {
		if got, err := ParsePolicy(string(p)); err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %q, %v", p, got, err)
		}
		if !strings.Contains(wantPolicy, string(p)) {
			t.Errorf("the policy setting's message %q does not name %s", wantPolicy, p)
		}
	}
	if wantPolicy != "want round_robin, least_conn, ip_hash or p2c" {
		t.Errorf("wantPolicy = %q", wantPolicy)
	}
	if _, err := ParsePolicy("random"); err == nil || !strings.Contains(err.Error(), wantPolicy) {
		t.Errorf("ParsePolicy(random): got %v, want an error listing the policies", err)
	}
	ps[0] = "changed"
	if Policies()[0] != RoundRobin {
		t.Error("changing the returned slice changed the policies")
	}
}

func TestLookupSetting(t *testing.T) {
	for _, s := range Settings() {
		got, ok := LookupSetting(s.Name)
		if !ok || got.Name != s.Name || got.Want == "" || got.Default == "" {
			t.Errorf("LookupSetting(%q) = %+v, %v", s.Name, got, ok)
		}
	}
	for _, name := range []string{"enable", "port", "", "Weight", "lb.weight"} {
		if _, ok := LookupSetting(name); ok {
			t.Errorf("LookupSetting(%q) found a setting", name)
		}
	}
}

// The README's --upstream row lists the options the table gives --upstream.
func TestReadmeUpstreamOptions(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `--upstream` |") {
			row = line
		}
	}
	if row == "" {
		t.Fatal("README.md has no row for --upstream in its flags table")
	}
	if want := "`," + UpstreamOptions() + "`"; !strings.Contains(row, want) {
		t.Errorf("README.md's --upstream row does not list the options as %s (the settings with an Upstream form):\n%s", want, row)
	}
}
