package admin

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/wharflb/wharf/lb"
)

// TestServicesTask: a peer that is a Swarm task shows its node, slot,
// state and desired state in /api/services; a container shows no task.
func TestServicesTask(t *testing.T) {
	peers := backends("webtest001", "api.3")
	peers[1].Task = lb.Task{Node: "node2", Slot: 3, State: "running", DesiredState: "running"}
	bal := lb.New()
	bal.Update("test", peers)
	s := New(bal, func() bool { return true }, Access{})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/api/services", nil))
	var doc struct {
		Services []struct {
			Peers []map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || len(doc.Services) != 1 || len(doc.Services[0].Peers) != 2 {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	tasks := map[string]string{}
	for _, p := range doc.Services[0].Peers {
		var name string
		json.Unmarshal(p["container"], &name)
		tasks[name] = string(p["task"])
	}
	if got, want := tasks["api.3"], `{"node":"node2","slot":3,"state":"running","desired_state":"running"}`; compact(t, got) != want {
		t.Errorf("task of api.3: %s, want %s", got, want)
	}
	if got := tasks["webtest001"]; got != "" {
		t.Errorf("task of a container: %s, want none", got)
	}
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		return s
	}
	return b.String()
}
