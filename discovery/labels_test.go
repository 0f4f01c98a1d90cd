package discovery

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wharflb/wharf/lb"
)

// defaultLabels is what ParseLabels returns for {"lb.enable": "true"}.
func defaultLabels() Labels {
	return Labels{
		Enable: true,
		Peer: lb.Backend{
			Service:     lb.DefaultService,
			Weight:      lb.DefaultWeight,
			MaxFails:    lb.DefaultMaxFails,
			FailTimeout: lb.DefaultFailTimeout,
			Health:      lb.HealthCheck{Interval: lb.DefaultHealthInterval, Timeout: lb.DefaultHealthTimeout},
		},
	}
}

// What the peer settings allow, as lb's settings table says it.
var (
	wantBool       = settingWant("backup")
	wantWeight     = settingWant("weight")
	wantMaxFails   = settingWant("max_fails")
	wantDuration   = settingWant("fail_timeout")
	wantService    = settingWant("service")
	wantPath       = settingWant("path")
	wantPolicy     = settingWant("policy")
	wantHealthPath = settingWant("health.path")
)

func settingWant(name string) string {
	s, ok := lb.LookupSetting(name)
	if !ok {
		panic("no setting " + name)
	}
	return s.Want
}

func TestParseLabelsDefaults(t *testing.T) {
	for _, prefix := range []string{"", "lb", "lb."} {
		got, err := ParseLabels(map[string]string{"lb.enable": "true", "other.weight": "abc"}, prefix)
		if err != nil {
			t.Fatalf("prefix %q: got error %v, want none", prefix, err)
		}
		if want := defaultLabels(); !reflect.DeepEqual(got, want) {
			t.Errorf("prefix %q:\ngot  %+v\nwant %+v", prefix, got, want)
		}
	}
	got, err := ParseLabels(nil, "")
	if err != nil {
		t.Fatalf("nil labels: got error %v, want none", err)
	}
	want := defaultLabels()
	want.Enable = false
	if !reflect.DeepEqual(got, want) {
		t.Errorf("nil labels:\ngot  %+v\nwant %+v", got, want)
	}
}

// TestParseLabelsValues checks every label with good and bad values: a good
// value changes the defaults as set does, a bad one gives exactly the error
// want.
func TestParseLabelsValues(t *testing.T) {
	tests := []struct {
		key, value string
		set        func(*Labels) // applied to defaultLabels() for a good value
		want       string        // the error's "want" text for a bad value
	}{
		// enable
		{"enable", "true", func(l *Labels) {}, ""},
		{"enable", "TRUE", func(l *Labels) {}, ""},
		{"enable", "yes", func(l *Labels) {}, ""},
		{"enable", "On", func(l *Labels) {}, ""},
		{"enable", "1", func(l *Labels) {}, ""},
		{"enable", "t", func(l *Labels) {}, ""}, // as --upstream's backup=t always was
		{"enable", "", func(l *Labels) {}, ""},
		{"enable", " true ", func(l *Labels) {}, ""},
		{"enable", "false", func(l *Labels) { l.Enable = false }, ""},
		{"enable", "no", func(l *Labels) { l.Enable = false }, ""},
		{"enable", "off", func(l *Labels) { l.Enable = false }, ""},
		{"enable", "0", func(l *Labels) { l.Enable = false }, ""},
		{"enable", "banana", nil, wantBool},
		{"enable", "tru", nil, wantBool},
		{"enable", "2", nil, wantBool},

		// port
		{"port", "6969", func(l *Labels) { l.Port = 6969 }, ""},
		{"port", "1", func(l *Labels) { l.Port = 1 }, ""},
		{"port", "65535", func(l *Labels) { l.Port = 65535 }, ""},
		{"port", "6969/tcp", func(l *Labels) { l.Port = 6969 }, ""},
		{"port", "6969/TCP", func(l *Labels) { l.Port = 6969 }, ""},
		{"port", " 80 ", func(l *Labels) { l.Port = 80 }, ""},
		{"port", "0", nil, wantPort},
		{"port", "65536", nil, wantPort},
		{"port", "99999", nil, wantPort},
		{"port", "-1", nil, wantPort},
		{"port", "+80", nil, wantPort},
		{"port", "http", nil, wantPort},
		{"port", "6969/udp", nil, wantPort},
		{"port", "6969/", nil, wantPort},
		{"port", "80-90", nil, wantPort},
		{"port", "", nil, wantPort},

		// weight
		{"weight", "1", func(l *Labels) { l.Peer.Weight = 1 }, ""},
		{"weight", "5", func(l *Labels) { l.Peer.Weight = 5 }, ""},
		{"weight", "1000", func(l *Labels) { l.Peer.Weight = 1000 }, ""},
		{"weight", "abc", nil, wantWeight},
		{"weight", "0", nil, wantWeight},
		{"weight", "-3", nil, wantWeight},
		{"weight", "1001", nil, wantWeight},
		{"weight", "2.5", nil, wantWeight},
		{"weight", "99999999999999999999", nil, wantWeight},
		{"weight", "", nil, wantWeight},

		// backup
		{"backup", "true", func(l *Labels) { l.Peer.Backup = true }, ""},
		{"backup", "", func(l *Labels) { l.Peer.Backup = true }, ""},
		{"backup", "Yes", func(l *Labels) { l.Peer.Backup = true }, ""},
		{"backup", "false", func(l *Labels) {}, ""},
		{"backup", "0", func(l *Labels) {}, ""},
		{"backup", "maybe", nil, wantBool},

		// max_fails
		{"max_fails", "0", func(l *Labels) { l.Peer.MaxFails = 0 }, ""},
		{"max_fails", "3", func(l *Labels) { l.Peer.MaxFails = 3 }, ""},
		{"max_fails", "100", func(l *Labels) { l.Peer.MaxFails = 100 }, ""},
		{"max_fails", "-1", nil, wantMaxFails},
		{"max_fails", "three", nil, wantMaxFails},
		{"max_fails", "", nil, wantMaxFails},

		// fail_timeout
		{"fail_timeout", "30s", func(l *Labels) { l.Peer.FailTimeout = 30 * time.Second }, ""},
		{"fail_timeout", "30", func(l *Labels) { l.Peer.FailTimeout = 30 * time.Second }, ""},
		{"fail_timeout", "1m30s", func(l *Labels) { l.Peer.FailTimeout = 90 * time.Second }, ""},
		{"fail_timeout", "500ms", func(l *Labels) { l.Peer.FailTimeout = 500 * time.Millisecond }, ""},
		{"fail_timeout", "soon", nil, wantDuration},
		{"fail_timeout", "0", nil, wantDuration},
		{"fail_timeout", "0s", nil, wantDuration},
		{"fail_timeout", "-5s", nil, wantDuration},
		{"fail_timeout", "-5", nil, wantDuration},
		{"fail_timeout", "10d", nil, wantDuration},
		{"fail_timeout", "99999999999999", nil, wantDuration},
		{"fail_timeout", "", nil, wantDuration},

		// service
		{"service", "api", func(l *Labels) { l.Peer.Service = "api" }, ""},
		{"service", "Web_Test-2.v1", func(l *Labels) { l.Peer.Service = "Web_Test-2.v1" }, ""},
		{"service", "9lives", func(l *Labels) { l.Peer.Service = "9lives" }, ""},
		{"service", strings.Repeat("a", 63), func(l *Labels) { l.Peer.Service = strings.Repeat("a", 63) }, ""},
		{"service", strings.Repeat("a", 64), nil, wantService},
		{"service", "-api", nil, wantService},
		{"service", ".api", nil, wantService},
		{"service", "my api", nil, wantService},
		{"service", "api/v1", nil, wantService},
		{"service", "café", nil, wantService},
		{"service", "", nil, wantService},

		// host
		{"host", "api.example.com", func(l *Labels) { l.Peer.Rules.Hosts = []string{"api.example.com"} }, ""},
		{"host", "API.Example.COM", func(l *Labels) { l.Peer.Rules.Hosts = []string{"api.example.com"} }, ""},
		{"host", "api.example.com:10000", func(l *Labels) { l.Peer.Rules.Hosts = []string{"api.example.com"} }, ""},
		{"host", "api.example.com.", func(l *Labels) { l.Peer.Rules.Hosts = []string{"api.example.com"} }, ""},
		{"host", "localhost", func(l *Labels) { l.Peer.Rules.Hosts = []string{"localhost"} }, ""},
		{"host", "web_test", func(l *Labels) { l.Peer.Rules.Hosts = []string{"web_test"} }, ""},
		{"host", "*.example.com", func(l *Labels) { l.Peer.Rules.Hosts = []string{"*.example.com"} }, ""},
		{"host", "*.Example.com:443", func(l *Labels) { l.Peer.Rules.Hosts = []string{"*.example.com"} }, ""},
		{"host", "a.example.com, b.example.com ,a.example.com,", func(l *Labels) {
			l.Peer.Rules.Hosts = []string{"a.example.com", "b.example.com"}
		}, ""},
		{"host", "127.0.0.1:10000", func(l *Labels) { l.Peer.Rules.Hosts = []string{"127.0.0.1"} }, ""},
		{"host", "[::1]:10000", func(l *Labels) { l.Peer.Rules.Hosts = []string{"::1"} }, ""},
		{"host", "[::1]", func(l *Labels) { l.Peer.Rules.Hosts = []string{"::1"} }, ""},
		{"host", "fd00::1", func(l *Labels) { l.Peer.Rules.Hosts = []string{"fd00::1"} }, ""},
		{"host", "", nil, "want comma-separated host names such as api.example.com or *.example.com"},
		{"host", " , ", nil, "want comma-separated host names such as api.example.com or *.example.com"},
		{"host", "*", nil, hostWant("*")},
		{"host", "*.", nil, hostWant("*.")},
		{"host", "a.*.com", nil, hostWant("a.*.com")},
		{"host", "**.example.com", nil, hostWant("**.example.com")},
		{"host", "*.10.0.0.1", nil, hostWant("*.10.0.0.1")},
		{"host", "ok.com, bad host", nil, hostWant("bad host")},
		{"host", "http://example.com", nil, hostWant("http://example.com")},
		{"host", "example.com/api", nil, hostWant("example.com/api")},
		{"host", "example.com:http", nil, hostWant("example.com:http")},
		{"host", "example.com:", nil, hostWant("example.com:")},
		{"host", "example.com:99999", nil, hostWant("example.com:99999")},
		{"host", "a..b", nil, hostWant("a..b")},
		{"host", "-a.example.com", nil, hostWant("-a.example.com")},
		{"host", "café.example.com", nil, hostWant("café.example.com")},
		{"host", strings.Repeat("a", 64) + ".com", nil, hostWant(strings.Repeat("a", 64) + ".com")},
		{"host", "[::1", nil, hostWant("[::1")},
		{"host", "[::1]x", nil, hostWant("[::1]x")},
		{"host", "[127.0.0.1]", nil, hostWant("[127.0.0.1]")},
		{"host", "fd00::zz", nil, hostWant("fd00::zz")},

		// path
		{"path", "/", func(l *Labels) { l.Peer.Rules.PathPrefix = "/" }, ""},
		{"path", "/api", func(l *Labels) { l.Peer.Rules.PathPrefix = "/api" }, ""},
		{"path", "/api/", func(l *Labels) { l.Peer.Rules.PathPrefix = "/api/" }, ""},
		{"path", "/api/v1", func(l *Labels) { l.Peer.Rules.PathPrefix = "/api/v1" }, ""},
		{"path", "/a%20b", func(l *Labels) { l.Peer.Rules.PathPrefix = "/a%20b" }, ""},
		{"path", "api", nil, wantPath},
		{"path", "", nil, wantPath},
		{"path", "//api", nil, wantPath},
		{"path", "/api//v1", nil, wantPath},
		{"path", "/api/../admin", nil, wantPath},
		{"path", "/./api", nil, wantPath},
		{"path", "/api?x=1", nil, wantPath},
		{"path", "/api#top", nil, wantPath},
		{"path", "/my api", nil, wantPath},

		// path.strip
		{"path.strip", "true", func(l *Labels) { l.Peer.Rules.StripPrefix = true }, ""},
		{"path.strip", "", func(l *Labels) { l.Peer.Rules.StripPrefix = true }, ""},
		{"path.strip", "off", func(l *Labels) {}, ""},
		{"path.strip", "strip", nil, wantBool},

		// policy
		{"policy", "round_robin", func(l *Labels) { l.Peer.Rules.Policy = lb.RoundRobin }, ""},
		{"policy", "least_conn", func(l *Labels) { l.Peer.Rules.Policy = lb.LeastConn }, ""},
		{"policy", "ip_hash", func(l *Labels) { l.Peer.Rules.Policy = lb.IPHash }, ""},
		{"policy", "p2c", func(l *Labels) { l.Peer.Rules.Policy = lb.P2C }, ""},
		{"policy", "Least_Conn", func(l *Labels) { l.Peer.Rules.Policy = lb.LeastConn }, ""},
		{"policy", "random", nil, wantPolicy},
		{"policy", "round-robin", nil, wantPolicy},
		{"policy", "", nil, wantPolicy},

		// health.path
		{"health.path", "/healthz", func(l *Labels) { l.Peer.Health.Path = "/healthz" }, ""},
		{"health.path", "/", func(l *Labels) { l.Peer.Health.Path = "/" }, ""},
		{"health.path", "/webtest?action=get_uuid", func(l *Labels) { l.Peer.Health.Path = "/webtest?action=get_uuid" }, ""},
		{"health.path", "healthz", nil, wantHealthPath},
		{"health.path", "", nil, wantHealthPath},
		{"health.path", "//evil.example.com/", nil, wantHealthPath},
		{"health.path", "/health#x", nil, wantHealthPath},
		{"health.path", "/health z", nil, wantHealthPath},
		{"health.path", "http://example.com/health", nil, wantHealthPath},

		// health.interval, health.timeout
		{"health.interval", "10s", func(l *Labels) { l.Peer.Health.Interval = 10 * time.Second }, ""},
		{"health.interval", "3", func(l *Labels) { l.Peer.Health.Interval = 3 * time.Second }, ""},
		{"health.interval", "often", nil, wantDuration},
		{"health.interval", "0", nil, wantDuration},
		{"health.interval", "2s", nil, "want a duration longer than lb.health.timeout (2s)"},
		{"health.timeout", "1s", func(l *Labels) { l.Peer.Health.Timeout = time.Second }, ""},
		{"health.timeout", "4900ms", func(l *Labels) { l.Peer.Health.Timeout = 4900 * time.Millisecond }, ""},
		{"health.timeout", "5s", nil, "want a duration shorter than lb.health.interval (5s)"},
		{"health.timeout", "1m", nil, "want a duration shorter than lb.health.interval (5s)"},
		{"health.timeout", "-1s", nil, wantDuration},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			key := "lb." + tt.key
			labels := map[string]string{key: tt.value}
			if tt.key != "enable" {
				labels["lb.enable"] = "true"
			}
			got, err := ParseLabels(labels, "lb")
			if tt.want != "" {
				wantErr := `label ` + key + `="` + tt.value + `": ` + tt.want
				if err == nil || err.Error() != wantErr {
					t.Fatalf("got error %v\nwant %s", err, wantErr)
				}
				var le *LabelError
				if !errors.As(err, &le) || le.Key != key || le.Value != tt.value || le.Want != tt.want {
					t.Errorf("got LabelError %+v, want {Key:%s Value:%s Want:%s}", le, key, tt.value, tt.want)
				}
				if !got.Enable && tt.key != "enable" {
					t.Errorf("got Enable false with a bad %s, want true", key)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			want := defaultLabels()
			tt.set(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("\ngot  %+v\nwant %+v", got, want)
			}
		})
	}
}

func hostWant(item string) string {
	return `"` + item + `" is not a host name: want comma-separated names such as api.example.com or *.example.com, or IP addresses, with an optional :port`
}

func TestParseLabelsAll(t *testing.T) {
	labels := map[string]string{
		"edge.enable":          "true",
		"edge.port":            "6969",
		"edge.weight":          "5",
		"edge.backup":          "yes",
		"edge.max_fails":       "0",
		"edge.fail_timeout":    "30",
		"edge.service":         "api",
		"edge.host":            "API.example.com:10000, *.api.example.com",
		"edge.path":            "/api",
		"edge.path.strip":      "true",
		"edge.policy":          "ip_hash",
		"edge.health.path":     "/healthz",
		"edge.health.interval": "1m",
		"edge.health.timeout":  "10s",
		"edge.colour":          "blue",
		"edge.Weight":          "9",
		"edge":                 "x",
		"edge.health":          "on",
		"lb.weight":            "abc", // another prefix: not ours
		"edgeweight":           "3",
	}
	got, err := ParseLabels(labels, "edge")
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	want := Labels{
		Enable: true,
		Port:   6969,
		Peer: lb.Backend{
			Service:     "api",
			Weight:      5,
			Backup:      true,
			MaxFails:    0,
			FailTimeout: 30 * time.Second,
			Rules: lb.Rules{
				Hosts:       []string{"api.example.com", "*.api.example.com"},
				PathPrefix:  "/api",
				StripPrefix: true,
				Policy:      lb.IPHash,
			},
			Health: lb.HealthCheck{Path: "/healthz", Interval: time.Minute, Timeout: 10 * time.Second},
		},
		Unknown: []string{"edge.Weight", "edge.colour", "edge.health"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\ngot  %+v\nwant %+v", got, want)
	}
}

func TestParseLabelsErrors(t *testing.T) {
	labels := map[string]string{
		"lb.enable":       "true",
		"lb.fail_timeout": "soon",
		"lb.weight":       "abc",
		"lb.port":         "99999",
		"lb.service":      "api",
		"lb.health.path":  "healthz",
		"lb.mystery":      "1",
	}
	got, err := ParseLabels(labels, "lb")
	var errs LabelErrors
	if !errors.As(err, &errs) {
		t.Fatalf("got error %T %v, want LabelErrors", err, err)
	}
	want := `label lb.port="99999": ` + wantPort +
		`; label lb.weight="abc": ` + wantWeight +
		`; label lb.fail_timeout="soon": ` + wantDuration +
		`; label lb.health.path="healthz": ` + wantHealthPath
	if err.Error() != want {
		t.Errorf("got error\n%s\nwant\n%s", err, want)
	}
	if len(errs) != 4 {
		t.Errorf("got %d errors, want 4", len(errs))
	}
	// The labels that parsed are kept, for logs.
	if got.Peer.Service != "api" || !got.Enable || !reflect.DeepEqual(got.Unknown, []string{"lb.mystery"}) {
		t.Errorf("got %+v, want Enable, Service api and Unknown [lb.mystery] despite the errors", got)
	}
	// A bad interval does not also blame the timeout.
	_, err = ParseLabels(map[string]string{"lb.health.interval": "x", "lb.health.timeout": "10s"}, "")
	if want := `label lb.health.interval="x": ` + wantDuration; err == nil || err.Error() != want {
		t.Errorf("got error %v, want %s", err, want)
	}
	// Both set, timeout too long: the timeout is blamed.
	_, err = ParseLabels(map[string]string{"lb.health.interval": "10s", "lb.health.timeout": "10s"}, "")
	if want := `label lb.health.timeout="10s": want a duration shorter than lb.health.interval (10s)`; err == nil || err.Error() != want {
		t.Errorf("got error %v, want %s", err, want)
	}
	// Messages name the configured prefix.
	_, err = ParseLabels(map[string]string{"edge.health.interval": "1s"}, "edge")
	if want := `label edge.health.interval="1s": want a duration longer than edge.health.timeout (2s)`; err == nil || err.Error() != want {
		t.Errorf("got error %v, want %s", err, want)
	}
}

// TestReadmeLabelsTable holds the README's Labels table to the labels wharf
// knows: the same names in the same order (enable and port, then lb's
// settings), each setting's default as lb's table states it, the weight
// range and the policies as lb defines them.
func TestReadmeLabelsTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Labels\n")
	if !ok {
		t.Fatal("README.md has no section ## Labels")
	}
	section, _, _ = strings.Cut(section, "\n## ")

	type row struct{ name, def, meaning string }
	var rows []row
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `lb.") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 3 {
			t.Fatalf("README.md Labels row without 3 cells: %s", line)
		}
		// One row may document several labels: "`lb.a`, `lb.b`" with
		// defaults "off, `5s`".
		names := strings.Split(strings.TrimSpace(cells[0]), ", ")
		defs := strings.Split(strings.TrimSpace(cells[1]), ", ")
		if len(names) > 1 && len(defs) != len(names) {
			t.Fatalf("README.md Labels row names %d labels but %d defaults: %s", len(names), len(defs), line)
		}
		for i, n := range names {
			def := defs[0]
			if len(names) > 1 {
				def = defs[i]
			}
			rows = append(rows, row{strings.Trim(n, "`"), strings.Trim(def, "`"), cells[2]})
		}
	}

	want := []string{"lb." + labelEnable, "lb." + labelPort}
	defaults := map[string]string{}
	for _, s := range lb.Settings() {
		want = append(want, "lb."+s.Name)
		defaults["lb."+s.Name] = s.Default
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("README.md's Labels table lists\n%q\nwharf knows, in this order,\n%q\n(change the README with lb's settings table or discovery's labels)", got, want)
	}
	for _, r := range rows {
		if def, ok := defaults[r.name]; ok && r.def != def {
			t.Errorf("README.md says %s defaults to %q, lb's settings table says %q", r.name, r.def, def)
		}
		switch r.name {
		case "lb.weight":
			if rng := fmt.Sprintf("%d–%d", lb.MinWeight, lb.MaxWeight); !strings.Contains(r.meaning, rng) {
				t.Errorf("README.md's lb.weight row does not state the range %s: %s", rng, r.meaning)
			}
		case "lb.policy":
			for _, p := range lb.Policies() {
				if !strings.Contains(r.meaning, "`"+string(p)+"`") {
					t.Errorf("README.md's lb.policy row does not name %s: %s", p, r.meaning)
				}
			}
		}
	}
}
