package admin

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wharflb/wharf/lb"
)

// DiscoveryStats is what /metrics reports of a discovery source.
type DiscoveryStats interface {
	EventsApplied() uint64 // engine events handled
	Resyncs() uint64       // complete relistings (start and every reconnection)
	Connected() bool       // the events stream is up
}

// Sources are the counters /metrics reads besides the balancer's.
type Sources struct {
	NoRoute   func() uint64 // requests that matched no service
	Shortage  func() uint64 // requests refused for wharf's own lack of descriptors or memory
	Reclaimed func() uint64 // idle client connections closed to make room under --max-conns
	// RetryBuffered is the memory request bodies kept for replay hold,
	// RetryBufferExhausted how many were streamed for want of it.
	RetryBuffered        func() int64
	RetryBufferExhausted func() uint64
	Discovery            DiscoveryStats // nil without Docker
	// SwarmPolls counts the reads of the Swarm tasks; nil when Swarm
	// services are not a source, and the metric is then left out.
	SwarmPolls func() uint64
}

// EnableMetrics serves /metrics in the Prometheus text format. Every value
// is read from the counters the data path keeps anyway, at scrape time, so
// metrics cost requests nothing.
func (s *Server) EnableMetrics(src Sources) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(&collector{bal: s.bal, src: src, srv: s})
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

var (
	peerLabels = []string{"service", "container", "address"}

	descRequests = prometheus.NewDesc("wharf_requests_total",
		"Requests answered, by service and status class of the answer the client got (wharf's own 502/503 included; \"none\": the client went away).",
		[]string{"service", "code"}, nil)
	descDuration = prometheus.NewDesc("wharf_request_duration_seconds",
		"Time from a request's arrival to the end of its answer's head, all attempts included.",
		[]string{"service"}, nil)
	descRetries = prometheus.NewDesc("wharf_retries_total",
		"Attempts made on another peer after a failed one.", []string{"service"}, nil)
	descNoPeer = prometheus.NewDesc("wharf_no_peer_total",
		"Requests answered 503 because no peer of the service was available.", []string{"service"}, nil)
	descNoRoute = prometheus.NewDesc("wharf_no_route_total",
		"Requests answered 404 because no service matched.", nil, nil)
	descShortage = prometheus.NewDesc("wharf_shortage_total",
		"Requests answered 503 because wharf had no file descriptor or memory to reach a peer; not counted against the peer.", nil, nil)
	descReclaimed = prometheus.NewDesc("wharf_connections_reclaimed_total",
		"Idle client connections closed to make room for new ones at --max-conns.", nil, nil)
	descRetryBuffered = prometheus.NewDesc("wharf_retry_buffer_bytes",
		"Memory held by request bodies kept for replay on retry, against --retry-buffer-budget.", nil, nil)
	descRetryExhausted = prometheus.NewDesc("wharf_retry_buffer_exhausted_total",
		"Request bodies streamed without a retry because --retry-buffer-budget was spent.", nil, nil)
	descPeers = prometheus.NewDesc("wharf_peers",
		"Peers by service and state.", []string{"service", "state"}, nil)

	descPeerAttempts = prometheus.NewDesc("wharf_peer_attempts_total",
		"Attempts sent to a peer, by status class of its answer (\"none\": no answer: connection error or timeout).",
		append(append([]string{}, peerLabels...), "code"), nil)
	descPeerFailures = prometheus.NewDesc("wharf_peer_failures_total",
		"Failed attempts that counted against the peer's max_fails.", peerLabels, nil)
	descPeerInFlight = prometheus.NewDesc("wharf_peer_in_flight",
		"Requests currently forwarded to the peer.", peerLabels, nil)
	descPeerDuration = prometheus.NewDesc("wharf_peer_attempt_duration_seconds",
		"Time from sending an attempt to the peer to the end of its answer.", peerLabels, nil)
	descPeerWeight = prometheus.NewDesc("wharf_peer_weight",
		"The peer's configured weight.", peerLabels, nil)
	descPeerUp = prometheus.NewDesc("wharf_peer_available",
		"1 while passive health lets the peer take requests, 0 while it is down.", peerLabels, nil)

	descEvents = prometheus.NewDesc("wharf_discovery_events_total",
		"Docker Engine events handled by discovery.", nil, nil)
	descResyncs = prometheus.NewDesc("wharf_discovery_resyncs_total",
		"Complete relistings of the engine's containers (at start and after each reconnection).", nil, nil)
	descEngineUp = prometheus.NewDesc("wharf_engine_connected",
		"1 while the Docker Engine's events stream is connected.", nil, nil)
	descSwarmPolls = prometheus.NewDesc("wharf_swarm_polls_total",
		"Reads of the Swarm tasks of the labelled services (GET /tasks), the load discovery puts on the manager.", nil, nil)
)

var classNames = [6]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

type collector struct {
	bal *lb.Balancer
	src Sources
	srv *Server // its certificates, set by ShowCertificates
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descRetries, descNoPeer, descNoRoute, descShortage, descReclaimed, descRetryBuffered, descRetryExhausted, descPeers,
		descPeerAttempts, descPeerFailures, descPeerInFlight, descPeerDuration, descPeerWeight, descPeerUp,
		descEvents, descResyncs, descEngineUp, descSwarmPolls, descCertExpiry} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	now := c.bal.Now()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	histogram := func(d *prometheus.Desc, h *lb.Histogram, labels ...string) {
		cum, count, sum := h.Snapshot()
		buckets := make(map[float64]uint64, len(cum))
		for i, b := range lb.LatencyBuckets() {
			buckets[b] = cum[i]
		}
		ch <- prometheus.MustNewConstHistogram(d, count, sum, buckets, labels...)
	}
	for _, p := range c.bal.Table().Pools() {
		svc := p.Name()
		st := p.Stats()
		for i, name := range classNames {
			counter(descRequests, st.Responses[i].Load(), svc, name)
		}
		histogram(descDuration, &st.Latency, svc)
		counter(descRetries, st.Retries.Load(), svc)
		counter(descNoPeer, st.NoPeer.Load(), svc)
		states := map[string]int{"ready": 0, "down": 0}
		for _, pe := range p.Peers() {
			l := []string{svc, pe.Name, pe.Addr}
			ans := pe.Answers()
			for i, name := range classNames {
				counter(descPeerAttempts, ans[i].Load(), append(l, name)...)
			}
			counter(descPeerFailures, pe.Failures(), l...)
			gauge(descPeerInFlight, float64(pe.InFlight()), l...)
			histogram(descPeerDuration, pe.Latency(), l...)
			gauge(descPeerWeight, float64(pe.Weight), l...)
			up := 0.0
			if pe.Available(now) {
				up = 1
			}
			gauge(descPeerUp, up, l...)
			states[pe.State(now)]++
		}
		for state, n := range states {
			gauge(descPeers, float64(n), svc, state)
		}
	}
	if c.src.NoRoute != nil {
		counter(descNoRoute, c.src.NoRoute())
	}
	if c.src.Shortage != nil {
		counter(descShortage, c.src.Shortage())
	}
	if c.src.Reclaimed != nil {
		counter(descReclaimed, c.src.Reclaimed())
	}
	if c.src.RetryBuffered != nil {
		gauge(descRetryBuffered, float64(c.src.RetryBuffered()))
	}
	if c.src.RetryBufferExhausted != nil {
		counter(descRetryExhausted, c.src.RetryBufferExhausted())
	}
	if d := c.src.Discovery; d != nil {
		counter(descEvents, d.EventsApplied())
		counter(descResyncs, d.Resyncs())
		gauge(descEngineUp, boolFloat(d.Connected()))
	}
	if c.src.SwarmPolls != nil {
		counter(descSwarmPolls, c.src.SwarmPolls())
	}
	collectCertificates(ch, c.srv.certs)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var _ http.Handler = (*Server)(nil)
