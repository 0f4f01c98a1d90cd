// Package admin serves wharf's admin endpoints: health, the service table
// as JSON, metrics and the dashboard.
package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/wharflb/wharf/acme"
	"github.com/wharflb/wharf/lb"
)

// Server answers the admin endpoints for one Balancer.
type Server struct {
	bal     *lb.Balancer
	ready   func() bool
	mux     *http.ServeMux
	handler http.Handler // mux behind the access rules
	events  *eventStream
	certs   func() []acme.HostStatus // nil without automatic HTTPS
}

// New returns the admin handler. ready reports whether the first sync with
// every source is done; /healthz answers 503 until then. access says who
// may ask; its zero value serves requests that name the server by a
// loopback name or an IP address, without credentials.
func New(bal *lb.Balancer, ready func() bool, access Access) *Server {
	s := &Server{bal: bal, ready: ready, mux: http.NewServeMux(), events: newEventStream(bal)}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /api/services", s.services)
	s.mux.Handle("GET /{$}", newDashboardPage())
	s.mux.Handle("GET /api/events", s.events)
	s.handler = access.guard(s.mux)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if !s.ready() {
		http.Error(w, "waiting for the first sync", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// Service is one service in /api/services.
type Service struct {
	Name   string   `json:"name"`
	Hosts  []string `json:"hosts"`
	Path   string   `json:"path"`
	Strip  bool     `json:"strip_prefix"`
	Policy string   `json:"policy"`
	Peers  []Peer   `json:"peers"`
}

// Peer is one peer in /api/services.
type Peer struct {
	Container string `json:"container"`
	ID        string `json:"id"`
	Address   string `json:"address"`
	Weight    int    `json:"weight"`
	Backup    bool   `json:"backup"`
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"` // why a down peer is out: "max_fails" or "health check"
	DownFor   string `json:"down_for,omitempty"`
	InFlight  int64  `json:"in_flight"`
	Requests  uint64 `json:"requests"`
	Failures  uint64 `json:"failures"`
	Task      *Task  `json:"task,omitempty"` // for a Swarm task only
}

// Task is the Swarm task behind a peer in /api/services.
type Task struct {
	Node         string `json:"node"`
	Slot         int    `json:"slot"`
	State        string `json:"state"`
	DesiredState string `json:"desired_state"`
}

// Snapshot describes the current table.
func Snapshot(bal *lb.Balancer) []Service {
	now := bal.Now()
	out := []Service{}
	for _, p := range bal.Table().Pools() {
		r := p.Rules()
		svc := Service{Name: p.Name(), Hosts: r.Hosts, Path: r.PathPrefix, Strip: r.StripPrefix,
			Policy: string(r.Policy), Peers: []Peer{}}
		if svc.Hosts == nil {
			svc.Hosts = []string{}
		}
		if svc.Path == "" {
			svc.Path = "/"
		}
		if svc.Policy == "" {
			svc.Policy = string(lb.RoundRobin)
		}
		for _, pe := range p.Peers() {
			peer := Peer{Container: pe.Name, ID: pe.ID, Address: pe.Addr, Weight: pe.Weight, Backup: pe.Backup,
				State: pe.State(now), Reason: pe.DownReason(now), InFlight: pe.InFlight(), Requests: pe.Requests(), Failures: pe.Failures()}
			if d := pe.DownUntil(); d > now {
				peer.DownFor = time.Duration(d - now).Round(time.Millisecond).String()
			}
			if t := pe.Task; t != (lb.Task{}) {
				peer.Task = &Task{Node: t.Node, Slot: t.Slot, State: t.State, DesiredState: t.DesiredState}
			}
			svc.Peers = append(svc.Peers, peer)
		}
		out = append(out, svc)
	}
	return out
}

func (s *Server) services(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(document(s.bal, s.certs))
}
