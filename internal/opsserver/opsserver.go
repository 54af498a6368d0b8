// Package opsserver serves the operator's listener of a Tollgate process
// (--metrics-addr): Prometheus metrics at /metrics, liveness at /healthz
// and readiness at /readyz (docs/observability.md).
//
// Invariants: /healthz answers 200 while the process serves HTTP at all;
// /readyz runs every check on each request, bounded by checkTimeout, and
// answers 503 naming each check that failed; the registry carries the Go
// runtime and process collectors.
package opsserver

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tollgate/tollgate/codes"
)

// Check is one readiness condition.
type Check struct {
	// Name says what is checked: "snapshot", "store".
	Name string
	// Ready returns nil when the condition holds, else what is missing. It
	// must return soon after ctx ends.
	Ready func(ctx context.Context) error
}

// checkTimeout bounds the readiness checks of one /readyz request.
const checkTimeout = 2 * time.Second

// NewRegistry returns a registry with the Go runtime and process
// collectors registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves /metrics from g, /healthz, and /readyz from checks (in
// order; all are run). Other paths are 404.
func Handler(g prometheus.Gatherer, checks ...Check) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		var failed []string
		for _, c := range checks {
			if err := c.Ready(ctx); err != nil {
				failed = append(failed, fmt.Sprintf("not ready: %s: %v", c.Name, err))
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(strings.Join(failed, "\n") + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// Server is a running operator listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds addr for h (flag names the flag in the error: a
// *codes.Error TG_9001). Serve it with Serve.
func Listen(addr, flag string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, codes.NewError(codes.ListenFailed, "Cannot listen for metrics and health checks on %s: %v. Free the port or choose another %s.", addr, err, flag).WithCause(err)
	}
	return &Server{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}}, nil
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Close; it returns nil then.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// Close stops the listener and closes open connections.
func (s *Server) Close() error { return s.srv.Close() }
