package admin

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// ask sends one request for path with the given Host to h and returns the
// status; with set, it also sets Authorization.
func ask(h http.Handler, host, path, authorization string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	r.Host = host
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHostCheckWithoutCredentials(t *testing.T) {
	s := New(testBalancer("webtest001"), func() bool { return true }, Access{ListenHost: "wharf-admin.internal"})
	for _, tc := range []struct {
		host string
		want int
	}{
		{"localhost:8080", 200},
		{"LOCALHOST", 200},
		{"dashboard.localhost:8080", 200},
		{"127.0.0.1:8080", 200},
		{"[::1]:8080", 200},
		{"10.1.2.3", 200},
		{"wharf-admin.internal:8080", 200},
		{"wharf-admin.internal.:8080", 200},
		// A DNS-rebinding page sends its own name.
		{"attacker.example:8080", http.StatusMisdirectedRequest},
		{"localhost.attacker.example", http.StatusMisdirectedRequest},
		{"", http.StatusMisdirectedRequest},
	} {
		for _, path := range []string{"/api/services", "/", "/healthz"} {
			w := ask(s, tc.host, path, "")
			if w.Code != tc.want {
				t.Errorf("Host %q GET %s: %d, want %d", tc.host, path, w.Code, tc.want)
			}
			if w.Code == http.StatusMisdirectedRequest && !strings.Contains(w.Body.String(), "--admin-auth") {
				t.Errorf("Host %q: refusal %q does not name --admin-auth", tc.host, w.Body)
			}
		}
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBearer(t *testing.T) {
	token := strings.Repeat("ab12", 10)
	auth, err := ParseAuth("bearer:" + writeFile(t, token+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(testBalancer("webtest001"), func() bool { return true }, Access{Auth: auth})
	for _, tc := range []struct {
		path, authorization string
		want                int
	}{
		{"/api/services", "", 401},
		{"/api/services", "Bearer " + token[1:], 401},
		{"/api/services", "Bearer " + token + "x", 401},
		{"/api/services", "bearer " + token, 401},
		{"/metrics", "", 401},
		{"/api/services", "Bearer " + token, 200},
		{"/healthz", "", 200}, // probes need no credentials
	} {
		// With credentials required, any Host is served.
		w := ask(s, "wharf.example.com", tc.path, tc.authorization)
		if w.Code != tc.want {
			t.Errorf("GET %s with %q: %d, want %d", tc.path, tc.authorization, w.Code, tc.want)
		}
		if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("401 with WWW-Authenticate %q, want a Bearer challenge", w.Header().Get("WWW-Authenticate"))
		}
	}
}

func TestBasic(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ParseAuth("basic:" + writeFile(t, "# admins\n\nops:"+string(hash)+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := New(testBalancer("webtest001"), func() bool { return true }, Access{Auth: auth})
	basicAuth := func(user, pass string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return r.Header.Get("Authorization")
	}
	for _, tc := range []struct {
		authorization string
		want          int
	}{
		{"", 401},
		{basicAuth("ops", "wrong"), 401},
		{basicAuth("root", "s3cret pass"), 401},
		{basicAuth("ops", "s3cret pass"), 200},
		{basicAuth("ops", "s3cret pass"), 200}, // remembered: no second bcrypt check
		{basicAuth("ops", "s3cret pas"), 401},
	} {
		if w := ask(s, "localhost", "/api/services", tc.authorization); w.Code != tc.want {
			t.Errorf("%q: %d, want %d", tc.authorization, w.Code, tc.want)
		}
	}

	// While a bcrypt check runs, another unremembered password is refused
	// at once instead of queueing for the CPU.
	b := auth.(*basic)
	b.checking.Lock()
	w := ask(s, "localhost", "/api/services", basicAuth("ops", "another guess"))
	b.checking.Unlock()
	if w.Code != 401 {
		t.Errorf("a guess during a running check: %d, want 401", w.Code)
	}
	// ...but a remembered one still passes.
	b.checking.Lock()
	w = ask(s, "localhost", "/api/services", basicAuth("ops", "s3cret pass"))
	b.checking.Unlock()
	if w.Code != 200 {
		t.Errorf("the right password during a running check: %d, want 200", w.Code)
	}
}

// TestBasicHtpasswdFormat checks a hash in the $2y$ form that htpasswd -B
// writes (this one made by libxcrypt).
func TestBasicHtpasswdFormat(t *testing.T) {
	auth, err := ParseAuth("basic:" + writeFile(t, "ops:$2y$05$abcdefghijklmnopqrstuuLK7U1u6pVRmL7L1BBM2aS35PSZnDXlK\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth("ops", "s3cret")
	if !auth.Authenticate(r) {
		t.Fatal("the htpasswd -B password was refused")
	}
}

func TestParseAuthErrors(t *testing.T) {
	for _, tc := range []struct {
		spec, want string
	}{
		{"digest:/x", "want basic:FILE"},
		{"basic:", "want basic:FILE"},
		{"bearer", "want basic:FILE"},
		{"bearer:" + filepath.Join(t.TempDir(), "missing"), "no such file"},
		{"bearer:" + writeFile(t, "short"), "at least 32 characters"},
		{"bearer:" + writeFile(t, strings.Repeat("a", 20)+" "+strings.Repeat("b", 20)), "one token"},
		{"basic:" + writeFile(t, "# nobody\n"), "no user"},
		{"basic:" + writeFile(t, "ops:$apr1$abc$def\n"), ":1: user ops: not a bcrypt hash"},
		{"basic:" + writeFile(t, "\nops\n"), ":2: want user:hash"},
	} {
		_, err := ParseAuth(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAuth(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
}

func TestEventsLimitPerClient(t *testing.T) {
	es := newEventStream(testBalancer("webtest001"))
	es.maxPerClient = 2
	srv := httptest.NewServer(es)
	defer srv.Close()
	for range 2 {
		ev, stop := openStream(t, srv.Client(), srv.URL)
		defer stop()
		ev.next(t)
	}
	res, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third stream from one client: %s, want 503", res.Status)
	}
	if got := es.streams.Load(); got != 2 {
		t.Fatalf("%d streams counted, want 2", got)
	}
}
