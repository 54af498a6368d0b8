package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/edge/trafficship"
	"github.com/tollgate/tollgate/traffic"
)

// trafficOptions are an edge's traffic-event flags (tollgated dev and
// edge; docs/events.md#traffic-events).
type trafficOptions struct {
	buffer      int
	bufferBytes int64
	cfg         trafficship.Config
	// pollDefault, when set before register, is --traffic-poll-interval's
	// default instead of trafficship.DefaultPollInterval.
	pollDefault time.Duration
}

// devTrafficPoll is --traffic-poll-interval's default in tollgated dev,
// where asking is a function call into the control plane in the same
// process: a subscription created there reaches the edge within it plus
// the control plane's 2 s cache, instead of within 10 s.
const devTrafficPoll = time.Second

func (o *trafficOptions) register(f *pflag.FlagSet) {
	poll := trafficship.DefaultPollInterval
	if o.pollDefault > 0 {
		poll = o.pollDefault
	}
	f.IntVar(&o.buffer, "traffic-buffer", trafficship.DefaultMaxRecords, "traffic records (for http_request_complete.v0 and tcp_connection_closed.v0 events) held for the control plane; past it records are dropped and counted (tollgate_edge_traffic_records_dropped_total), never waited for")
	f.Int64Var(&o.bufferBytes, "traffic-buffer-bytes", trafficship.DefaultMaxBytes, "bytes of traffic records held for the control plane (as encoded for sending); past it records are dropped and counted")
	f.DurationVar(&o.cfg.FlushInterval, "traffic-flush-interval", trafficship.DefaultFlushInterval, "how often buffered traffic records are sent to the control plane")
	f.DurationVar(&o.cfg.PollInterval, "traffic-poll-interval", poll, "how often an edge with no traffic records to send asks which accounts subscribe to traffic events")
}

// trafficShipper is a running trafficship.Shipper.
type trafficShipper struct {
	*trafficship.Shipper
	cancel context.CancelFunc
	done   chan struct{}
}

// start validates the flags and starts a shipper that sends with post.
func (o *trafficOptions) start(edgeID string, post trafficship.PostFunc, log *zap.Logger) (*trafficShipper, error) {
	if o.buffer < 1 || o.buffer > 10_000_000 || o.bufferBytes < 1<<10 || o.cfg.FlushInterval <= 0 || o.cfg.PollInterval <= 0 {
		return nil, codes.NewError(codes.ConfigInvalid, "--traffic-buffer must be 1 to 10000000 records, --traffic-buffer-bytes at least 1024, --traffic-flush-interval and --traffic-poll-interval positive.")
	}
	cfg := o.cfg
	cfg.EdgeID, cfg.MaxRecords, cfg.MaxBytes, cfg.Logger = edgeID, o.buffer, o.bufferBytes, log
	ctx, cancel := context.WithCancel(context.Background())
	t := &trafficShipper{Shipper: trafficship.New(cfg, post), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		_ = t.Run(ctx)
	}()
	return t, nil
}

// stop ends the shipper; records still buffered are not sent.
func (t *trafficShipper) stop() {
	t.cancel()
	<-t.done
}

// trafficSinks returns the edge's traffic sink that hands each record to
// every non-nil sink of ss, in order; nil when there is none.
func trafficSinks(ss ...edge.TrafficSink) edge.TrafficSink {
	var out multiSink
	for _, s := range ss {
		if s != nil {
			out = append(out, s)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

type multiSink []edge.TrafficSink

func (m multiSink) Record(r traffic.Record) {
	for _, s := range m {
		s.Record(r)
	}
}

// collectors of the shipper.
func (t *trafficShipper) collectors() []prometheus.Collector {
	return []prometheus.Collector{t.Shipper}
}
