package controlclient

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// feedState is what the snapshot feed did, for metrics.
type feedState struct {
	down    atomic.Bool  // the feed has not answered yet, or the last call failed
	since   atomic.Int64 // Unix ns: the last answer, or the start before the first
	errors  atomic.Int64 // failed feed calls
	applied atomic.Int64 // snapshots handed to the edge
}

func (f *feedState) failed() {
	f.errors.Add(1)
	f.down.Store(true)
}

func (f *feedState) answered() {
	f.applied.Add(1)
	f.since.Store(time.Now().UnixNano())
	f.down.Store(false)
}

// lag is how far the edge may be behind the control plane: 0 while the
// feed answers (a long poll that waits is current: the control plane
// answers as soon as there is news); before the first answer and once a
// call failed, the time since the feed last answered (or since the Sync
// started, if it never did).
func (f *feedState) lag(now time.Time) time.Duration {
	if !f.down.Load() {
		return 0
	}
	return now.Sub(time.Unix(0, f.since.Load()))
}

var (
	descFeedUp = prometheus.NewDesc("tollgate_edge_snapshot_feed_up",
		"1 while the control plane's snapshot feed answers, 0 before its first answer and since a call failed (the edge serves from its cached snapshot).", nil, nil)
	descFeedLag = prometheus.NewDesc("tollgate_edge_snapshot_lag_seconds",
		"How far the edge's snapshot may be behind the control plane: 0 while the feed answers, else the time since it last answered.", nil, nil)
	descFeedErrors = prometheus.NewDesc("tollgate_edge_snapshot_feed_errors_total",
		"Snapshot feed calls that failed (each is retried with backoff).", nil, nil)
	descFeedApplied = prometheus.NewDesc("tollgate_edge_snapshots_received_total",
		"Snapshots (whole or by delta) received from the feed and handed to the edge.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Sync) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFeedUp
	ch <- descFeedLag
	ch <- descFeedErrors
	ch <- descFeedApplied
}

// Collect implements prometheus.Collector: the snapshot feed's state.
func (s *Sync) Collect(ch chan<- prometheus.Metric) {
	up := 1.0
	if s.feed.down.Load() {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descFeedUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descFeedLag, prometheus.GaugeValue, s.feed.lag(time.Now()).Seconds())
	ch <- prometheus.MustNewConstMetric(descFeedErrors, prometheus.CounterValue, float64(s.feed.errors.Load()))
	ch <- prometheus.MustNewConstMetric(descFeedApplied, prometheus.CounterValue, float64(s.feed.applied.Load()))
}
