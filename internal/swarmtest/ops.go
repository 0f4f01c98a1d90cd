package swarmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/wharflb/wharf/internal/dockertest"
)

// LoadImage copies image ref from the machine's main engine (e.g. one
// built by dockertest) into every node, loading them in parallel: the
// nodes have no registry to pull from.
func (s *Swarm) LoadImage(ref string) {
	s.tb.Helper()
	t0 := time.Now()
	main, err := dockertest.Client()
	if err != nil {
		s.tb.Fatalf("swarmtest: load %s: %v", ref, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc, err := main.ImageSave(ctx, []string{ref})
	if err != nil {
		s.tb.Fatalf("swarmtest: save %s from the main engine: %v", ref, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		s.tb.Fatalf("swarmtest: save %s from the main engine: %v", ref, err)
	}
	s.load(ref, b)
	s.tb.Logf("swarmtest: %s (%d kB) loaded into %d nodes in %s", ref, len(b)>>10, len(s.Nodes), since(t0))
}

// LoadImageTar loads the images of a `docker save` tar file into every
// node, in parallel.
func (s *Swarm) LoadImageTar(path string) {
	s.tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		s.tb.Fatalf("swarmtest: %v", err)
	}
	s.load(path, b)
}

func (s *Swarm) load(what string, tar []byte) {
	s.tb.Helper()
	err := s.parallel(func(n *Node) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		resp, err := n.Client.ImageLoad(ctx, bytes.NewReader(tar), client.ImageLoadWithQuiet(true))
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		defer resp.Body.Close()
		// A failed load is reported in the JSON stream, not the status.
		dec := json.NewDecoder(resp.Body)
		for {
			var msg struct {
				Error string `json:"error"`
			}
			if err := dec.Decode(&msg); err == io.EOF {
				return nil
			} else if err != nil {
				return fmt.Errorf("%s: reading the answer: %w", n.Name, err)
			}
			if msg.Error != "" {
				return fmt.Errorf("%s: %s", n.Name, msg.Error)
			}
		}
	})
	if err != nil {
		s.tb.Fatalf("swarmtest: load %s: %v", what, err)
	}
}

// CreateOverlay creates an overlay network on the swarm and returns its
// ID. An attachable one also takes plain containers (docker run
// --network), e.g. a client that reaches the tasks by overlay address.
func (s *Swarm) CreateOverlay(name string, attachable bool) string {
	s.tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	resp, err := s.Manager().Client.NetworkCreate(ctx, name, network.CreateOptions{
		Driver:     "overlay",
		Attachable: attachable,
	})
	if err != nil {
		s.tb.Fatalf("swarmtest: create overlay %s: %v", name, err)
	}
	return resp.ID
}

// WaitTasks waits until service has want tasks that should run and do
// run, and returns them; it fails the test after timeout.
func (s *Swarm) WaitTasks(service string, want int, timeout time.Duration) []swarm.Task {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var tasks []swarm.Task
	err := poll(ctx, 100*time.Millisecond, func() (bool, string, error) {
		c, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		ts, err := s.Manager().Client.TaskList(c, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", service), filters.Arg("desired-state", "running"))})
		if err != nil {
			return false, "", err
		}
		running := 0
		var states []string
		for _, t := range ts {
			states = append(states, fmt.Sprintf("%d:%s %s", t.Slot, t.Status.State, t.Status.Err))
			if t.Status.State == swarm.TaskStateRunning {
				running++
			}
		}
		tasks = ts
		return running == want && len(ts) == want, strings.Join(states, ", "), nil
	})
	if err != nil {
		s.tb.Fatalf("swarmtest: %d running tasks of %s: %v", want, service, err)
	}
	return tasks
}

// StopEngine stops node i's engine (SIGTERM; SIGKILL after 20 s). Its
// containers stop with it, unless the node runs with live-restore.
func (s *Swarm) StopEngine(i int) {
	s.tb.Helper()
	n := s.Node(i)
	killed, err := n.stop(stopTimeout)
	if err != nil {
		s.tb.Fatalf("swarmtest: %v", err)
	}
	if killed {
		s.tb.Fatalf("swarmtest: %s: dockerd did not stop within %s of SIGTERM; killed it", n.Name, stopTimeout)
	}
}

// StartEngine starts node i's engine again after StopEngine, with the
// same state (it rejoins the swarm by itself), and returns once it
// answers.
func (s *Swarm) StartEngine(i int) {
	s.tb.Helper()
	if err := s.Node(i).start(); err != nil {
		s.tb.Fatalf("swarmtest: %v", err)
	}
}
