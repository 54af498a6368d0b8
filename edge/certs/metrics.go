package certs

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descCerts = prometheus.NewDesc("tollgate_edge_certificates",
		"Certificates the edge manages, by state: valid (held, last attempt succeeded) or failing (obtaining or renewing fails and is retried).",
		[]string{"state"}, nil)
	descExpiry = prometheus.NewDesc("tollgate_edge_certificate_earliest_expiry_timestamp_seconds",
		"Unix time at which the first of the held certificates expires; absent while none is held.", nil, nil)
	descObtained = prometheus.NewDesc("tollgate_edge_certificates_obtained_total",
		"Certificates obtained or renewed since start.", nil, nil)
	descFailures = prometheus.NewDesc("tollgate_edge_certificate_renewal_errors_total",
		"Attempts to obtain or renew a certificate that failed since start (certmagic retries them).", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCerts
	ch <- descExpiry
	ch <- descObtained
	ch <- descFailures
}

// Collect implements prometheus.Collector. Register the Manager only
// after Start returned: before, it has nothing to report.
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	s := m.status
	if s == nil {
		return
	}
	var valid, failing int
	var earliest time.Time
	s.mu.Lock()
	for _, t := range s.byName {
		switch {
		case t.JobErrorCode != "":
			failing++
		case !t.NotAfter.IsZero():
			valid++
		}
		if !t.NotAfter.IsZero() && (earliest.IsZero() || t.NotAfter.Before(earliest)) {
			earliest = t.NotAfter
		}
	}
	obtained, failed := s.obtained, s.failed
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descCerts, prometheus.GaugeValue, float64(valid), "valid")
	ch <- prometheus.MustNewConstMetric(descCerts, prometheus.GaugeValue, float64(failing), "failing")
	if !earliest.IsZero() {
		ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, float64(earliest.UnixNano())/1e9)
	}
	ch <- prometheus.MustNewConstMetric(descObtained, prometheus.CounterValue, float64(obtained))
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(failed))
}
