package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tollgate/tollgate/codes"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// start builds the process logger (newLogger), warns when running as root
// (warnIfRoot) and, with --debug-addr, starts the profiler listener. stop
// flushes the logger and closes the profiler listener.
func (o *logOptions) start() (log *zap.Logger, stop func(), err error) {
	log, err = newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return nil, nil, err
	}
	warnIfRoot(log)
	if o.debugAddr == "" {
		return log, func() { _ = log.Sync() }, nil
	}
	ln, err := net.Listen("tcp", o.debugAddr)
	if err != nil {
		return nil, nil, codes.NewError(codes.ListenFailed, "Cannot listen for the profiler on %s: %v. Free the port or choose another --debug-addr.", o.debugAddr, err).WithCause(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiler listening", zap.String("debug_addr", ln.Addr().String()))
	return log, func() {
		_ = log.Sync()
		_ = srv.Close()
	}, nil
}

// withSignals adapts run to a cobra RunE: run's context ends on SIGINT or
// SIGTERM, and it writes to the command's stdout.
func withSignals(run func(ctx context.Context, stdout io.Writer) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return run(ctx, cmd.OutOrStdout())
	}
}

// newLogger builds the process logger: level debug|info|warn|error, format
// console|json, to stderr.
func newLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, codes.NewError(codes.ConfigInvalid, "--log-level %q: use debug, info, warn or error", level)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	default:
		return nil, codes.NewError(codes.ConfigInvalid, "--log-format %q: use console or json", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), lvl)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(os.Stderr))), nil
}

// warnIfRoot logs a warning when the process runs as root: nothing in
// Tollgate needs it (every default port is unprivileged).
func warnIfRoot(log *zap.Logger) {
	if os.Geteuid() == 0 {
		log.Warn(fmt.Sprintf("running as root is not needed: default ports are unprivileged; run %s as an ordinary user", os.Args[0]))
	}
}
