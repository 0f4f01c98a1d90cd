package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wharflb/wharf/acme"
	"github.com/wharflb/wharf/lb"
)

// Certificate is one host's certificate from the ACME CA, in /api/services
// and /api/events.
type Certificate struct {
	Host        string     `json:"host"`
	Issuer      string     `json:"issuer"`       // "" while there is none
	NotAfter    *time.Time `json:"not_after"`    // null while there is none
	LastAttempt *time.Time `json:"last_attempt"` // null before the first
	LastError   string     `json:"last_error"`   // "" once an attempt succeeded
}

// ShowCertificates adds the certificates list reports (automatic HTTPS) to
// /api/services, /api/events, the dashboard and /metrics. Call it before
// the server serves; list is called at each request and must be safe for
// concurrent use.
func (s *Server) ShowCertificates(list func() []acme.HostStatus) {
	s.certs = list
	s.events.certs = list
}

// certificates converts list's answer; nil when there is no list, so that
// the documents leave the field out without automatic HTTPS.
func certificates(list func() []acme.HostStatus) []Certificate {
	if list == nil {
		return nil
	}
	out := []Certificate{}
	for _, h := range list() {
		c := Certificate{Host: h.Host, Issuer: h.Issuer, LastError: h.LastError}
		if !h.NotAfter.IsZero() {
			c.NotAfter = &h.NotAfter
		}
		if !h.LastAttempt.IsZero() {
			c.LastAttempt = &h.LastAttempt
		}
		out = append(out, c)
	}
	return out
}

// document is what /api/services answers and /api/events sends.
func document(bal *lb.Balancer, certs func() []acme.HostStatus) map[string]any {
	doc := map[string]any{"services": Snapshot(bal)}
	if c := certificates(certs); c != nil {
		doc["certificates"] = c
	}
	return doc
}

var descCertExpiry = prometheus.NewDesc("wharf_certificate_expiry_seconds",
	"Expiry (Unix time) of the certificate served for a host, from the ACME CA.", []string{"host"}, nil)

// collectCertificates reports the expiry of each certificate there is.
func collectCertificates(ch chan<- prometheus.Metric, list func() []acme.HostStatus) {
	if list == nil {
		return
	}
	for _, h := range list() {
		if !h.NotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(h.NotAfter.Unix()), h.Host)
		}
	}
}
