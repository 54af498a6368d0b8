package main

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/events"
	"github.com/tollgate/tollgate/controlplane/store"
)

// eventsOptions are the event delivery flags of control and dev
// (docs/events.md#operating).
type eventsOptions struct {
	fileDir      string
	caFile       string
	pollInterval time.Duration
	minBackoff   time.Duration
	maxBackoff   time.Duration
	sendTimeout  time.Duration
	trafficCap   int
	egressAllow  []string
}

// register adds the flags; egressAllow is --events-egress-allow's default
// (loopback for dev, none for control).
func (o *eventsOptions) register(f *pflag.FlagSet, egressAllow []string) {
	f.StringVar(&o.fileDir, "events-file-dir", "", "directory where file event destinations write JSON lines (created 0700); default none: file destinations are refused")
	f.StringVar(&o.caFile, "events-ca-file", "", "PEM CA certificates that webhook and NATS TLS servers of event destinations may also chain to (default: the system's only)")
	f.DurationVar(&o.pollInterval, "events-poll-interval", time.Second, "how often to look for events that other control-plane processes committed")
	f.DurationVar(&o.minBackoff, "events-min-backoff", 500*time.Millisecond, "wait after a destination's first failed delivery; doubles per failure")
	f.DurationVar(&o.sendTimeout, "events-send-timeout", 10*time.Second, "longest time one batch may take to send; a destination's lease lasts four times this, so after a crash another process resumes its delivery within that")
	f.IntVar(&o.trafficCap, "events-traffic-cap", events.DefaultTrafficCap, "most traffic events of one account the event outbox holds; past it new ones are dropped and counted (tollgate_events_traffic_dropped_total)")
	f.DurationVar(&o.maxBackoff, "events-max-backoff", time.Minute, "longest wait between a failing destination's delivery attempts")
	f.StringSliceVar(&o.egressAllow, "events-egress-allow", egressAllow, "CIDR ranges of loopback, private, link-local or other non-public addresses that event destinations (webhook, NATS, AWS endpoints) may still connect to; by default deliveries reach public addresses only")
}

// deliverer validates the flags and returns the event Deliverer.
func (o *eventsOptions) deliverer(st *store.Store, baseURL string, log *zap.Logger) (*events.Deliverer, error) {
	cfg := events.Config{Logger: log, BaseURL: baseURL, PollInterval: o.pollInterval, MinBackoff: o.minBackoff, MaxBackoff: o.maxBackoff, SendTimeout: o.sendTimeout, TrafficCap: o.trafficCap}
	if o.trafficCap <= 0 || o.sendTimeout <= 0 || o.pollInterval <= 0 || o.minBackoff <= 0 || o.maxBackoff < o.minBackoff {
		return nil, codes.NewError(codes.ConfigInvalid, "--events-traffic-cap, --events-send-timeout, --events-poll-interval and --events-min-backoff must be positive, --events-max-backoff at least --events-min-backoff.")
	}
	allow, err := events.ParseEgressAllow(o.egressAllow)
	if err != nil {
		return nil, codes.NewError(codes.ConfigInvalid, "--events-egress-allow: %v", err)
	}
	cfg.EgressAllow = allow
	if o.fileDir != "" {
		dir, err := filepath.Abs(o.fileDir)
		if err == nil {
			err = os.MkdirAll(dir, 0o700)
		}
		if err != nil {
			return nil, codes.NewError(codes.ConfigInvalid, "--events-file-dir %s: %v", o.fileDir, err)
		}
		cfg.FileDir = dir
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, codes.NewError(codes.CAUnreadable, "--events-ca-file: %v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, codes.NewError(codes.CAUnreadable, "--events-ca-file %s holds no PEM certificate.", o.caFile)
		}
		cfg.RootCAs = pool
	}
	return events.New(cfg, st)
}
