package controlplane

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Ready returns nil when the store answers a query (its revision) within
// ctx, else the store's error: the control plane's /readyz check.
func (cp *Core) Ready(ctx context.Context) error {
	_, err := cp.store.Revision(ctx)
	return err
}

// Collector returns the control plane's Prometheus collector: the store's
// revision and reachability, the live edges by region, and the requests
// the rate limits refused. It queries the store at each scrape (two small
// queries, bounded by collectTimeout).
func (cp *Core) Collector() prometheus.Collector { return coreCollector{cp} }

// collectTimeout bounds the store queries of one scrape.
const collectTimeout = 2 * time.Second

var (
	descCPRevision = prometheus.NewDesc("tollgate_control_snapshot_revision",
		"The store's revision: the revision of the newest snapshot edges can get (an edge's tollgate_edge_snapshot_revision catches up to it).", nil, nil)
	descCPStoreUp = prometheus.NewDesc("tollgate_control_store_up",
		"1 when the store answered the scrape's query, else 0.", nil, nil)
	descCPEdges = prometheus.NewDesc("tollgate_control_edges",
		"Edges that reported within three report intervals, by region.", []string{"region"}, nil)
	descCPRefusals = prometheus.NewDesc("tollgate_control_refusals_total",
		"API, dashboard and edge API requests this process refused, by reason: rate_limit (an account over its request rate), auth_throttle (failed API keys or invitation tokens from one address), edge_auth_throttle (failed edge secrets from one address), sign_in_throttle (dashboard password sign-ins refused per address or per target user).",
		[]string{"reason"}, nil)
)

type coreCollector struct{ cp *Core }

// Describe implements prometheus.Collector.
func (c coreCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCPRevision
	ch <- descCPStoreUp
	ch <- descCPEdges
	ch <- descCPRefusals
}

// Collect implements prometheus.Collector.
func (c coreCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	up := 0.0
	if rev, err := c.cp.store.Revision(ctx); err == nil {
		up = 1
		ch <- prometheus.MustNewConstMetric(descCPRevision, prometheus.GaugeValue, float64(rev))
	}
	ch <- prometheus.MustNewConstMetric(descCPStoreUp, prometheus.GaugeValue, up)
	if edges, err := c.cp.Registry().LiveEdges(ctx); err == nil {
		byRegion := map[string]int{}
		for _, e := range edges {
			byRegion[e.Region]++
		}
		for r, n := range byRegion {
			ch <- prometheus.MustNewConstMetric(descCPEdges, prometheus.GaugeValue, float64(n), r)
		}
	}
	user, edge := c.cp.AuthThrottled()
	for _, r := range []struct {
		reason string
		v      uint64
	}{{"rate_limit", c.cp.rateLimited()}, {"auth_throttle", user}, {"edge_auth_throttle", edge}, {"sign_in_throttle", c.cp.SignInThrottled()}} {
		ch <- prometheus.MustNewConstMetric(descCPRefusals, prometheus.CounterValue, float64(r.v), r.reason)
	}
}
