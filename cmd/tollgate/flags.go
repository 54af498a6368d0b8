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
	f.StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	f.StringVar(&g.logFormat, "log-format", "console", "log format: console or json")
	f.DurationVar(&g.heartbeatInterval, "heartbeat-interval", agent.DefaultHeartbeatInterval, "how often agent and edge check that the connection is alive")
	f.DurationVar(&g.heartbeatTolerance, "heartbeat-tolerance", agent.DefaultHeartbeatTolerance, "how long past a missed heartbeat the connection counts as dead and the agent reconnects")
}

// settings returns the values given as flags; unset flags are nil.
func (g *globalFlags) settings() config.AgentSettings {
	get := func(name, v string) *string {
		if g.cmd.PersistentFlags().Changed(name) {
			return &v
		}
		return nil
	}
	var ha *int
	if g.cmd.PersistentFlags().Changed("ha-connections") {
		ha = &g.haConnections
	}
	return config.AgentSettings{
		HAConnections: ha,
		Authtoken:     get("authtoken", g.authtoken),
		ServerAddr:    get("server-addr", g.serverAddr),
		RootCA:        get("root-ca", g.rootCA),
		Transport:     get("transport", g.transport),
		Region:        get("region", g.region),
		WebAddr:       get("web-addr", g.webAddr),
	}
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

// logger builds the logger from --log-level and --log-format, writing to
// w (stderr).
func (g *globalFlags) logger(w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(g.logLevel)
	if err != nil {
		return nil, codes.NewError(codes.ConfigInvalid, "Unknown log level %q: use debug, info, warn or error.", g.logLevel)
	}
	var enc zapcore.Encoder
	switch g.logFormat {
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		ec.CallerKey, ec.StacktraceKey = "", ""
		enc = zapcore.NewConsoleEncoder(ec)
	case "json":
		enc = zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	default:
		return nil, codes.NewError(codes.ConfigInvalid, "Unknown log format %q: use console or json.", g.logFormat)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}
