package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate/tollgate/config"
)

// newLogger builds the process logger: level debug|info|warn|error, format
// console|json, to stderr.
func newLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, config.NewError(config.CodeConfigInvalid, "--log-level %q: use debug, info, warn or error", level)
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
		return nil, config.NewError(config.CodeConfigInvalid, "--log-format %q: use console or json", format)
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
