package proxy

import (
	"sync"
	"time"
)

// HTTP/2 streams run on goroutines kept between streams, of any
// connection: a new goroutine's stack grows to what an exchange needs,
// copying itself each time, where a kept one has grown already. Under
// 64 connections of 8 streams, a cap of 256 kept goroutines made a new
// one for most streams, and stack growth cost 3.7% of the process's CPU.
//
// So the number kept follows the load instead: a goroutine that found no
// stream for a whole sweep period, and then another, ends. The most
// recently idle goroutine takes the next stream (a stack, not a queue),
// so that under a falling load the goroutines at the bottom stay idle and
// end, and the busy ones stay warm in the CPU's caches.

// h2SweepEvery is the sweep period: an idle goroutine ends after between
// one and two of them.
const h2SweepEvery = 10 * time.Second

type h2Job struct {
	st     *h2Stream
	status int
}

// h2Worker is a goroutine kept for streams.
type h2Worker struct {
	jobs chan h2Job // a job, or closed: the goroutine ends
	gen  uint64     // the sweep generation in which it became idle
}

// h2Workers are the idle workers, the most recently idle last. The
// sweeper runs while any is idle.
var h2Workers struct {
	mu       sync.Mutex
	idle     []*h2Worker
	gen      uint64
	sweeping bool
}

// startStream runs st's exchange, or answers status, on an idle worker,
// or on a new one when none is idle.
func startStream(st *h2Stream, status int) {
	j := h2Job{st, status}
	ws := &h2Workers
	ws.mu.Lock()
	if n := len(ws.idle); n > 0 {
		w := ws.idle[n-1]
		ws.idle[n-1] = nil
		ws.idle = ws.idle[:n-1]
		ws.mu.Unlock()
		w.jobs <- j
		return
	}
	ws.mu.Unlock()
	go (&h2Worker{jobs: make(chan h2Job, 1)}).serve(j)
}

func (w *h2Worker) serve(j h2Job) {
	ws := &h2Workers
	for {
		j.st.run(j.status)
		ws.mu.Lock()
		w.gen = ws.gen
		ws.idle = append(ws.idle, w)
		if !ws.sweeping {
			ws.sweeping = true
			time.AfterFunc(h2SweepEvery, sweepH2Workers)
		}
		ws.mu.Unlock()
		var ok bool
		if j, ok = <-w.jobs; !ok {
			return
		}
	}
}

// sweepH2Workers ends the workers idle since before the last sweep, and
// comes again while any is idle.
func sweepH2Workers() {
	ws := &h2Workers
	ws.mu.Lock()
	defer ws.mu.Unlock()
	// The oldest idle workers are at the bottom of the stack.
	n := 0
	for n < len(ws.idle) && ws.idle[n].gen < ws.gen {
		close(ws.idle[n].jobs)
		n++
	}
	ws.idle = append(ws.idle[:0], ws.idle[n:]...)
	clear(ws.idle[len(ws.idle):cap(ws.idle)])
	ws.gen++
	if len(ws.idle) == 0 {
		ws.sweeping = false
		return
	}
	time.AfterFunc(h2SweepEvery, sweepH2Workers)
}
