package discovery

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/swarm"

	"github.com/wharflb/wharf/lb"
)

// ServiceResult is what MapService makes of one Swarm service: whether its
// tasks are backends, and with which settings.
type ServiceResult struct {
	// Status is Ignored (not a balanced service: nothing to log), Invalid
	// (meant to be balanced but misconfigured: Err says what to fix) or
	// Routable (its running tasks are backends; MapTask decides each).
	Status Status
	Reason string
	Err    error

	ID, Name string
	// Peer holds the settings of the service's lb.* labels, as
	// lb.ParseSettings returns them (lb.service keeps its meaning: the
	// Swarm service's name is not a default for it): a template for every
	// task's backend.
	Peer lb.Backend
	// Port is the port the tasks' servers listen on: lb.port, or the only
	// target port the service publishes.
	Port int
	// Global is set for a global service, whose tasks are named by node.
	Global bool
	// Updating is set while a rolling update of the service runs.
	Updating bool
	// HasHealthcheck reports whether the service's own spec sets a
	// HEALTHCHECK; Swarm then reports a task running only once healthy.
	HasHealthcheck bool
	// Unknown holds the keys of labels with the prefix that wharf does not
	// know.
	Unknown []string
}

// MapService classifies a service, as GET /services returns it. It is a
// pure function of its arguments. prefix is the label prefix ("" means
// DefaultPrefix).
//
// In Swarm mode the lb.* labels are read from the service's own labels
// (Spec.Labels: compose deploy.labels, docker service create --label), with
// the meaning they have on a container. The checks run in this order:
//
//  1. <prefix>.enable present and not false on the service, else Ignored;
//     but when the labels sit on the tasks' containers instead
//     (Spec.TaskTemplate.ContainerSpec.Labels: compose labels,
//     --container-label), Invalid with the way to move them;
//  2. labels valid, else Invalid naming the service, label and value;
//  3. a port: <prefix>.port, or else the only target port the service
//     publishes, else Invalid.
func MapService(s swarm.Service, prefix string) ServiceResult {
	prefix = normPrefix(prefix)
	r := ServiceResult{ID: s.ID, Name: s.Spec.Name}
	r.Global = s.Spec.Mode.Global != nil
	r.Updating = s.UpdateStatus != nil && s.UpdateStatus.State == swarm.UpdateStateUpdating
	var cs *swarm.ContainerSpec
	if cs = s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		r.HasHealthcheck = hasHealthcheck(cs.Healthcheck)
	}

	enableKey := prefix + "." + labelEnable
	raw, ok := s.Spec.Labels[enableKey]
	if !ok {
		if cs != nil {
			if _, onContainer := cs.Labels[enableKey]; onContainer {
				return r.invalid(fmt.Errorf("service %s: the %s.* labels are on its containers (compose labels, --container-label), "+
					"where wharf does not read them in Swarm mode: move them to the service: deploy.labels in compose, "+
					"--label on docker service create, or docker service update --label-add %s=true %s",
					r.Name, prefix, enableKey, r.Name))
			}
		}
		return r.ignored("no label " + enableKey)
	}
	if enable, err := lb.ParseBool(strings.TrimSpace(raw)); err == nil && !enable {
		return r.ignored(fmt.Sprintf("label %s=%q", enableKey, raw))
	}

	labels, err := ParseLabels(s.Spec.Labels, prefix)
	r.Unknown = labels.Unknown
	if err != nil {
		return r.invalid(fmt.Errorf("service %s: %w", r.Name, err))
	}
	r.Peer = labels.Peer
	r.Peer.Network = "tcp"
	r.Port = labels.Port
	if r.Port == 0 {
		port, err := publishedTarget(s, prefix)
		if err != nil {
			return r.invalid(err)
		}
		r.Port = port
	}
	r.Status = Routable
	return r
}

// publishedTarget returns the only TCP target port the service publishes,
// or says why lb.port is needed.
func publishedTarget(s swarm.Service, prefix string) (int, error) {
	key := prefix + "." + labelPort
	ports := map[int]bool{}
	var specPorts []swarm.PortConfig
	if s.Spec.EndpointSpec != nil {
		specPorts = s.Spec.EndpointSpec.Ports
	}
	for _, p := range append(specPorts, s.Endpoint.Ports...) {
		if (p.Protocol == "" || p.Protocol == swarm.PortConfigProtocolTCP) && p.TargetPort > 0 {
			ports[int(p.TargetPort)] = true
		}
	}
	switch len(ports) {
	case 1:
		for p := range ports {
			return p, nil
		}
	case 0:
		return 0, fmt.Errorf("service %s: no label %s and the service publishes no port: set %s to the port the server "+
			"listens on inside the tasks (deploy.labels in compose, --label on docker service create)", s.Spec.Name, key, key)
	}
	list := make([]int, 0, len(ports))
	for p := range ports {
		list = append(list, p)
	}
	sort.Ints(list)
	strs := make([]string, len(list))
	for i, p := range list {
		strs[i] = strconv.Itoa(p)
	}
	return 0, fmt.Errorf("service %s: no label %s and the service publishes %d target ports (%s): set %s to the one to balance",
		s.Spec.Name, key, len(list), strings.Join(strs, ", "), key)
}

func (r ServiceResult) ignored(reason string) ServiceResult {
	r.Status, r.Reason = Ignored, reason
	return r
}

func (r ServiceResult) invalid(err error) ServiceResult {
	r.Status, r.Reason, r.Err = Invalid, err.Error(), err
	return r
}

// MapTask classifies a task of a service that MapService found Routable and
// builds its backend. It is a pure function of its arguments.
//
// network names the network to balance on by name or ID (the full ID or a
// prefix of at least 12 characters); the ingress network never matches.
// nodeDown reports whether the task's node is down.
//
// A task is Routable only when its state and desired state are both
// running, its node is not down and it has an address on network; the
// backend's address is that address with svc.Port. Backend.ID is the task
// ID, Name is <service>.<slot> (global services: <service>.<node ID>),
// Started is the time of the task's last status change, and Task holds its
// node's ID (the caller, which knows the nodes, names it by hostname), slot,
// state and desired state. HasHealthcheck is the service's. A task not
// attached to network is Ignored.
func MapTask(t swarm.Task, svc ServiceResult, network string, nodeDown bool) Result {
	var r Result
	r.Backend = svc.Peer
	r.Backend.ID = t.ID
	r.Backend.Name = taskName(t, svc)
	r.Backend.Started = t.Status.Timestamp
	r.Backend.Task = lb.Task{Node: t.NodeID, Slot: t.Slot, State: string(t.Status.State), DesiredState: string(t.DesiredState)}
	r.HasHealthcheck = svc.HasHealthcheck
	r.Unknown = svc.Unknown

	att := findAttachment(t.NetworksAttachments, network)
	if att == nil {
		return r.ignored("not attached to network " + network)
	}
	switch {
	case t.DesiredState != swarm.TaskStateRunning:
		return r.unready("desired state " + string(t.DesiredState))
	case t.Status.State != swarm.TaskStateRunning:
		return r.unready("task " + string(t.Status.State))
	case nodeDown:
		return r.unready("node " + t.NodeID + " down")
	}
	var ip string
	for _, a := range att.Addresses {
		if addr, _, err := net.ParseCIDR(a); err == nil {
			ip = addr.String()
			break
		}
		if addr := net.ParseIP(a); addr != nil {
			ip = addr.String()
			break
		}
	}
	if ip == "" {
		return r.invalid(fmt.Errorf("task %s: no IP address on network %s", r.Backend.Name, att.Network.Spec.Name))
	}
	r.Backend.Addr = net.JoinHostPort(ip, strconv.Itoa(svc.Port))
	r.Status = Routable
	return r
}

// taskName names a task for people as docker ps does, without the task ID.
func taskName(t swarm.Task, svc ServiceResult) string {
	if svc.Global || t.Slot == 0 {
		return svc.Name + "." + t.NodeID
	}
	return svc.Name + "." + strconv.Itoa(t.Slot)
}

// findAttachment returns the task's attachment to the network named or
// identified by ref, never the ingress network's.
func findAttachment(atts []swarm.NetworkAttachment, ref string) *swarm.NetworkAttachment {
	if ref == "" {
		return nil
	}
	for i := range atts {
		a := &atts[i]
		if a.Network.Spec.Ingress || a.Network.Spec.Name == "ingress" {
			continue
		}
		if a.Network.Spec.Name == ref || a.Network.ID == ref ||
			len(ref) >= 12 && strings.HasPrefix(a.Network.ID, ref) {
			return a
		}
	}
	return nil
}
