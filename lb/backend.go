// Package lb owns balancing: the service table, its pools of peers, the
// selection policies and the per-peer runtime state (passive health,
// counters) that survives table updates.
//
// Sources (Docker discovery, static --upstream flags) describe what should
// be balanced as a list of Backend values. A Balancer turns each complete
// list into an immutable Table and swaps it in with one atomic store;
// requests only ever load the current Table, so picking takes no global lock.
package lb

import (
	"fmt"
	"slices"
	"time"
)

// Defaults and ranges of the per-peer settings; the passive health ones
// and the weights as nginx defines them.
const (
	DefaultService     = "default"
	DefaultWeight      = 1
	DefaultMaxFails    = 1
	DefaultFailTimeout = 10 * time.Second

	MinWeight = 1
	MaxWeight = 1000

	// Active health checks, when a health path is set.
	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
)

// Policy names a selection policy.
type Policy string

// The selection policies a service can use.
const (
	RoundRobin Policy = "round_robin" // smooth weighted round-robin (nginx)
	LeastConn  Policy = "least_conn"
	IPHash     Policy = "ip_hash"
	P2C        Policy = "p2c"
)

// policies is the one list of the selection policies: ParsePolicy, the
// settings' messages and Policies read it.
var policies = [...]Policy{RoundRobin, LeastConn, IPHash, P2C}

// Policies returns the selection policies a service can use. The slice is a
// copy.
func Policies() []Policy { return append([]Policy(nil), policies[:]...) }

// ParsePolicy validates a policy name; the empty string means RoundRobin.
func ParsePolicy(s string) (Policy, error) {
	if s == "" {
		return RoundRobin, nil
	}
	for _, p := range policies {
		if Policy(s) == p {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown policy %q (%s)", s, wantPolicy)
}

// Rules say which requests a service receives. The zero value matches every
// request that no other service matches.
type Rules struct {
	Hosts       []string // exact names or "*.example.com"; empty = any host
	PathPrefix  string   // "" or "/" = any path
	StripPrefix bool     // remove PathPrefix before forwarding
	Policy      Policy
	TLS         TLSMode // where the certificates of Hosts come from; "" = none of the service's own
}

// TLSMode says where the certificates of a service's host names come from.
type TLSMode string

// TLSACME: the service's host names get certificates from the ACME CA.
const TLSACME TLSMode = "acme"

// HealthCheck configures active HTTP health checking; Path "" disables it.
type HealthCheck struct {
	Path     string
	Interval time.Duration
	Timeout  time.Duration
}

// Backend is one peer as a source describes it. It is a plain value: sources
// build it, the Balancer copies it, nobody mutates it afterwards.
type Backend struct {
	// ID is the stable identity of the thing behind the address (a container
	// ID, or "static:" + address). Runtime state is carried across updates
	// for a peer whose ID and address are unchanged.
	ID   string
	Name string // for people: container name or the address

	Service string
	Network string // "tcp" or "unix"
	Addr    string // "172.18.0.3:6969" or "/run/app.sock"

	Weight      int
	Backup      bool
	MaxFails    int // 0 disables passive health
	FailTimeout time.Duration

	Rules  Rules
	Health HealthCheck

	// Started orders members of a service when their rules disagree: the
	// longest-running member's rules hold.
	Started time.Time

	// Task describes the Swarm task behind the address, for people (the
	// admin API and dashboard); its zero value for a container or a
	// static peer.
	Task Task
}

// Task is what a peer that is a Swarm task shows of it.
type Task struct {
	Node         string // the node's hostname
	Slot         int    // 0 for a task of a global service
	State        string // the task's state when last read ("running")
	DesiredState string // the state the orchestrator wants for it
}

// Key is the identity under which runtime state is kept.
func (b *Backend) Key() string { return b.ID + "|" + b.Network + "|" + b.Addr }

// Equal reports whether b and o describe the same peer with the same
// settings: a source that finds its list unchanged need not publish it.
// Started compares as an instant (time.Time.Equal), Hosts as lists (nil and
// empty are equal). A test sets every field in turn, so a field added to
// Backend, Rules or HealthCheck that Equal misses fails it.
func (b Backend) Equal(o Backend) bool {
	return b.ID == o.ID && b.Name == o.Name && b.Service == o.Service &&
		b.Network == o.Network && b.Addr == o.Addr &&
		b.Weight == o.Weight && b.Backup == o.Backup && b.MaxFails == o.MaxFails &&
		b.FailTimeout == o.FailTimeout &&
		slices.Equal(b.Rules.Hosts, o.Rules.Hosts) && b.Rules.PathPrefix == o.Rules.PathPrefix &&
		b.Rules.StripPrefix == o.Rules.StripPrefix && b.Rules.Policy == o.Rules.Policy && b.Rules.TLS == o.Rules.TLS &&
		b.Health == o.Health && b.Started.Equal(o.Started) && b.Task == o.Task
}

// Validate reports the first setting of b that cannot be balanced.
func (b *Backend) Validate() error {
	switch {
	case b.ID == "":
		return fmt.Errorf("backend %q: empty ID", b.Name)
	case b.Addr == "":
		return fmt.Errorf("backend %q: empty address", b.Name)
	case b.Network != "tcp" && b.Network != "unix":
		return fmt.Errorf("backend %q: network %q is not tcp or unix", b.Name, b.Network)
	case b.Weight < MinWeight || b.Weight > MaxWeight:
		return fmt.Errorf("backend %q: weight %d out of range %d-%d", b.Name, b.Weight, MinWeight, MaxWeight)
	case b.MaxFails < 0:
		return fmt.Errorf("backend %q: negative max_fails", b.Name)
	case b.FailTimeout < 0:
		return fmt.Errorf("backend %q: negative fail_timeout", b.Name)
	}
	return nil
}
