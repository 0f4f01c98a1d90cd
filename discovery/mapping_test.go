package discovery

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/wharflb/wharf/lb"
)

// The fixtures are recorded from a real engine by testdata/engine/record.sh.
const engineDir = "../testdata/engine"

// inspect loads testdata/engine/inspect-<name>.json afresh, so a test may
// change it.
func inspect(t *testing.T, name string) container.InspectResponse {
	t.Helper()
	var c container.InspectResponse
	readJSON(t, "inspect-"+name+".json", &c)
	return c
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(engineDir, file))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

type recordedNetwork struct {
	Name string
	ID   string `json:"Id"`
}

// networks returns the network the recording balanced and the other one.
func networks(t *testing.T) (main, other recordedNetwork) {
	readJSON(t, "network-main.json", &main)
	readJSON(t, "network-other.json", &other)
	if main.Name == "" || len(main.ID) != 64 || other.Name == "" {
		t.Fatalf("network fixtures: got %+v and %+v, want names and IDs", main, other)
	}
	return main, other
}

// ipOn returns the address of c on the network named nw.
func ipOn(t *testing.T, c container.InspectResponse, nw string) string {
	t.Helper()
	ep := c.NetworkSettings.Networks[nw]
	if ep == nil || ep.IPAddress == "" {
		t.Fatalf("fixture %s has no IP address on %s", c.Name, nw)
	}
	return ep.IPAddress
}

func started(t *testing.T, c container.InspectResponse) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, c.State.StartedAt)
	if err != nil || ts.IsZero() {
		t.Fatalf("fixture %s: StartedAt %q: %v", c.Name, c.State.StartedAt, err)
	}
	return ts
}

// routable is the Backend Map should make of a fixture with the default
// labels: what tests of Routable results change.
func routable(t *testing.T, c container.InspectResponse, nw string, port string) lb.Backend {
	return lb.Backend{
		ID:          c.ID,
		Name:        strings.TrimPrefix(c.Name, "/"),
		Service:     lb.DefaultService,
		Network:     "tcp",
		Addr:        ipOn(t, c, nw) + ":" + port,
		Weight:      lb.DefaultWeight,
		MaxFails:    lb.DefaultMaxFails,
		FailTimeout: lb.DefaultFailTimeout,
		Health:      lb.HealthCheck{Interval: lb.DefaultHealthInterval, Timeout: lb.DefaultHealthTimeout},
		Started:     started(t, c),
	}
}

// check compares a Result with the wanted status, reason and backend.
// reason is the exact Reason; a want Backend with an empty ID skips the
// comparison of the backend.
func check(t *testing.T, got Result, status Status, reason string, backend lb.Backend, hasHC bool) {
	t.Helper()
	if got.Status != status {
		t.Errorf("got status %v (reason %q), want %v", got.Status, got.Reason, status)
	}
	if got.Reason != reason {
		t.Errorf("got reason\n%q\nwant\n%q", got.Reason, reason)
	}
	if (got.Err != nil) != (status == Invalid) {
		t.Errorf("got Err %v with status %v, want an error exactly when invalid", got.Err, got.Status)
	} else if got.Err != nil && got.Err.Error() != got.Reason {
		t.Errorf("got Err %q, want it equal to the reason %q", got.Err, got.Reason)
	}
	if backend.ID != "" && !reflect.DeepEqual(got.Backend, backend) {
		t.Errorf("got backend\n%+v\nwant\n%+v", got.Backend, backend)
	}
	if status == Routable {
		if err := got.Backend.Validate(); err != nil {
			t.Errorf("got a routable backend that lb rejects: %v", err)
		}
	} else if got.Backend.Addr != "" {
		t.Errorf("got address %q on a %v container, want none", got.Backend.Addr, status)
	}
	if got.HasHealthcheck != hasHC {
		t.Errorf("got HasHealthcheck %v, want %v", got.HasHealthcheck, hasHC)
	}
}

// TestMapRecorded maps the containers recorded from a real engine.
func TestMapRecorded(t *testing.T) {
	mainNet, otherNet := networks(t)
	nw := mainNet.Name

	withLabels := func(b lb.Backend, f func(*lb.Backend)) lb.Backend { f(&b); return b }

	tests := []struct {
		fixture string
		network string
		prefix  string
		status  Status
		reason  func(c container.InspectResponse) string
		backend func(t *testing.T, c container.InspectResponse) lb.Backend
		hasHC   bool
	}{
		{fixture: "running", status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			// Published as -p HOSTPORT:6969: the address is the container's
			// own port on the network, never the host port.
			return withLabels(routable(t, c, nw, "6969"), func(b *lb.Backend) { b.Weight = 5 })
		}},
		{fixture: "running", network: mainNet.ID, status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return withLabels(routable(t, c, nw, "6969"), func(b *lb.Backend) { b.Weight = 5 })
		}},
		{fixture: "running", network: mainNet.ID[:12], status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return withLabels(routable(t, c, nw, "6969"), func(b *lb.Backend) { b.Weight = 5 })
		}},
		{fixture: "running", network: mainNet.ID[:8], status: Ignored, reason: func(container.InspectResponse) string {
			return "not attached to network " + mainNet.ID[:8]
		}},
		{fixture: "running", network: otherNet.Name, status: Ignored, reason: func(container.InspectResponse) string {
			return "not attached to network " + otherNet.Name
		}},
		{fixture: "two-ports", status: Invalid, reason: func(container.InspectResponse) string {
			return "no label lb.port and the image exposes 2 TCP ports (6969/tcp, 7070/tcp): set lb.port to the one to balance"
		}},
		{fixture: "host-port", status: Invalid, reason: func(c container.InspectResponse) string {
			hp := c.Config.Labels["lb.port"]
			return `label lb.port="` + hp + `": ` + hp + ` is the host port published for container port 6969/tcp; inside network ` + nw + ` use lb.port=6969`
		}},
		{fixture: "host-port", network: mainNet.ID, status: Invalid, reason: func(c container.InspectResponse) string {
			hp := c.Config.Labels["lb.port"]
			return `label lb.port="` + hp + `": ` + hp + ` is the host port published for container port 6969/tcp; inside network ` + nw + ` use lb.port=6969`
		}},
		{fixture: "no-expose", status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return routable(t, c, nw, "6969")
		}},
		{fixture: "health-starting", status: Unready, hasHC: true, reason: func(container.InspectResponse) string { return "health: starting" }},
		{fixture: "health-healthy", status: Routable, hasHC: true, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return routable(t, c, nw, "6969")
		}},
		{fixture: "health-unhealthy", status: Unready, hasHC: true, reason: func(container.InspectResponse) string { return "health: unhealthy" }},
		{fixture: "health-none", status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return routable(t, c, nw, "6969")
		}},
		{fixture: "exited", status: Unready, reason: func(container.InspectResponse) string { return "exited (code 0)" }},
		{fixture: "exited", network: mainNet.ID, status: Unready, reason: func(container.InspectResponse) string { return "exited (code 0)" }},
		{fixture: "paused", status: Unready, reason: func(container.InspectResponse) string { return "paused" }},
		{fixture: "created", status: Unready, reason: func(container.InspectResponse) string { return "created, not started" }},
		// Before its first start a container has no network ID: only the name finds it.
		{fixture: "created", network: mainNet.ID, status: Ignored, reason: func(container.InspectResponse) string {
			return "not attached to network " + mainNet.ID
		}},
		{fixture: "unlabelled", status: Ignored, reason: func(container.InspectResponse) string { return "no label lb.enable" }},
		{fixture: "disabled", status: Ignored, reason: func(container.InspectResponse) string { return `label lb.enable="false"` }},
		{fixture: "other-network", status: Ignored, reason: func(container.InspectResponse) string {
			return "not attached to network " + nw
		}},
		{fixture: "other-network", network: otherNet.Name, status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return routable(t, c, otherNet.Name, "6969")
		}},
		{fixture: "two-networks", status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return routable(t, c, nw, "6969")
		}},
		{fixture: "two-networks", network: otherNet.ID, status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return routable(t, c, otherNet.Name, "6969")
		}},
		{fixture: "bad-labels", status: Invalid, reason: func(container.InspectResponse) string {
			return `label lb.port="99999": want a container port from 1 to 65535; ` +
				`label lb.weight="abc": want an integer from 1 to 1000; ` +
				`label lb.fail_timeout="soon": want a duration greater than 0 such as 10s, 1m30s or 500ms (a plain number means seconds)`
		}},
		{fixture: "all-labels", status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return withLabels(routable(t, c, nw, "6969"), func(b *lb.Backend) {
				b.Service = "api"
				b.Weight = 3
				b.Backup = true
				b.MaxFails = 3
				b.FailTimeout = 30 * time.Second
				b.Rules = lb.Rules{
					Hosts:       []string{"api.example.com", "*.api.example.com"},
					PathPrefix:  "/api",
					StripPrefix: true,
					Policy:      lb.LeastConn,
				}
				b.Health = lb.HealthCheck{Path: "/healthz", Interval: 10 * time.Second, Timeout: 3 * time.Second}
			})
		}},
		{fixture: "other-prefix", status: Ignored, reason: func(container.InspectResponse) string { return "no label lb.enable" }},
		{fixture: "other-prefix", prefix: "edge", status: Routable, backend: func(t *testing.T, c container.InspectResponse) lb.Backend {
			return withLabels(routable(t, c, nw, "6969"), func(b *lb.Backend) { b.Weight = 7 })
		}},
		{fixture: "running", prefix: "edge", status: Ignored, reason: func(container.InspectResponse) string { return "no label edge.enable" }},
	}
	for _, tt := range tests {
		name := tt.fixture
		switch tt.network {
		case "":
		case mainNet.ID, otherNet.ID:
			name += "/network=full-ID"
		case mainNet.ID[:12]:
			name += "/network=ID-prefix-12"
		case mainNet.ID[:8]:
			name += "/network=ID-prefix-8"
		default:
			name += "/network=" + tt.network
		}
		if tt.prefix != "" {
			name += "/prefix=" + tt.prefix
		}
		t.Run(name, func(t *testing.T) {
			c := inspect(t, tt.fixture)
			network := tt.network
			if network == "" {
				network = nw
			}
			got := Map(c, network, tt.prefix)
			reason := ""
			if tt.reason != nil {
				reason = tt.reason(c)
			}
			var backend lb.Backend
			if tt.backend != nil {
				backend = tt.backend(t, c)
			}
			check(t, got, tt.status, reason, backend, tt.hasHC)
			if got.Backend.ID != c.ID || got.Backend.Name != strings.TrimPrefix(c.Name, "/") {
				t.Errorf("got ID %q name %q, want %q %q", got.Backend.ID, got.Backend.Name, c.ID, strings.TrimPrefix(c.Name, "/"))
			}
		})
	}

	t.Run("all-labels/unknown", func(t *testing.T) {
		got := Map(inspect(t, "all-labels"), nw, "lb")
		if want := []string{"lb.colour"}; !reflect.DeepEqual(got.Unknown, want) {
			t.Errorf("got unknown labels %q, want %q", got.Unknown, want)
		}
	})
	t.Run("host-port/LabelError", func(t *testing.T) {
		c := inspect(t, "host-port")
		got := Map(c, nw, "lb")
		var le *LabelError
		if !errors.As(got.Err, &le) || le.Key != "lb.port" || le.Value != c.Config.Labels["lb.port"] {
			t.Errorf("got error %#v, want a *LabelError for lb.port", got.Err)
		}
	})
	t.Run("bad-labels/LabelErrors", func(t *testing.T) {
		got := Map(inspect(t, "bad-labels"), nw, "lb")
		var errs LabelErrors
		if !errors.As(got.Err, &errs) || len(errs) != 3 {
			t.Errorf("got error %#v, want LabelErrors of 3", got.Err)
		}
	})
}

// TestMapVariations changes recorded containers in the ways the recording
// does not cover.
func TestMapVariations(t *testing.T) {
	mainNet, _ := networks(t)
	nw := mainNet.Name

	setLabel := func(k, v string) func(*container.InspectResponse) {
		return func(c *container.InspectResponse) { c.Config.Labels[k] = v }
	}
	tests := []struct {
		name    string
		fixture string
		network string // "" = the recorded network's name
		prefix  string
		change  func(*container.InspectResponse)
		status  Status
		reason  string                   // exact; "{net}" and "{hp}" are replaced
		addr    string                   // for Routable: "{ip}" is replaced
		check   func(*testing.T, Result) // more checks
		hasHC   bool
	}{
		// enable
		{name: "enable=yes", fixture: "running", change: setLabel("lb.enable", "yes"), status: Routable, addr: "{ip}:6969"},
		{name: "enable=TRUE", fixture: "running", change: setLabel("lb.enable", "TRUE"), status: Routable, addr: "{ip}:6969"},
		{name: "enable empty", fixture: "running", change: setLabel("lb.enable", ""), status: Routable, addr: "{ip}:6969"},
		{name: "enable=0", fixture: "running", change: setLabel("lb.enable", "0"), status: Ignored, reason: `label lb.enable="0"`},
		{name: "enable=no", fixture: "running", change: setLabel("lb.enable", " no"), status: Ignored, reason: `label lb.enable=" no"`},
		{name: "enable=banana", fixture: "running", change: setLabel("lb.enable", "banana"), status: Invalid,
			reason: `label lb.enable="banana": ` + wantBool},
		{name: "enable=banana on another network", fixture: "other-network", change: setLabel("lb.enable", "banana"),
			status: Ignored, reason: "not attached to network {net}"},
		{name: "no labels at all", fixture: "running", change: func(c *container.InspectResponse) { c.Config.Labels = nil },
			status: Ignored, reason: "no label lb.enable"},

		// prefix
		{name: "prefix with dot", fixture: "running", prefix: "lb.", status: Routable, addr: "{ip}:6969"},
		{name: "prefix edge", fixture: "running", prefix: "edge", change: func(c *container.InspectResponse) {
			c.Config.Labels = map[string]string{"edge.enable": "true", "edge.port": "8080", "lb.port": "abc"}
		}, status: Routable, addr: "{ip}:8080"},
		{name: "prefix edge, bad label", fixture: "running", prefix: "edge", change: func(c *container.InspectResponse) {
			c.Config.Labels = map[string]string{"edge.enable": "true", "edge.weight": "0"}
		}, status: Invalid, reason: `label edge.weight="0": ` + wantWeight},
		{name: "prefix edge, host port", fixture: "host-port", prefix: "edge", change: func(c *container.InspectResponse) {
			c.Config.Labels = map[string]string{"edge.enable": "true", "edge.port": c.Config.Labels["lb.port"]}
		}, status: Invalid, reason: `label edge.port="{hp}": {hp} is the host port published for container port 6969/tcp; inside network {net} use edge.port=6969`},

		// port inference
		{name: "no exposed port", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config.ExposedPorts = nil
		}, status: Invalid, reason: "no label lb.port and the image exposes no TCP port: set lb.port to the port the server listens on inside the container"},
		{name: "only UDP exposed", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config.ExposedPorts = nat.PortSet{"53/udp": {}, "5353/sctp": {}}
		}, status: Invalid, reason: "no label lb.port and the image exposes no TCP port (only 53/udp, 5353/sctp): set lb.port to the port the server listens on inside the container"},
		{name: "one TCP and one UDP port", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config.ExposedPorts = nat.PortSet{"53/udp": {}, "8080/tcp": {}}
		}, status: Routable, addr: "{ip}:8080"},
		{name: "three exposed ports sorted by number", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config.ExposedPorts = nat.PortSet{"9000/tcp": {}, "80/tcp": {}, "443/tcp": {}}
		}, status: Invalid, reason: "no label lb.port and the image exposes 3 TCP ports (80/tcp, 443/tcp, 9000/tcp): set lb.port to the one to balance"},
		{name: "two exposed ports and lb.port", fixture: "two-ports", change: setLabel("lb.port", "7070"), status: Routable, addr: "{ip}:7070"},
		{name: "lb.port with /tcp", fixture: "two-ports", change: setLabel("lb.port", "7070/tcp"), status: Routable, addr: "{ip}:7070"},
		{name: "lb.port not exposed, nothing against it", fixture: "running", change: setLabel("lb.port", "8080"), status: Routable, addr: "{ip}:8080"},
		{name: "lb.port bad", fixture: "running", change: setLabel("lb.port", "99999"), status: Invalid, reason: `label lb.port="99999": ` + wantPort},

		// the published-port trap
		{name: "lb.port is the host port", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config.Labels["lb.port"] = c.HostConfig.PortBindings["6969/tcp"][0].HostPort
		}, status: Invalid, reason: `label lb.port="{hp}": {hp} is the host port published for container port 6969/tcp; inside network {net} use lb.port=6969`},
		{name: "host port equal to the container port", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config.Labels["lb.port"] = "6969"
			c.HostConfig.PortBindings = nat.PortMap{"6969/tcp": {{HostPort: "6969"}}}
			c.NetworkSettings.Ports = nat.PortMap{"6969/tcp": {{HostIP: "0.0.0.0", HostPort: "6969"}}}
		}, status: Routable, addr: "{ip}:6969"},
		{name: "host port of a container port that is not exposed", fixture: "no-expose", change: func(c *container.InspectResponse) {
			c.Config.Labels["lb.port"] = "10001"
			c.HostConfig.PortBindings = nat.PortMap{"6969/tcp": {{HostPort: "10001"}}}
		}, status: Invalid, reason: `label lb.port="10001": 10001 is the host port published for container port 6969/tcp; inside network {net} use lb.port=6969`},
		{name: "host port only in the running bindings", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config.Labels["lb.port"] = "10001"
			c.HostConfig.PortBindings = nat.PortMap{"6969/tcp": {{HostPort: ""}}} // -p 6969: any free port
			c.NetworkSettings.Ports = nat.PortMap{"6969/tcp": {{HostIP: "0.0.0.0", HostPort: "10001"}}}
		}, status: Invalid, reason: `label lb.port="10001": 10001 is the host port published for container port 6969/tcp; inside network {net} use lb.port=6969`},
		{name: "host port in a published range", fixture: "exited", change: func(c *container.InspectResponse) {
			c.Config.Labels["lb.port"] = "10002"
			c.HostConfig.PortBindings = nat.PortMap{"6969/tcp": {{HostPort: "10001-10003"}}}
		}, status: Invalid, reason: `label lb.port="10002": 10002 is the host port published for container port 6969/tcp; inside network {net} use lb.port=6969`},
		{name: "host port of a UDP port", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config.Labels["lb.port"] = "10053"
			c.HostConfig.PortBindings = nat.PortMap{"53/udp": {{HostPort: "10053"}}}
		}, status: Routable, addr: "{ip}:10053"},
		{name: "host port bound to two container ports", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config.Labels["lb.port"] = "10001"
			c.HostConfig.PortBindings = nat.PortMap{
				"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "10001"}},
				"6969/tcp": {{HostIP: "0.0.0.0", HostPort: "10001"}},
			}
		}, status: Invalid, reason: `label lb.port="10001": 10001 is the host port published for container port 6969/tcp; inside network {net} use lb.port=6969`},
		{name: "host port trap on a stopped container", fixture: "exited", change: func(c *container.InspectResponse) {
			c.Config.Labels["lb.port"] = "10001"
			c.HostConfig.PortBindings = nat.PortMap{"6969/tcp": {{HostPort: "10001"}}}
		}, status: Invalid, reason: `label lb.port="10001": 10001 is the host port published for container port 6969/tcp; inside network {net} use lb.port=6969`},

		// state
		{name: "restarting", fixture: "running", change: func(c *container.InspectResponse) {
			c.State.Status, c.State.Restarting = container.StateRestarting, true
		}, status: Unready, reason: "restarting"},
		{name: "dead", fixture: "exited", change: func(c *container.InspectResponse) {
			c.State.Status, c.State.Dead = container.StateDead, true
		}, status: Unready, reason: "dead"},
		{name: "removing", fixture: "running", change: func(c *container.InspectResponse) {
			c.State.Status, c.State.Running = container.StateRemoving, false
		}, status: Unready, reason: "being removed"},
		{name: "killed", fixture: "exited", change: func(c *container.InspectResponse) {
			c.State.ExitCode = 137
		}, status: Unready, reason: "exited (code 137)"},
		{name: "out of memory", fixture: "exited", change: func(c *container.InspectResponse) {
			c.State.ExitCode, c.State.OOMKilled = 137, true
		}, status: Unready, reason: "exited (code 137, killed out of memory)"},
		{name: "no state", fixture: "running", change: func(c *container.InspectResponse) { c.State = nil },
			status: Unready, reason: "state unknown", check: func(t *testing.T, r Result) {
				if !r.Backend.Started.IsZero() {
					t.Errorf("got Started %v, want zero", r.Backend.Started)
				}
			}},
		{name: "unknown state", fixture: "exited", change: func(c *container.InspectResponse) { c.State.Status = "frozen" },
			status: Unready, reason: "not running (frozen)"},
		{name: "paused with bad labels", fixture: "paused", change: setLabel("lb.weight", "heavy"),
			status: Invalid, reason: `label lb.weight="heavy": ` + wantWeight},

		// health
		{name: "healthcheck without status", fixture: "health-healthy", change: func(c *container.InspectResponse) {
			c.State.Health = nil
		}, status: Unready, reason: "health: no status yet", hasHC: true},
		{name: "CMD-SHELL healthcheck", fixture: "health-starting", change: func(c *container.InspectResponse) {
			c.Config.Healthcheck.Test = []string{"CMD-SHELL", "curl -f http://localhost:6969/ || exit 1"}
		}, status: Unready, reason: "health: starting", hasHC: true},
		{name: "empty healthcheck test", fixture: "health-starting", change: func(c *container.InspectResponse) {
			c.Config.Healthcheck.Test = nil
		}, status: Routable, addr: "{ip}:6969"},
		{name: "healthcheck NONE ignores a stale status", fixture: "health-unhealthy", change: func(c *container.InspectResponse) {
			c.Config.Healthcheck.Test = []string{"NONE"}
		}, status: Routable, addr: "{ip}:6969"},
		{name: "unhealthy and paused", fixture: "health-unhealthy", change: func(c *container.InspectResponse) {
			c.State.Status, c.State.Paused = container.StatePaused, true
		}, status: Unready, reason: "paused", hasHC: true},

		// addresses
		{name: "top-level IPAddress is not used", fixture: "running", change: func(c *container.InspectResponse) {
			c.NetworkSettings.IPAddress = "172.17.0.9"
			c.NetworkSettings.Networks["bridge"] = &network.EndpointSettings{NetworkID: strings.Repeat("b", 64), IPAddress: "172.17.0.9"}
		}, status: Routable, addr: "{ip}:6969"},
		{name: "no IP address on the network", fixture: "running", change: func(c *container.InspectResponse) {
			for _, ep := range c.NetworkSettings.Networks {
				ep.IPAddress = ""
			}
		}, status: Invalid, reason: "no IP address on network {net}"},
		{name: "no IP address, network by ID", fixture: "running", network: mainNet.ID, change: func(c *container.InspectResponse) {
			for _, ep := range c.NetworkSettings.Networks {
				ep.IPAddress = ""
			}
		}, status: Invalid, reason: "no IP address on network {net}"},
		{name: "IPv6 only", fixture: "running", change: func(c *container.InspectResponse) {
			for _, ep := range c.NetworkSettings.Networks {
				ep.IPAddress, ep.GlobalIPv6Address = "", "fd00:dead::3"
			}
		}, status: Routable, addr: "[fd00:dead::3]:6969"},
		{name: "no network settings", fixture: "running", change: func(c *container.InspectResponse) {
			c.NetworkSettings = nil
		}, status: Ignored, reason: "not attached to network {net}"},
		{name: "nil endpoint", fixture: "running", change: func(c *container.InspectResponse) {
			for k := range c.NetworkSettings.Networks {
				c.NetworkSettings.Networks[k] = nil
			}
		}, status: Ignored, reason: "not attached to network {net}"},
		{name: "no network given", fixture: "running", network: "-", status: Ignored, reason: "not attached to network "},
		{name: "network name that looks like an ID", fixture: "running", change: func(c *container.InspectResponse) {
			ep := c.NetworkSettings.Networks[nw]
			delete(c.NetworkSettings.Networks, nw)
			c.NetworkSettings.Networks[mainNet.ID[:12]] = ep
			c.NetworkSettings.Networks["zzz"] = &network.EndpointSettings{NetworkID: mainNet.ID[:12] + "ffff", IPAddress: "10.9.9.9"}
		}, network: mainNet.ID[:12], status: Routable, addr: "{ip}:6969"},

		// odd inspect data
		{name: "no container", fixture: "running", change: func(c *container.InspectResponse) {
			c.ContainerJSONBase = nil
		}, status: Invalid, reason: "inspect data without container or config", check: func(t *testing.T, r Result) {
			if r.Backend.ID != "" {
				t.Errorf("got ID %q, want none", r.Backend.ID)
			}
		}},
		{name: "no config", fixture: "running", change: func(c *container.InspectResponse) {
			c.Config = nil
		}, status: Invalid, reason: "inspect data without container or config"},
		{name: "name without slash", fixture: "running", change: func(c *container.InspectResponse) {
			c.Name = "webtest001"
		}, status: Routable, addr: "{ip}:6969", check: func(t *testing.T, r Result) {
			if r.Backend.Name != "webtest001" {
				t.Errorf("got name %q, want webtest001", r.Backend.Name)
			}
		}},
		{name: "bad StartedAt", fixture: "running", change: func(c *container.InspectResponse) {
			c.State.StartedAt = "yesterday"
		}, status: Routable, addr: "{ip}:6969", check: func(t *testing.T, r Result) {
			if !r.Backend.Started.IsZero() {
				t.Errorf("got Started %v, want zero", r.Backend.Started)
			}
		}},
		{name: "Started", fixture: "running", change: func(c *container.InspectResponse) {
			c.State.StartedAt = "2026-11-24T18:00:00.123456789Z"
		}, status: Routable, addr: "{ip}:6969", check: func(t *testing.T, r Result) {
			want := time.Date(2026, 11, 24, 18, 0, 0, 123456789, time.UTC)
			if !r.Backend.Started.Equal(want) {
				t.Errorf("got Started %v, want %v", r.Backend.Started, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := inspect(t, tt.fixture)
			ip := ""
			if ep := c.NetworkSettings.Networks[nw]; ep != nil {
				ip = ep.IPAddress
			}
			hp := ""
			if b := c.HostConfig.PortBindings["6969/tcp"]; len(b) > 0 {
				hp = b[0].HostPort
			}
			if tt.change != nil {
				tt.change(&c)
			}
			network := tt.network
			switch network {
			case "":
				network = nw
			case "-":
				network = ""
			}
			got := Map(c, network, tt.prefix)
			reason := strings.NewReplacer("{net}", nw, "{hp}", hp).Replace(tt.reason)
			check(t, got, tt.status, reason, lb.Backend{}, tt.hasHC)
			if tt.status == Routable {
				if want := strings.Replace(tt.addr, "{ip}", ip, 1); got.Backend.Addr != want {
					t.Errorf("got address %q, want %q", got.Backend.Addr, want)
				}
				if _, _, err := net.SplitHostPort(got.Backend.Addr); err != nil {
					t.Errorf("got address %q: %v", got.Backend.Addr, err)
				}
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

// TestMapLabelsToBackend checks that each label reaches the Backend.
func TestMapLabelsToBackend(t *testing.T) {
	mainNet, _ := networks(t)
	c := inspect(t, "running")
	c.Config.Labels = map[string]string{
		"lb.enable":          "true",
		"lb.port":            "8080",
		"lb.weight":          "1000",
		"lb.backup":          "1",
		"lb.max_fails":       "0",
		"lb.fail_timeout":    "2m",
		"lb.service":         "web",
		"lb.host":            "Localhost:10000",
		"lb.path":            "/webtest",
		"lb.path.strip":      "no",
		"lb.policy":          "p2c",
		"lb.health.path":     "/webtest?action=get_uuid",
		"lb.health.interval": "2",
		"lb.health.timeout":  "1500ms",
	}
	got := Map(c, mainNet.Name, "")
	want := lb.Backend{
		ID:          c.ID,
		Name:        strings.TrimPrefix(c.Name, "/"),
		Service:     "web",
		Network:     "tcp",
		Addr:        ipOn(t, c, mainNet.Name) + ":8080",
		Weight:      1000,
		Backup:      true,
		MaxFails:    0,
		FailTimeout: 2 * time.Minute,
		Rules:       lb.Rules{Hosts: []string{"localhost"}, PathPrefix: "/webtest", Policy: lb.P2C},
		Health:      lb.HealthCheck{Path: "/webtest?action=get_uuid", Interval: 2 * time.Second, Timeout: 1500 * time.Millisecond},
		Started:     started(t, c),
	}
	check(t, got, Routable, "", want, false)
	if got.Unknown != nil {
		t.Errorf("got unknown labels %q, want none", got.Unknown)
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Ignored: "ignored", Unready: "unready", Invalid: "invalid", Routable: "routable", 9: "Status(9)"} {
		if got := s.String(); got != want {
			t.Errorf("got %q for %d, want %q", got, int(s), want)
		}
	}
}

// TestRecordedEvents checks that the recorded event streams decode and show
// what the watcher relies on.
func TestRecordedEvents(t *testing.T) {
	type event struct {
		Type   string
		Action string
		Actor  struct {
			ID         string
			Attributes map[string]string
		}
		TimeNano int64 `json:"timeNano"`
	}
	files, err := filepath.Glob(filepath.Join(engineDir, "events-*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no events fixtures: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var last int64
			for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var e event
				if err := json.Unmarshal([]byte(line), &e); err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				switch e.Type {
				case "container":
					if len(e.Actor.ID) != 64 || e.Actor.Attributes["name"] == "" {
						t.Errorf("line %d: got container event %+v, want an ID and a name", i+1, e)
					}
				case "network":
					if len(e.Actor.Attributes["container"]) != 64 || e.Actor.Attributes["name"] == "" {
						t.Errorf("line %d: got network event %+v, want container and name attributes", i+1, e)
					}
				default:
					t.Errorf("line %d: got type %q, want container or network", i+1, e.Type)
				}
				if e.Action == "" || e.TimeNano < last {
					t.Errorf("line %d: got action %q at %d after %d, want an action, in time order", i+1, e.Action, e.TimeNano, last)
				}
				last = e.TimeNano
			}
		})
	}
}
