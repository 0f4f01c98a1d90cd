package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wharflb/wharf/internal/testutil"
)

func TestAdminAuthFlag(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte(strings.Repeat("7f", 32)+"\n"), 0o600)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("secret\n"), 0o600)
	getenv := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	c, err := parseConfig([]string{"--upstream", "127.0.0.1:1"}, getenv(map[string]string{"WHARF_ADMIN_AUTH": "bearer:" + token}), io.Discard)
	if err != nil || c.AdminAuth == nil {
		t.Fatalf("WHARF_ADMIN_AUTH=bearer:FILE: config %+v, err %v; want credentials", c, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--admin-auth", "bearer:" + short}, nil, "--admin-auth"},
		{[]string{"--admin-auth", "password"}, nil, "--admin-auth"},
		{nil, map[string]string{"WHARF_ADMIN_AUTH": "basic:" + filepath.Join(dir, "missing")}, "WHARF_ADMIN_AUTH"},
	} {
		_, err := parseConfig(append(tc.args, "--upstream", "127.0.0.1:1"), getenv(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: err %v, want one naming %s", tc.args, tc.env, err, tc.want)
		}
	}
}

// TestAdminAccess runs wharf with static peers and checks who its admin
// server answers.
func TestAdminAccess(t *testing.T) {
	peer := testutil.NewBackend(t, "web1", nil)
	token := strings.Repeat("5a", 32)
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte(token), 0o600)

	get := func(url, host, authorization string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}

	t.Run("no credentials: Host check", func(t *testing.T) {
		in := startWharf(t, "--upstream", peer.Addr())
		if got := get(in.admin+"/api/services", "localhost:8080", ""); got != 200 {
			t.Errorf("Host localhost: %d, want 200", got)
		}
		if got := get(in.admin+"/api/services", "rebound.example:8080", ""); got != http.StatusMisdirectedRequest {
			t.Errorf("Host rebound.example: %d, want 421", got)
		}
	})

	t.Run("bearer", func(t *testing.T) {
		in := startWharf(t, "--upstream", peer.Addr(), "--admin-auth", "bearer:"+file)
		for _, tc := range []struct {
			path, authorization string
			want                int
		}{
			{"/api/services", "", 401},
			{"/metrics", "Bearer wrong", 401},
			{"/api/services", "Bearer " + token, 200},
			{"/metrics", "Bearer " + token, 200},
			{"/healthz", "", 200},
		} {
			if got := get(in.admin+tc.path, "wharf.example.com", tc.authorization); got != tc.want {
				t.Errorf("GET %s with %q: %d, want %d", tc.path, tc.authorization, got, tc.want)
			}
		}
		// The image's HEALTHCHECK needs no credentials.
		addr := strings.TrimPrefix(in.admin, "http://")
		if code := run([]string{"healthcheck", "--admin-listen", addr}, func(string) string { return "" }, io.Discard, io.Discard); code != 0 {
			t.Errorf("wharf healthcheck with --admin-auth set: exit %d, want 0", code)
		}
	})
}
