package agent

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/regions"
)

// Transports the agent can use to reach the edge.
const (
	// TransportAuto tries AutoFirst, then the other transport if the first
	// has not authenticated after FallbackDelay (or failed sooner), and
	// keeps whichever authenticates first.
	TransportAuto = "auto"
	// TransportQUIC is QUIC over UDP.
	TransportQUIC = "quic"
	// TransportTCP is TLS over TCP with muxado.
	TransportTCP = "tcp"
)

// AutoFirst is the transport that TransportAuto tries first; the other one
// starts FallbackDelay later, or at once when AutoFirst fails.
//
// TCP comes first because it serves users better on the machines we
// measured (BenchmarkTunnelVsDirect, 2 cores, loopback): TLS+muxado carried
// 450–670 MiB/s on one stream against QUIC's 190–290 MiB/s, and 36–44% of
// direct HTTPS requests/s at 64 connections against QUIC's 28–32%;
// quic-go's user-space packetisation (a syscall per 1452-byte packet) costs
// the CPU-bound edge more per byte.
// QUIC stays the fallback for networks where TCP to the edge is blocked.
const AutoFirst = TransportTCP

// FallbackDelay is how long TransportAuto waits for AutoFirst to
// authenticate before it also tries the other transport.
const FallbackDelay = 2 * time.Second

// Defaults for Config fields left zero.
const (
	DefaultHeartbeatInterval  = 10 * time.Second
	DefaultHeartbeatTolerance = 15 * time.Second
	DefaultConnectTimeout     = 15 * time.Second
	DefaultVersion            = "0.1.0"
)

// Config configures an Agent. Zero values take the documented defaults.
type Config struct {
	// Authtoken authenticates the agent to the edge. Required. Secret:
	// never logged and never included in errors.
	Authtoken string
	// ServerAddr is the edge's agent address, HOST:PORT. Required. The TLS
	// ServerName is HOST.
	ServerAddr string
	// RootCAFile is a PEM file of CA certificates that sign the edge's
	// certificate. "" means the system roots. Ignored when RootCAs is set.
	RootCAFile string
	// RootCAs, when set, is the CA pool used to verify the edge.
	RootCAs *x509.CertPool
	// Transport is TransportAuto (default when ""), TransportQUIC or
	// TransportTCP.
	Transport string
	// Region is the region code to connect to ("" = whatever the edge at
	// ServerAddr serves). When the edge serves another region and lists a
	// connect address for this one, the agent reconnects there.
	Region string
	// WebAddr is the inspection API's listen address, HOST:PORT. "" or
	// "false" disables it (the CLI defaults to DefaultWebAddr).
	WebAddr string
	// Endpoints are bound after each successful Auth, in order. Names must
	// be unique.
	Endpoints []EndpointConfig
	// Metadata is opaque text the edge stores with the agent session.
	Metadata string
	// Version is the agent version sent to the edge and in the user agent
	// "tollgate/<Version>". Default DefaultVersion.
	Version string
	// HeartbeatInterval and HeartbeatTolerance are sent to the edge:
	// defaults DefaultHeartbeatInterval and DefaultHeartbeatTolerance.
	HeartbeatInterval, HeartbeatTolerance time.Duration
	// ConnectTimeout bounds one connection attempt (dial, TLS, Auth) and
	// each Bind. Default DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// OnEvent, if set, is called (synchronously, from the agent's
	// goroutines; keep it short) for the things a user should see: a
	// session established or lost, an endpoint stopped by the edge. nil
	// means no calls.
	OnEvent func(Event)
}

// resolved is a validated Config.
type resolved struct {
	Config
	endpoints []*endpointSpec
	transport string
	webAddr   string         // "" = disabled
	roots     *x509.CertPool // nil = system roots
	tlsCache  tls.ClientSessionCache
}

// parseTransport validates a Transport value; "" means auto.
func parseTransport(t string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(t)) {
	case "", TransportAuto:
		return TransportAuto, nil
	case TransportQUIC:
		return TransportQUIC, nil
	case TransportTCP:
		return TransportTCP, nil
	}
	return "", inputError("Unknown transport %q: use auto, quic or tcp.", t)
}

// validate checks c, applies defaults and loads the CA file. Errors are
// *codes.Error: TG_9002 for invalid values, TG_9003 for an unreadable or
// empty CA file, TG_4018 for a missing authtoken.
func (c Config) validate() (*resolved, error) {
	r := &resolved{Config: c}
	if c.Authtoken == "" {
		return nil, codes.NewError(codes.AuthtokenMissing,
			"No authtoken: run 'tollgate config add-authtoken TOKEN', pass --authtoken, or set %s.", EnvAuthtoken)
	}
	if strings.TrimSpace(c.ServerAddr) == "" {
		return nil, inputError("No edge address: pass --server-addr HOST:PORT, set %s, or set server_addr in the config file.", EnvServerAddr)
	}
	host, port, err := net.SplitHostPort(c.ServerAddr)
	if err != nil || host == "" || checkPort(port) != nil {
		return nil, inputError("The edge address %q is not HOST:PORT (for example edge.example.com:4443).", c.ServerAddr)
	}
	if r.transport, err = parseTransport(c.Transport); err != nil {
		return nil, err
	}
	if c.Region != "" {
		reg, err := regions.Parse(c.Region)
		if err != nil {
			return nil, inputError("%v.", err)
		}
		r.Region = string(reg)
	}
	if !isDisabledWebAddr(c.WebAddr) {
		w := strings.TrimSpace(c.WebAddr)
		if _, p, err := net.SplitHostPort(w); err != nil || (p != "0" && checkPort(p) != nil) {
			return nil, inputError("The web address %q is not HOST:PORT (for example 127.0.0.1:4040), or 'false' to disable it.", c.WebAddr)
		}
		r.webAddr = w
	}
	seen := make(map[string]bool, len(c.Endpoints))
	for _, ec := range c.Endpoints {
		spec, err := ec.validate()
		if err != nil {
			return nil, err
		}
		if seen[spec.name] {
			return nil, inputError("Two endpoints are named %q: names must be unique.", spec.name)
		}
		seen[spec.name] = true
		r.endpoints = append(r.endpoints, spec)
	}
	if r.Version == "" {
		r.Version = DefaultVersion
	}
	if r.HeartbeatInterval <= 0 {
		r.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if r.HeartbeatTolerance <= 0 {
		r.HeartbeatTolerance = DefaultHeartbeatTolerance
	}
	if r.ConnectTimeout <= 0 {
		r.ConnectTimeout = DefaultConnectTimeout
	}
	r.tlsCache = tls.NewLRUClientSessionCache(8)
	r.roots = c.RootCAs
	if r.roots == nil && c.RootCAFile != "" {
		if r.roots, err = LoadRootCAs(c.RootCAFile); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// LoadRootCAs reads a PEM file of CA certificates. Errors are a
// *codes.Error TG_9003 naming the file.
func LoadRootCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, codes.NewError(codes.CAUnreadable, "Cannot read the root CA file %s: %v.", path, unwrapPathError(err)).WithCause(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, codes.NewError(codes.CAUnreadable, "The root CA file %s holds no PEM certificate.", path)
	}
	return pool, nil
}

// edgeTLSConfig returns the TLS configuration for a connection to the
// edge at addr: ServerName from the address host, the configured roots (or
// the system pool), TLS 1.2 at least (reference/agent-protocol.md), and a
// session cache so reconnects resume.
func (r *resolved) edgeTLSConfig(addr string) *tls.Config {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return &tls.Config{
		ServerName:         host,
		RootCAs:            r.roots,
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: r.tlsCache,
	}
}

// isDisabledWebAddr reports whether a WebAddr value turns the API off.
func isDisabledWebAddr(s string) bool {
	s = strings.TrimSpace(s)
	return s == "" || s == "false"
}
