package lb

import (
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the latency
// histograms kept for every peer: fine at the low end, where a balancer's
// answers live, and up to a minute. An array, so that its length is a
// constant that sizes Histogram: adding a bucket here is the whole change.
var latencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// LatencyBuckets returns the upper bounds, in seconds, of the buckets of
// every Histogram, in the order of Snapshot's counts. The slice is a copy.
func LatencyBuckets() []float64 { return append([]float64(nil), latencyBuckets[:]...) }

// bucketNanos are latencyBuckets in nanoseconds, for Observe.
var bucketNanos = func() (b [len(latencyBuckets)]int64) {
	for i, s := range latencyBuckets {
		b[i] = int64(s * float64(time.Second))
	}
	return b
}()

// Histogram is a lock-free latency histogram. Its counts are not
// cumulative; Snapshot makes them so.
type Histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64 // the last is +Inf
	sumNs  atomic.Uint64
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	ns := int64(d)
	i := 0
	for i < len(bucketNanos) && ns > bucketNanos[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(max(ns, 0)))
}

// Snapshot returns the cumulative bucket counts (as Prometheus wants them),
// the total count and the sum in seconds.
func (h *Histogram) Snapshot() (cumulative []uint64, count uint64, sumSeconds float64) {
	cumulative = make([]uint64, len(latencyBuckets))
	var acc uint64
	for i := range latencyBuckets {
		acc += h.counts[i].Load()
		cumulative[i] = acc
	}
	count = acc + h.counts[len(latencyBuckets)].Load()
	return cumulative, count, float64(h.sumNs.Load()) / 1e9
}

// StatusClasses counts answers by class: index 1 to 5 for 1xx to 5xx, 0
// for attempts that got no answer at all.
type StatusClasses [6]atomic.Uint64

// Add counts one answer with status (0: none).
func (s *StatusClasses) Add(status int) {
	c := status / 100
	if c < 0 || c > 5 {
		c = 0
	}
	s[c].Add(1)
}

// ServiceStats are a service's counters; like a peer's runtime state they
// survive table updates.
type ServiceStats struct {
	Responses StatusClasses // what clients got, wharf's own 502/503 included
	Retries   atomic.Uint64 // attempts made after a failed one
	NoPeer    atomic.Uint64 // requests answered 503: no peer available
	Latency   Histogram     // whole request, all attempts
}

// Stats returns the service's counters.
func (p *Pool) Stats() *ServiceStats { return p.stats }

// Answered records one attempt's answer from the peer (status 0: none) and
// how long it took.
func (p *Peer) Answered(status int, d time.Duration) {
	p.state.answers.Add(status)
	if status != 0 {
		p.state.latency.Observe(d)
	}
}

// Answers are the peer's attempts by status class.
func (p *Peer) Answers() *StatusClasses { return &p.state.answers }

// Latency is the peer's histogram of attempt durations.
func (p *Peer) Latency() *Histogram { return &p.state.latency }
