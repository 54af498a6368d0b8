package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tollgate/tollgate/agent"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/regions"
)

// globalFlags are the flags every command takes.
type globalFlags struct {
	authtoken, serverAddr, rootCA, transport, region, webAddr string
	configPath, logLevel, logFormat, metricsAddr              string
	heartbeatInterval, heartbeatTolerance                     time.Duration
	haConnections                                             int
	inspect                                                   bool
	cmd                                                       *cobra.Command
}

func (g *globalFlags) register(root *cobra.Command) {
	g.cmd = root
	f := root.PersistentFlags()
	f.StringVar(&g.authtoken, "authtoken", "", "authtoken for the edge (env TOLLGATE_AUTHTOKEN)")
	f.StringVar(&g.serverAddr, "server-addr", "", "edge agent address HOST:PORT (env TOLLGATE_SERVER_ADDR)")
	f.StringVar(&g.rootCA, "root-ca", "", "PEM file of CAs that sign the edge's certificate; default the system roots (env TOLLGATE_ROOT_CA)")
	f.StringVar(&g.transport, "transport", "", "transport to the edge: auto, quic or tcp (default auto)")
	f.StringVar(&g.region, "region", "", "region to connect to: "+regions.CodeList())
	f.IntVar(&g.haConnections, "ha-connections", config.DefaultHAConnections, fmt.Sprintf("connections to keep to distinct edges of the region, 1 to %d; fewer while the region has fewer edges", config.MaxHAConnections))
	f.StringVar(&g.webAddr, "web-addr", "", "address of the request inspector and local API, or false to disable (default "+config.DefaultWebAddr+"; when that port is taken, the next free one up to +9)")
	f.BoolVar(&g.inspect, "inspect", true, "record HTTP requests for the inspector at --web-addr (/inspect, /api/requests/http); --inspect=false turns recording off")
	f.StringVar(&g.metricsAddr, "metrics-addr", "", "serve Prometheus metrics (/metrics), /healthz and /readyz on a listener of their own, e.g. 127.0.0.1:9101 (the inspection API at --web-addr serves them too)")
	f.StringVar(&g.configPath, "config", "", "config file (default $TOLLGATE_CONFIG, $XDG_CONFIG_HOME/tollgate/tollgate.yml, ~/.config/tollgate/tollgate.yml)")
	f.StringVar(&g.logLevel, "log-level", config.DefaultLogLevel, "log level: debug, info, warn or error")
	f.StringVar(&g.logFormat, "log-format", config.DefaultLogFormat, "log format: console or json")
	f.DurationVar(&g.heartbeatInterval, "heartbeat-interval", agent.DefaultHeartbeatInterval, "how often agent and edge check that the connection is alive")
	f.DurationVar(&g.heartbeatTolerance, "heartbeat-tolerance", agent.DefaultHeartbeatTolerance, "how long past a missed heartbeat the connection counts as dead and the agent reconnects")
}

// settings returns the values given as flags; unset flags are nil.
func (g *globalFlags) settings() config.AgentSettings {
	changed := g.cmd.PersistentFlags().Changed
	return config.AgentSettings{
		HAConnections:      flagValue(changed, "ha-connections", g.haConnections),
		Authtoken:          flagValue(changed, "authtoken", g.authtoken),
		ServerAddr:         flagValue(changed, "server-addr", g.serverAddr),
		RootCA:             flagValue(changed, "root-ca", g.rootCA),
		Transport:          flagValue(changed, "transport", g.transport),
		Region:             flagValue(changed, "region", g.region),
		WebAddr:            flagValue(changed, "web-addr", g.webAddr),
		Inspect:            flagValue(changed, "inspect", g.inspect),
		MetricsAddr:        flagValue(changed, "metrics-addr", g.metricsAddr),
		LogLevel:           flagValue(changed, "log-level", g.logLevel),
		LogFormat:          flagValue(changed, "log-format", g.logFormat),
		HeartbeatInterval:  flagValue(changed, "heartbeat-interval", g.heartbeatInterval),
		HeartbeatTolerance: flagValue(changed, "heartbeat-tolerance", g.heartbeatTolerance),
	}
}

// flagValue returns &v when the flag name was given, else nil.
func flagValue[T any](changed func(string) bool, name string, v T) *T {
	if changed(name) {
		return &v
	}
	return nil
}

// filePath returns the config file path: --config, else the default.
func (g *globalFlags) filePath(getenv func(string) string) (string, error) {
	if g.configPath != "" {
		return g.configPath, nil
	}
	return config.DefaultAgentFilePath(getenv)
}

// loadFile loads the config file. A missing file is an empty one, unless
// required or named with --config.
func (g *globalFlags) loadFile(getenv func(string) string, required bool) (*config.AgentFile, string, error) {
	path, err := g.filePath(getenv)
	if err != nil {
		return nil, "", err
	}
	f, err := config.LoadAgentFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if required || g.configPath != "" {
			return nil, path, codes.NewError(codes.ConfigInvalid, "No config file at %s: create it, or name one with --config.", path)
		}
		return &config.AgentFile{}, path, nil
	}
	return f, path, err
}

// newLogger builds the logger from a log level and format (--log-level and
// --log-format, or the config file's log_level and log_format; "" means
// the default), writing to w (stderr). Errors are *codes.Error TG_9002.
func newLogger(w io.Writer, levelName, format string) (*zap.Logger, error) {
	if levelName == "" {
		levelName = config.DefaultLogLevel
	}
	if format == "" {
		format = config.DefaultLogFormat
	}
	if err := config.CheckLogLevel(levelName); err != nil {
		return nil, err
	}
	if err := config.CheckLogFormat(format); err != nil {
		return nil, err
	}
	level, err := zapcore.ParseLevel(levelName)
	if err != nil {
		return nil, codes.NewError(codes.ConfigInvalid, "Unknown log level %q: use debug, info, warn or error.", levelName)
	}
	var enc zapcore.Encoder
	switch format {
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		ec.CallerKey, ec.StacktraceKey = "", ""
		enc = zapcore.NewConsoleEncoder(ec)
	case "json":
		enc = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	default:
		return nil, codes.NewError(codes.ConfigInvalid, "Unknown log format %q: use console or json.", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}
