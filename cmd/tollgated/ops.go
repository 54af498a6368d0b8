package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/edge/accesslog"
	"github.com/tollgate/tollgate/internal/opsserver"
)

// opsOptions is --metrics-addr, shared by every tollgated command.
type opsOptions struct {
	metricsAddr string
}

func (o *opsOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.metricsAddr, "metrics-addr", "", `serve Prometheus metrics (/metrics), liveness (/healthz) and readiness (/readyz) on this address, e.g. 127.0.0.1:9100 (default off)`)
}

// serve starts the operator listener with the collectors and readiness
// checks given, when --metrics-addr is set; addr is its bound address
// ("" when off) and stop closes it.
func (o *opsOptions) serve(log *zap.Logger, cs []prometheus.Collector, checks ...opsserver.Check) (addr string, stop func(), err error) {
	if o.metricsAddr == "" {
		return "", func() {}, nil
	}
	reg := opsserver.NewRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return "", nil, codes.NewError(codes.ConfigInvalid, "metrics: %v", err).WithCause(err)
		}
	}
	srv, err := opsserver.Listen(o.metricsAddr, "--metrics-addr", opsserver.Handler(reg, checks...))
	if err != nil {
		return "", nil, err
	}
	go func() {
		if err := srv.Serve(); err != nil {
			log.Warn("metrics listener stopped", zap.Error(err))
		}
	}()
	log.Info("metrics and health checks listening", zap.String("metrics_addr", srv.Addr()))
	return srv.Addr(), func() { _ = srv.Close() }, nil
}

// accessLogOptions are an edge's access log flags (tollgated dev and
// edge).
type accessLogOptions struct {
	path   string
	buffer int
}

func (o *accessLogOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.path, "access-log", "", `write one JSON line per public request and TCP/TLS connection to this file (appended, created 0600), or to standard output with "-" (default off)`)
	f.IntVar(&o.buffer, "access-log-buffer", accesslog.DefaultBuffer, "access log records held for the writer; past it records are dropped and counted (tollgate_edge_access_log_records_dropped_total), never waited for")
}

// accessLog is a running access log.
type accessLog struct {
	*accesslog.Log
	file   *os.File // nil for standard output
	cancel context.CancelFunc
	done   chan struct{}
}

// open opens the access log the flags ask for and starts its writer; nil
// when --access-log is not set.
func (o *accessLogOptions) open(stdout io.Writer, log *zap.Logger) (*accessLog, error) {
	if o.path == "" {
		return nil, nil
	}
	a := &accessLog{done: make(chan struct{})}
	w := stdout
	if o.path != "-" {
		f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, codes.NewError(codes.ConfigInvalid, "--access-log %s: %v", o.path, err).WithCause(err)
		}
		a.file, w = f, f
	}
	l, err := accesslog.New(w, accesslog.Config{Buffer: o.buffer, Logger: log.Named("access_log")})
	if err != nil {
		if a.file != nil {
			a.file.Close()
		}
		return nil, codes.NewError(codes.ConfigInvalid, "--access-log-buffer %d: use 1 to 1048576 records", o.buffer)
	}
	a.Log = l
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		defer close(a.done)
		_ = l.Run(ctx)
	}()
	return a, nil
}

// close writes what is queued and closes the file. A writer blocked on
// its file (a pipe nobody reads) is given 2 s, then the file is closed
// under it.
func (a *accessLog) close() {
	if a == nil {
		return
	}
	a.cancel()
	select {
	case <-a.done:
	case <-time.After(2 * time.Second):
	}
	if a.file != nil {
		_ = a.file.Close()
		<-a.done
	}
}

// sink returns the access log as the edge's traffic sink; nil when off.
func (a *accessLog) sink() edge.TrafficSink {
	if a == nil {
		return nil
	}
	return a.Log
}

// collectors returns the access log's collector, if it is on.
func (a *accessLog) collectors() []prometheus.Collector {
	if a == nil {
		return nil
	}
	return []prometheus.Collector{a.Log}
}
