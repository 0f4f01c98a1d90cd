package discovery

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/wharflb/wharf/lb"
)

// Status is what a container is to the balancer.
type Status int

// The classes of containers, from "not ours" to "send requests to it".
const (
	// Ignored: not a backend of this wharf. It has no <prefix>.enable label
	// or has it set to false, or it is not attached to the network. Nothing
	// needs to be logged.
	Ignored Status = iota
	// Unready: a backend that cannot take requests now, for a passing
	// reason: it is not running, paused, restarting, or its HEALTHCHECK does
	// not say healthy (yet, or any more). Result.Reason says which.
	Unready
	// Invalid: a backend that is misconfigured and stays skipped until its
	// labels or image change: a bad label value, no usable port, no IP
	// address on the network. Result.Err says what to fix.
	Invalid
	// Routable: Result.Backend is complete and can be balanced.
	Routable
)

func (s Status) String() string {
	switch s {
	case Ignored:
		return "ignored"
	case Unready:
		return "unready"
	case Invalid:
		return "invalid"
	case Routable:
		return "routable"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Result is what Map makes of one container.
type Result struct {
	Status Status

	// Reason says, for people, why the container is not Routable:
	// "not attached to network webtest", "paused", "exited (code 137)",
	// "health: starting", and for Invalid the text of Err.
	Reason string

	// Err is set for Invalid only. errors.As finds a *LabelError in it when
	// a label is at fault.
	Err error

	// Backend is complete when Status is Routable. Otherwise only ID and
	// Name are set (for logs), plus the label settings when the labels are
	// valid; Addr stays empty.
	Backend lb.Backend

	// HasHealthcheck reports whether the container has a HEALTHCHECK (one
	// whose test is not NONE). A container with one is Routable only while
	// healthy; a container without one is Routable as soon as it runs, so
	// the caller should probe Backend.Addr before sending requests to it.
	HasHealthcheck bool

	// Unknown holds the keys of labels with the prefix that wharf does not
	// know (see Labels.Unknown), once the container is enabled and on the
	// network.
	Unknown []string
}

// Map classifies a container, as GET /containers/{id}/json returns it, and
// builds its backend. It is a pure function of its arguments: no I/O, no
// clock.
//
// network names the Docker network whose containers are balanced, by name or
// by ID (the full ID or a prefix of at least 12 characters). A name is the
// better choice: a container that was created but never started carries no
// network ID yet. prefix is the label prefix ("" means DefaultPrefix).
//
// The checks run in this order, the first that fails decides:
//
//  1. <prefix>.enable present and not false, attached to network, else
//     Ignored;
//  2. labels valid (ParseLabels), else Invalid;
//  3. a container port: <prefix>.port, or else the only exposed TCP port,
//     else Invalid. A <prefix>.port that is not a container port but a
//     host port published for one (the classic mistake of writing the
//     10001 of "-p 10001:6969") is Invalid with the port to use; one that
//     the image merely does not EXPOSE is accepted;
//  4. running (not paused, restarting, dead, exited, created), else Unready;
//  5. with a HEALTHCHECK, healthy, else Unready;
//  6. an IP address on network, else Invalid.
//
// A Routable backend's address is the container's IP address on network
// with the container port: never the top-level NetworkSettings.IPAddress
// (another network's, or empty), never a published host port.
func Map(c container.InspectResponse, network, prefix string) Result {
	var r Result
	if c.ContainerJSONBase == nil || c.Config == nil {
		return r.invalid(errors.New("inspect data without container or config"))
	}
	r.Backend.ID = c.ID
	r.Backend.Name = strings.TrimPrefix(c.Name, "/")
	r.HasHealthcheck = hasHealthcheck(c.Config.Healthcheck)
	prefix = normPrefix(prefix)

	enableKey := prefix + "." + labelEnable
	raw, ok := c.Config.Labels[enableKey]
	if !ok {
		return r.ignored("no label " + enableKey)
	}
	if enable, err := lb.ParseBool(strings.TrimSpace(raw)); err == nil && !enable {
		return r.ignored(fmt.Sprintf("label %s=%q", enableKey, raw))
	}
	netName, ep := findNetwork(c.NetworkSettings, network)
	if ep == nil {
		return r.ignored(fmt.Sprintf("not attached to network %s", network))
	}

	labels, err := ParseLabels(c.Config.Labels, prefix)
	r.Unknown = labels.Unknown
	if err != nil {
		return r.invalid(err)
	}
	id, name := r.Backend.ID, r.Backend.Name
	r.Backend = labels.Peer
	r.Backend.ID, r.Backend.Name, r.Backend.Network = id, name, "tcp"
	if c.State != nil {
		// The zero time when never started or unparsable.
		r.Backend.Started, _ = time.Parse(time.RFC3339Nano, c.State.StartedAt)
	}

	port, err := containerPort(c, labels.Port, prefix, netName)
	if err != nil {
		return r.invalid(err)
	}

	if reason := notRunning(c.State); reason != "" {
		return r.unready(reason)
	}
	if r.HasHealthcheck {
		switch h := healthStatus(c.State); h {
		case container.Healthy:
		case "":
			return r.unready("health: no status yet")
		default:
			return r.unready("health: " + h)
		}
	}

	ip := ep.IPAddress
	if ip == "" {
		ip = ep.GlobalIPv6Address
	}
	if ip == "" {
		return r.invalid(fmt.Errorf("no IP address on network %s", netName))
	}
	r.Backend.Addr = net.JoinHostPort(ip, strconv.Itoa(port))
	r.Status = Routable
	return r
}

func (r Result) ignored(reason string) Result {
	r.Status, r.Reason = Ignored, reason
	return r
}

func (r Result) unready(reason string) Result {
	r.Status, r.Reason = Unready, reason
	return r
}

func (r Result) invalid(err error) Result {
	r.Status, r.Reason, r.Err = Invalid, err.Error(), err
	return r
}

// findNetwork returns the name and endpoint of the network the container is
// attached to whose name is ref, or whose ID is or starts with ref (12
// characters at least).
func findNetwork(ns *container.NetworkSettings, ref string) (string, *network.EndpointSettings) {
	if ns == nil || ref == "" {
		return "", nil
	}
	if ep := ns.Networks[ref]; ep != nil {
		return ref, ep
	}
	names := make([]string, 0, len(ns.Networks))
	for name := range ns.Networks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ep := ns.Networks[name]
		if ep != nil && ep.NetworkID != "" &&
			(ep.NetworkID == ref || len(ref) >= 12 && strings.HasPrefix(ep.NetworkID, ref)) {
			return name, ep
		}
	}
	return "", nil
}

// hasHealthcheck reports whether cfg, the container's effective
// configuration (image and run options merged), has a HEALTHCHECK.
// hasHealthcheck reports whether hc (a container's or a service's) is a
// HEALTHCHECK that runs: one whose test is not NONE.
func hasHealthcheck(hc *container.HealthConfig) bool {
	return hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE"
}

func healthStatus(st *container.State) string {
	if st == nil || st.Health == nil {
		return ""
	}
	return st.Health.Status
}

// notRunning says why a container in state st cannot take requests, or
// returns "" when it runs.
func notRunning(st *container.State) string {
	switch {
	case st == nil:
		return "state unknown"
	case st.Dead || st.Status == container.StateDead:
		return "dead"
	case st.Restarting || st.Status == container.StateRestarting:
		return "restarting"
	case st.Paused || st.Status == container.StatePaused:
		return "paused"
	case st.Status == container.StateRemoving:
		return "being removed"
	case st.Running:
		return ""
	case st.Status == container.StateCreated:
		return "created, not started"
	case st.Status == container.StateExited:
		if st.OOMKilled {
			return fmt.Sprintf("exited (code %d, killed out of memory)", st.ExitCode)
		}
		return fmt.Sprintf("exited (code %d)", st.ExitCode)
	case st.Status != "":
		return "not running (" + st.Status + ")"
	}
	return "not running"
}

// containerPort returns the container port to send to: port, the value of
// the port label, when set (0 means absent), else the only exposed TCP port. See Map.
func containerPort(c container.InspectResponse, port int, prefix, netName string) (int, error) {
	key := prefix + "." + labelPort
	if port != 0 {
		if _, ok := tcpContainerPorts(c)[port]; ok {
			return port, nil
		}
		if cp, ok := publishedAs(c, port); ok {
			return 0, &LabelError{Key: key, Value: c.Config.Labels[key], Want: fmt.Sprintf(
				"%d is the host port published for container port %d/tcp; inside network %s use %s=%d",
				port, cp, netName, key, cp)}
		}
		return port, nil // not EXPOSEd, and nothing says it is wrong
	}

	var tcp, other []string
	for p := range c.Config.ExposedPorts {
		if p.Proto() == "tcp" && p.Int() > 0 {
			tcp = append(tcp, string(p))
		} else {
			other = append(other, string(p))
		}
	}
	sortPorts(tcp)
	sortPorts(other)
	switch len(tcp) {
	case 1:
		return nat.Port(tcp[0]).Int(), nil
	case 0:
		msg := fmt.Sprintf("no label %s and the image exposes no TCP port", key)
		if len(other) > 0 {
			msg += " (only " + strings.Join(other, ", ") + ")"
		}
		return 0, errors.New(msg + ": set " + key + " to the port the server listens on inside the container")
	}
	return 0, fmt.Errorf("no label %s and the image exposes %d TCP ports (%s): set %s to the one to balance",
		key, len(tcp), strings.Join(tcp, ", "), key)
}

// tcpContainerPorts returns the TCP ports the container is known to use:
// exposed, or named in a port binding.
func tcpContainerPorts(c container.InspectResponse) map[int]struct{} {
	ports := map[int]struct{}{}
	add := func(p nat.Port) {
		if p.Proto() == "tcp" && p.Int() > 0 {
			ports[p.Int()] = struct{}{}
		}
	}
	for p := range c.Config.ExposedPorts {
		add(p)
	}
	for _, pm := range portMaps(c) {
		for p := range pm {
			add(p)
		}
	}
	return ports
}

// publishedAs returns the lowest TCP container port that hostPort is
// published for, in the running bindings or the configured ones.
func publishedAs(c container.InspectResponse, hostPort int) (int, bool) {
	best := 0
	for _, pm := range portMaps(c) {
		for p, bindings := range pm {
			if p.Proto() != "tcp" || p.Int() <= 0 {
				continue
			}
			for _, b := range bindings {
				if inPortRange(b.HostPort, hostPort) && (best == 0 || p.Int() < best) {
					best = p.Int()
				}
			}
		}
	}
	return best, best != 0
}

func portMaps(c container.InspectResponse) []nat.PortMap {
	var pms []nat.PortMap
	if c.NetworkSettings != nil {
		pms = append(pms, c.NetworkSettings.Ports)
	}
	if c.HostConfig != nil {
		pms = append(pms, c.HostConfig.PortBindings)
	}
	return pms
}

// inPortRange reports whether port is spec, a host port ("10001") or range
// ("10001-10003") of a binding; "" (any free port) matches nothing.
func inPortRange(spec string, port int) bool {
	if spec == "" {
		return false
	}
	lo, hi, err := nat.ParsePortRangeToInt(spec)
	return err == nil && lo <= port && port <= hi
}

// sortPorts sorts "port/proto" strings by number, then protocol.
func sortPorts(ps []string) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := nat.Port(ps[i]), nat.Port(ps[j])
		if a.Int() != b.Int() {
			return a.Int() < b.Int()
		}
		return a.Proto() < b.Proto()
	})
}
