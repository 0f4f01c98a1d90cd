package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wharflb/wharf/internal/testutil"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(*config) string
		wantErr string // substring; names the flag or variable
	}{
		{name: "defaults", args: []string{"--network", "webtest"}, check: func(c *config) string {
			if c.Listen != ":10000" || c.AdminListen != "127.0.0.1:8080" || c.LabelPrefix != "lb" ||
				c.LogLevel != "info" || c.LogFormat != "auto" || c.RetryBodyLimit != 64<<10 || c.RetryBufferBudget != 16<<20 ||
				c.ShutdownTimeout != 30*time.Second || c.NextUpstreamTries != 0 || c.Gzip || len(c.GzipTypes) != 8 || c.GzipLevel != 1 {
				return "unexpected defaults"
			}
			return ""
		}},
		{name: "env fills flags", args: nil, env: map[string]string{
			"WHARF_NETWORK": "webtest", "WHARF_ADMIN_LISTEN": ":9090", "WHARF_RETRY_ON_STATUS": "502,503",
			"WHARF_RETRY_BODY_LIMIT": "1MiB", "WHARF_RETRY_BUFFER_BUDGET": "8MiB", "WHARF_UPSTREAM": "127.0.0.1:1 127.0.0.1:2,weight=3", "WHARF_GZIP": "true",
		}, check: func(c *config) string {
			if c.Network != "webtest" || c.AdminListen != ":9090" || len(c.RetryOnStatus) != 2 ||
				c.RetryBodyLimit != 1<<20 || c.RetryBufferBudget != 8<<20 || len(c.Upstreams) != 2 || c.Upstreams[1].Weight != 3 || !c.Gzip {
				return "env not applied"
			}
			return ""
		}},
		{name: "flag wins over env", args: []string{"--network", "a"}, env: map[string]string{"WHARF_NETWORK": "b"},
			check: func(c *config) string {
				if c.Network != "a" {
					return "network " + c.Network
				}
				return ""
			}},
		{name: "repeatable upstream", args: []string{"--upstream", "127.0.0.1:1", "--upstream", "unix:/tmp/s,backup"},
			check: func(c *config) string {
				if len(c.Upstreams) != 2 || !c.Upstreams[1].Backup || c.Upstreams[1].Network != "unix" {
					return "upstreams not parsed"
				}
				return ""
			}},
		{name: "gzip types", args: []string{"--network", "n", "--gzip-types", "text/html, application/json"},
			check: func(c *config) string {
				if strings.Join(c.GzipTypes, ",") != "text/html,application/json" {
					return "types " + strings.Join(c.GzipTypes, ",")
				}
				return ""
			}},
		{name: "gzip any type and level", args: []string{"--network", "n", "--gzip-types", "*", "--gzip-level", "6"},
			check: func(c *config) string {
				if strings.Join(c.GzipTypes, ",") != "*" || c.GzipLevel != 6 {
					return fmt.Sprint("types ", c.GzipTypes, " level ", c.GzipLevel)
				}
				return ""
			}},
		{name: "gzip level from env", args: []string{"--network", "n"}, env: map[string]string{"WHARF_GZIP_LEVEL": "9"},
			check: func(c *config) string {
				if c.GzipLevel != 9 {
					return fmt.Sprint("level ", c.GzipLevel)
				}
				return ""
			}},
		{name: "bad gzip level", args: []string{"--network", "n", "--gzip-level", "0"}, wantErr: "--gzip-level"},
		{name: "bad gzip level env", args: []string{"--network", "n"}, env: map[string]string{"WHARF_GZIP_LEVEL": "fast"}, wantErr: "WHARF_GZIP_LEVEL"},
		{name: "bad gzip type", args: []string{"--network", "n", "--gzip-types", "json"}, wantErr: "--gzip-types"},
		{name: "swarm default auto", args: []string{"--network", "n"}, check: func(c *config) string {
			if c.Swarm != "auto" {
				return "swarm " + c.Swarm
			}
			return ""
		}},
		{name: "swarm from env", args: []string{"--network", "n"}, env: map[string]string{"WHARF_SWARM": "off"},
			check: func(c *config) string {
				if c.Swarm != "off" {
					return "swarm " + c.Swarm
				}
				return ""
			}},
		{name: "swarm flag", args: []string{"--network", "n", "--swarm", "on"}, check: func(c *config) string {
			if c.Swarm != "on" {
				return "swarm " + c.Swarm
			}
			return ""
		}},
		{name: "bad swarm", args: []string{"--network", "n", "--swarm", "yes"}, wantErr: "--swarm"},
		{name: "bad swarm env", args: []string{"--network", "n"}, env: map[string]string{"WHARF_SWARM": "maybe"}, wantErr: "WHARF_SWARM"},
		{name: "swarm on without network", args: []string{"--upstream", "127.0.0.1:1", "--swarm", "on"}, wantErr: "--network"},
		{name: "trusted proxies", args: []string{"--network", "n", "--trusted-proxies", "10.1.2.3/8, 192.0.2.7,fd00::/8"},
			check: func(c *config) string {
				if fmt.Sprint(c.TrustedProxies) != "[10.0.0.0/8 192.0.2.7/32 fd00::/8]" {
					return fmt.Sprint("trusted proxies ", c.TrustedProxies)
				}
				return ""
			}},
		{name: "trusted proxies from env", args: []string{"--network", "n"}, env: map[string]string{"WHARF_TRUSTED_PROXIES": "172.16.0.0/12"},
			check: func(c *config) string {
				if fmt.Sprint(c.TrustedProxies) != "[172.16.0.0/12]" {
					return fmt.Sprint("trusted proxies ", c.TrustedProxies)
				}
				return ""
			}},
		{name: "bad trusted proxies", args: []string{"--network", "n", "--trusted-proxies", "10.0.0.0/33"}, wantErr: "--trusted-proxies"},
		{name: "bad trusted proxies env", args: []string{"--network", "n"}, env: map[string]string{"WHARF_TRUSTED_PROXIES": "lan"}, wantErr: "WHARF_TRUSTED_PROXIES"},
		{name: "nothing to balance", wantErr: "--network"},
		{name: "unknown flag", args: []string{"--colour", "x"}, wantErr: "--colour"},
		{name: "bad tries", args: []string{"--network", "n", "--next-upstream-tries", "-1"}, wantErr: "--next-upstream-tries"},
		{name: "bad duration", args: []string{"--network", "n", "--shutdown-timeout", "soon"}, wantErr: "--shutdown-timeout"},
		{name: "bad status", args: []string{"--network", "n", "--retry-on-status", "200"}, wantErr: "--retry-on-status"},
		{name: "bad size", args: []string{"--network", "n", "--retry-body-limit", "lots"}, wantErr: "--retry-body-limit"},
		{name: "bad budget", args: []string{"--network", "n", "--retry-buffer-budget", "-1MiB"}, wantErr: "--retry-buffer-budget"},
		{name: "bad log level", args: []string{"--network", "n", "--log-level", "loud"}, wantErr: "--log-level"},
		{name: "bad upstream", args: []string{"--upstream", "127.0.0.1:1,weight=abc"}, wantErr: "weight"},
		{name: "bad env", args: []string{"--network", "n"}, env: map[string]string{"WHARF_LOG_FORMAT": "xml"}, wantErr: "WHARF_LOG_FORMAT"},
		{name: "tls half", args: []string{"--network", "n", "--tls-cert", "c.pem"}, wantErr: "--tls-key"},
		{name: "tls pairs", args: []string{"--network", "n", "--tls-cert", "a.pem", "--tls-key", "a.key", "--tls-cert", "b.pem,c.pem", "--tls-key", "b.key", "--tls-key", "c.key"},
			check: func(c *config) string {
				if strings.Join(c.TLSCerts, " ") != "a.pem b.pem c.pem" || strings.Join(c.TLSKeys, " ") != "a.key b.key c.key" || !c.TLS() {
					return fmt.Sprint("pairs ", c.TLSCerts, c.TLSKeys)
				}
				return ""
			}},
		{name: "tls pairs from env", args: []string{"--network", "n"}, env: map[string]string{"WHARF_TLS_CERT": "a.pem, b.pem", "WHARF_TLS_KEY": "a.key,b.key",
			"WHARF_TLS_DIR": "/certs", "WHARF_REDIRECT_HTTP": ":80"},
			check: func(c *config) string {
				if strings.Join(c.TLSCerts, " ") != "a.pem b.pem" || strings.Join(c.TLSKeys, " ") != "a.key b.key" || c.TLSDir != "/certs" || c.HTTPS.RedirectHTTP != ":80" {
					return fmt.Sprint("from env ", c.TLSCerts, c.TLSKeys, c.TLSDir, c.HTTPS.RedirectHTTP)
				}
				return ""
			}},
		{name: "tls pairs uneven", args: []string{"--network", "n", "--tls-cert", "a.pem,b.pem", "--tls-key", "a.key"}, wantErr: "2 certificates, 1 keys"},
		{name: "tls empty name", args: []string{"--network", "n", "--tls-cert", "a.pem,", "--tls-key", "a.key"}, wantErr: "--tls-cert"},
		{name: "tls dir alone", args: []string{"--network", "n", "--tls-dir", "/certs"}, check: func(c *config) string {
			if !c.TLS() {
				return "no TLS with --tls-dir"
			}
			return ""
		}},
		{name: "redirect without tls", args: []string{"--network", "n", "--redirect-http", ":80"}, wantErr: "--redirect-http"},
		{name: "stray argument", args: []string{"--network", "n", "extra"}, wantErr: "extra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(c); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"--log-level", "loud", "--network", "n"}, func(string) string { return "" }, io.Discard, &stderr); code != 2 {
		t.Fatalf("bad flag: exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "--log-level") {
		t.Fatalf("message %q does not name the flag", stderr.String())
	}
	var stdout strings.Builder
	if code := run([]string{"version"}, func(string) string { return "" }, &stdout, io.Discard); code != 0 || !strings.HasPrefix(stdout.String(), "wharf ") {
		t.Fatalf("version: exit %d, output %q", code, stdout.String())
	}
	if code := run([]string{"healthcheck", "--admin-listen", testutil.FreeAddr(t)}, func(string) string { return "" }, io.Discard, io.Discard); code != 1 {
		t.Fatalf("healthcheck with nothing listening: exit %d, want 1", code)
	}
}

// Every flag, with its variable, has a row in the README's flag table.
func TestReadmeFlagTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(readme), "\n## Flags and environment\n")
	table, _, _ = strings.Cut(table, "\n\n```")
	var rows []string
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| `--") {
			rows = append(rows, line)
		}
	}
	var usage strings.Builder
	parseConfig([]string{"--help"}, func(string) string { return "" }, &usage)
	for _, line := range strings.Split(usage.String(), "\n") {
		f, ok := strings.CutPrefix(strings.TrimSpace(line), "--")
		if !ok {
			continue
		}
		name := strings.Fields(f)[0]
		found := false
		for _, r := range rows {
			cells := strings.Split(r, " | ")
			found = found || len(cells) > 1 && strings.Contains(cells[0], "`--"+name+"`") && strings.Contains(cells[1], "`"+envName(name)+"`")
		}
		if !found {
			t.Errorf("README.md's flag table has no row for --%s with %s", name, envName(name))
		}
	}
}
