package events

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery metrics. The _total counters of this process count what its
// Deliverer did; the others are read from the store at each scrape and
// describe every destination, whichever replica delivers it.
var (
	descDelivered = prometheus.NewDesc("tollgate_events_delivered_total",
		"Events this process delivered to event destinations (acknowledged by the target).", nil, nil)
	descSendErrors = prometheus.NewDesc("tollgate_events_delivery_errors_total",
		"Batches this process failed to deliver (each is retried with backoff).", nil, nil)
	descDropped = prometheus.NewDesc("tollgate_events_dropped",
		"Events dropped undelivered after the retention (72 h), summed over every destination in the store.", nil, nil)
	descLag = prometheus.NewDesc("tollgate_events_delivery_lag_seconds",
		"Age of the oldest event not yet delivered, the largest over the destinations (0 when all are current).", nil, nil)
	descDestinations = prometheus.NewDesc("tollgate_events_destinations",
		"Event destinations in the store, by state: failing (the last attempt failed) or ok.", []string{"state"}, nil)
)

// maxLagQueries bounds the destinations whose lag one scrape reads (one
// query each).
const maxLagQueries = 100

// Describe implements prometheus.Collector.
func (d *Deliverer) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDelivered
	ch <- descSendErrors
	ch <- descDropped
	ch <- descLag
	ch <- descDestinations
	ch <- descTrafficWritten
	ch <- descTrafficDropped
}

// Collect implements prometheus.Collector. It reads the store: one query
// for the destinations, and one per destination (at most maxLagQueries)
// for its lag, within 2 s in all.
func (d *Deliverer) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(d.delivered.Load()))
	ch <- prometheus.MustNewConstMetric(descSendErrors, prometheus.CounterValue, float64(d.sendErrors.Load()))
	ch <- prometheus.MustNewConstMetric(descTrafficWritten, prometheus.CounterValue, float64(d.trafficWritten.Load()))
	ch <- prometheus.MustNewConstMetric(descTrafficDropped, prometheus.CounterValue, float64(d.trafficDropped.Load()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	dels, err := d.st.EventDeliveries(ctx)
	if err != nil {
		return
	}
	var dropped int64
	var failing, ok int
	var lag float64
	for i := range dels {
		del := &dels[i]
		dropped += del.Dropped
		if del.Failures > 0 {
			failing++
		} else {
			ok++
		}
		if i >= maxLagQueries {
			continue
		}
		if _, oldest, err := d.st.PendingEvents(ctx, del); err == nil && !oldest.IsZero() {
			lag = max(lag, time.Since(oldest).Seconds())
		}
	}
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.GaugeValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, lag)
	ch <- prometheus.MustNewConstMetric(descDestinations, prometheus.GaugeValue, float64(failing), "failing")
	ch <- prometheus.MustNewConstMetric(descDestinations, prometheus.GaugeValue, float64(ok), "ok")
}
