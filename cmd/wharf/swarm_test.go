package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/wharflb/wharf/internal/testutil"
)

// infoEngine is an engine that answers GET /info with info, and GET
// /networks/web with an overlay and /networks/bridged with a bridge.
func infoEngine(t *testing.T, info system.Info) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/info"):
			json.NewEncoder(w).Encode(info)
		case strings.HasSuffix(r.URL.Path, "/networks/web"):
			json.NewEncoder(w).Encode(network.Inspect{Name: "web", ID: "webid", Scope: "swarm", Driver: "overlay"})
		case strings.HasSuffix(r.URL.Path, "/networks/bridged"):
			json.NewEncoder(w).Encode(network.Inspect{Name: "bridged", ID: "bridgedid", Scope: "local", Driver: "bridge"})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	cli, err := client.NewClientWithOpts(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestSwarmMode: --swarm auto follows the engine's role, --swarm on on a
// worker fails with the fix, --swarm off never asks.
func TestSwarmMode(t *testing.T) {
	var manager, worker, single system.Info
	manager.Swarm = swarm.Info{LocalNodeState: swarm.LocalNodeStateActive, ControlAvailable: true}
	worker.Swarm = swarm.Info{LocalNodeState: swarm.LocalNodeStateActive}
	single.Swarm = swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive}
	ctx := context.Background()
	for _, tc := range []struct {
		name, mode string
		net        string
		info       system.Info
		on         bool
		errHas     string
		warnHas    string
	}{
		{"auto on a manager", "auto", "web", manager, true, "", ""},
		{"auto on a manager, a bridge network", "auto", "bridged", manager, false, "", ""},
		{"auto on a manager, network not there yet", "auto", "later", manager, true, "", ""},
		{"auto on a worker", "auto", "web", worker, false, "", "--constraint node.role==manager"},
		{"auto without swarm", "auto", "web", single, false, "", ""},
		{"on on a manager", "on", "web", manager, true, "", ""},
		{"on on a manager, a bridge network", "on", "bridged", manager, true, "", ""},
		{"on on a worker", "on", "web", worker, false, "run wharf on a manager node: --constraint node.role==manager", ""},
		{"on without swarm", "on", "web", single, false, "not a Swarm manager (swarm state inactive)", ""},
		{"off on a manager", "off", "web", manager, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testutil.LogBuffer{}
			on, err := swarmMode(ctx, infoEngine(t, tc.info), tc.mode, tc.net, zerolog.New(logs))
			if on != tc.on {
				t.Errorf("on = %v, want %v", on, tc.on)
			}
			if tc.errHas == "" && err != nil || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Errorf("err %v, want one saying %q", err, tc.errHas)
			}
			if tc.warnHas != "" && len(logs.Lines("warn", tc.warnHas)) != 1 {
				t.Errorf("no warning saying %q; log:\n%s", tc.warnHas, logs.String())
			}
		})
	}
}

type statsOf struct {
	events, resyncs uint64
	connected       bool
}

func (s statsOf) EventsApplied() uint64 { return s.events }
func (s statsOf) Resyncs() uint64       { return s.resyncs }
func (s statsOf) Connected() bool       { return s.connected }

// TestBothSources: /metrics counts the events and resyncs of both
// watchers, and says connected only while both are.
func TestBothSources(t *testing.T) {
	b := bothSources{statsOf{3, 1, true}, statsOf{4, 2, false}}
	if b.EventsApplied() != 7 || b.Resyncs() != 3 || b.Connected() {
		t.Errorf("events %d resyncs %d connected %v", b.EventsApplied(), b.Resyncs(), b.Connected())
	}
	if !(bothSources{statsOf{connected: true}, statsOf{connected: true}}).Connected() {
		t.Error("not connected with both sources connected")
	}
}
