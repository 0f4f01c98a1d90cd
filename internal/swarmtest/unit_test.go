package swarmtest

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestRunOfNetns(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   string
		ok   bool
	}{
		{"wst-a1b2c3-hub", "a1b2c3", true},
		{"wst-a1b2c3-node12", "a1b2c3", true},
		{"wst-a1b2c3", "", false},
		{"wst-A1B2C3-hub", "", false},
		{"wst-a1b2c-node1", "", false},
		{"node1", "", false},
		{"swl-hub", "", false},
	} {
		id, ok := runOfNetns(tc.name)
		if id != tc.id || ok != tc.ok {
			t.Errorf("runOfNetns(%q) = %q, %v; want %q, %v", tc.name, id, ok, tc.id, tc.ok)
		}
	}
}

func TestNthAddr(t *testing.T) {
	p := netip.MustParsePrefix("10.99.42.0/24")
	if got := nthAddr(p, 3); got != netip.MustParseAddr("10.99.42.3") {
		t.Errorf("nthAddr(%s, 3) = %s, want 10.99.42.3", p, got)
	}
}

// TestQuote runs the quoted strings through sh.
func TestQuote(t *testing.T) {
	for _, s := range []string{"plain", "with space", `it's`, `$HOME "x" \n`, ""} {
		out, err := exec.Command("/bin/sh", "-c", "printf %s "+quote(s)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != s {
			t.Errorf("sh read %s as %q, want %q", quote(s), out, s)
		}
	}
}

// TestDialRefusesOwnNamespace checks the guard that keeps traffic for the
// swarm's addresses from being sent from the machine's own namespace,
// which would route it off the machine.
func TestDialRefusesOwnNamespace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, path := range []string{"/proc/1/ns/net", "/proc/thread-self/ns/net"} {
		f, err := os.Open(path)
		if err != nil {
			t.Logf("%v (init's namespace may be closed to the test)", err)
			continue
		}
		defer f.Close()
		c, err := dialIn(ctx, f, "tcp", "127.0.0.1:9")
		if err == nil {
			c.Close()
			t.Fatalf("dialIn from %s succeeded", path)
		}
		if !strings.Contains(err.Error(), "own network namespace") {
			t.Errorf("dialIn from %s: %v, want a refusal", path, err)
		}
	}
}

// TestCgroupMounts checks that the cgroup mounts replayed in each node are
// read with their file system types and options, parents first.
func TestCgroupMounts(t *testing.T) {
	ms, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.fstype == "" || m.opts == "" {
			t.Errorf("mount %d: %+v, want a type and options", i, m)
		}
		for _, parent := range ms[i+1:] {
			if strings.HasPrefix(m.target, parent.target+"/") {
				t.Errorf("%s comes before its parent %s", m.target, parent.target)
			}
		}
	}
}
