package config

import (
	"net"
	"strings"
	"time"
)

// Environment variables the agent reads (flag > environment > config file).
const (
	EnvAuthtoken  = "TOLLGATE_AUTHTOKEN"
	EnvServerAddr = "TOLLGATE_SERVER_ADDR"
	EnvRootCA     = "TOLLGATE_ROOT_CA"
	// EnvConfig names the agent's config file (DefaultAgentFilePath).
	EnvConfig = "TOLLGATE_CONFIG"
	// EnvAPIKey and EnvAPIURL give `tollgate api` its API key and the
	// REST API's base URL.
	EnvAPIKey = "TOLLGATE_API_KEY"
	EnvAPIURL = "TOLLGATE_API_URL"
)

// DefaultWebAddr is the inspection API address when none is given.
const DefaultWebAddr = "127.0.0.1:4040"

// DefaultAPIURL is the control plane's REST API when neither --api-url,
// TOLLGATE_API_URL nor the config file's api_url names one: the address
// `tollgated dev` listens on by default.
const DefaultAPIURL = "http://127.0.0.1:4080"

// Transports the agent can use to reach the edge: the values of the
// config file's transport key and of --transport.
const (
	// TransportAuto lets the agent choose: it tries one transport first
	// (agent.AutoFirst), also tries the other when the first has not
	// authenticated soon enough or failed, and keeps whichever
	// authenticates first.
	TransportAuto = "auto"
	// TransportQUIC is QUIC over UDP.
	TransportQUIC = "quic"
	// TransportTCP is TLS over TCP with muxado.
	TransportTCP = "tcp"
)

// HA connections: how many connections the agent keeps to distinct edges
// of its region (--ha-connections, the config file's ha_connections).
const (
	// DefaultHAConnections is the count when none is given: two, so that
	// losing one edge never leaves the agent's endpoints unserved.
	DefaultHAConnections = 2
	// MaxHAConnections bounds the count: each connection is a session the
	// edges keep and a heartbeat the agent sends.
	MaxHAConnections = 8
)

// CheckHAConnections checks a count of HA connections: 1 to
// MaxHAConnections. Errors are *codes.Error TG_9002.
func CheckHAConnections(n int) error {
	if n < 1 || n > MaxHAConnections {
		return invalid("%d HA connections is not a count the agent keeps: use 1 to %d (default %d).", n, MaxHAConnections, DefaultHAConnections)
	}
	return nil
}

// AgentSettings are the agent-wide values that command-line flags,
// environment variables and the config file can each give. A nil field was
// not given at that layer; MergeAgentSettings picks the first layer that
// gives a value.
type AgentSettings struct {
	Authtoken  *string
	ServerAddr *string
	RootCA     *string
	Transport  *string
	Region     *string
	WebAddr    *string
	// HAConnections is the count of connections to distinct edges of the
	// region; nil means DefaultHAConnections.
	HAConnections *int
	// Inspect records HTTP requests for the request inspector; nil means
	// true.
	Inspect *bool
	// MetricsAddr is the metrics listener's HOST:PORT; nil or "" means
	// none.
	MetricsAddr *string
	// LogLevel and LogFormat: nil means DefaultLogLevel and
	// DefaultLogFormat.
	LogLevel, LogFormat *string
	// HeartbeatInterval and HeartbeatTolerance: nil means the agent's
	// defaults.
	HeartbeatInterval, HeartbeatTolerance *time.Duration
}

// AgentSettingsFromEnv returns the values given by TOLLGATE_AUTHTOKEN,
// TOLLGATE_SERVER_ADDR and TOLLGATE_ROOT_CA; an empty variable counts as
// not given. getenv is os.Getenv in production.
func AgentSettingsFromEnv(getenv func(string) string) AgentSettings {
	get := func(k string) *string {
		if v := getenv(k); v != "" {
			return &v
		}
		return nil
	}
	return AgentSettings{
		Authtoken:  get(EnvAuthtoken),
		ServerAddr: get(EnvServerAddr),
		RootCA:     get(EnvRootCA),
	}
}

// MergeAgentSettings returns, field by field, the value of the first layer
// that gives one: call it as MergeAgentSettings(flags, env, file).
func MergeAgentSettings(layers ...AgentSettings) AgentSettings {
	var out AgentSettings
	for _, l := range layers {
		pick(&out.Authtoken, l.Authtoken)
		pick(&out.ServerAddr, l.ServerAddr)
		pick(&out.RootCA, l.RootCA)
		pick(&out.Transport, l.Transport)
		pick(&out.Region, l.Region)
		pick(&out.WebAddr, l.WebAddr)
		pick(&out.HAConnections, l.HAConnections)
		pick(&out.Inspect, l.Inspect)
		pick(&out.MetricsAddr, l.MetricsAddr)
		pick(&out.LogLevel, l.LogLevel)
		pick(&out.LogFormat, l.LogFormat)
		pick(&out.HeartbeatInterval, l.HeartbeatInterval)
		pick(&out.HeartbeatTolerance, l.HeartbeatTolerance)
	}
	return out
}

// pick sets *dst to v unless an earlier layer set it.
func pick[T any](dst **T, v *T) {
	if *dst == nil && v != nil {
		*dst = v
	}
}

// Logging: the values of --log-level and --log-format, and of the config
// file's log_level and log_format.
const (
	DefaultLogLevel  = "warn"
	DefaultLogFormat = "console"
)

// CheckLogLevel checks a log level: debug, info, warn or error. Errors are
// *codes.Error TG_9002.
func CheckLogLevel(l string) error {
	switch l {
	case "debug", "info", "warn", "error":
		return nil
	}
	return invalid("Unknown log level %q: use debug, info, warn or error.", l)
}

// CheckLogFormat checks a log format: console or json. Errors are
// *codes.Error TG_9002.
func CheckLogFormat(f string) error {
	switch f {
	case "console", "json":
		return nil
	}
	return invalid("Unknown log format %q: use console or json.", f)
}

// CheckListenAddr checks a listen address: HOST:PORT (the host may be
// empty, meaning every address), where port 0 picks a free port. Errors
// are *codes.Error TG_9002.
func CheckListenAddr(addr string) error {
	if _, p, err := net.SplitHostPort(addr); err != nil || (p != "0" && checkPort(p) != nil) {
		return invalid("The address %q is not HOST:PORT (for example 127.0.0.1:9101).", addr)
	}
	return nil
}

// ParseTransport validates a transport value, ignoring case and
// surrounding space, and returns TransportAuto, TransportQUIC or
// TransportTCP; "" means TransportAuto. Errors are *codes.Error TG_9002.
func ParseTransport(t string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(t)) {
	case "", TransportAuto:
		return TransportAuto, nil
	case TransportQUIC:
		return TransportQUIC, nil
	case TransportTCP:
		return TransportTCP, nil
	}
	return "", invalid("Unknown transport %q: use auto, quic or tcp.", t)
}

// CheckServerAddr checks the edge's agent address: HOST:PORT with a
// non-empty host and a port from 1 to 65535. Errors are *codes.Error
// TG_9002 that say where to set it.
func CheckServerAddr(addr string) error {
	if strings.TrimSpace(addr) == "" {
		return invalid("No edge address: pass --server-addr HOST:PORT, set %s, or set server_addr in the config file.", EnvServerAddr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || checkPort(port) != nil {
		return invalid("The edge address %q is not HOST:PORT (for example edge.example.com:4443).", addr)
	}
	return nil
}

// ParseWebAddr validates the inspection API's listen address and returns
// it without surrounding space: HOST:PORT, where port 0 picks a free port.
// "" and "false" turn the API off and return "". Errors are *codes.Error
// TG_9002.
func ParseWebAddr(s string) (string, error) {
	w := strings.TrimSpace(s)
	if w == "" || w == "false" {
		return "", nil
	}
	if CheckListenAddr(w) != nil {
		return "", invalid("The web address %q is not HOST:PORT (for example 127.0.0.1:4040), or 'false' to disable it.", s)
	}
	return w, nil
}
