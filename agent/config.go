package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/regions"
)

// AutoFirst is the transport that config.TransportAuto tries first; the
// other one starts FallbackDelay later, or at once when AutoFirst fails,
// and the agent keeps whichever authenticates first.
//
// TCP comes first because it serves users better on the machines we
// measured (BenchmarkTunnelVsDirect, 2 cores, loopback): TLS+muxado carried
// 450–670 MiB/s on one stream against QUIC's 190–290 MiB/s, and 36–44% of
// direct HTTPS requests/s at 64 connections against QUIC's 28–32%;
// quic-go's user-space packetisation (a syscall per 1452-byte packet) costs
// the CPU-bound edge more per byte.
// QUIC stays the fallback for networks where TCP to the edge is blocked.
const AutoFirst = config.TransportTCP

// FallbackDelay is how long config.TransportAuto waits for AutoFirst to
// authenticate before it also tries the other transport.
const FallbackDelay = 2 * time.Second

// Defaults for Config fields left zero.
const (
	DefaultHeartbeatInterval  = 10 * time.Second
	DefaultHeartbeatTolerance = 15 * time.Second
	DefaultConnectTimeout     = 15 * time.Second
	DefaultVersion            = "0.1.0"
	// DefaultWebAddrTries is Config.WebAddrTries for the default web
	// address: 4040 taken → 4041 … 4049.
	DefaultWebAddrTries = 9
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
	// Transport is config.TransportAuto (default when ""),
	// config.TransportQUIC or config.TransportTCP.
	Transport string
	// Region is the region code to connect to. When the edge at ServerAddr
	// serves another region and lists a connect address for this one, the
	// agent reconnects there. "" means the region whose edge answers
	// fastest among those the first edge lists (regions.Fastest), once per
	// Run.
	Region string
	// HAConnections is how many connections (legs) the agent keeps to
	// distinct edges of its region, 1 to config.MaxHAConnections; 0 means
	// config.DefaultHAConnections. Each leg is a session of its own that
	// binds every endpoint; public traffic arrives on any of them. The
	// agent keeps fewer while the region has fewer live edges, and one
	// when its edges do not list their region (docs/agent-protocol.md).
	HAConnections int
	// WebAddr is the inspection API's listen address, HOST:PORT. "" or
	// "false" disables it (the CLI defaults to config.DefaultWebAddr).
	WebAddr string
	// WebAddrTries is how many ports after WebAddr's the agent tries, one
	// by one, when WebAddr's port is taken (a second agent on 4040 moves
	// to 4041, …); 0 = none: a taken WebAddr is TG_9001. Apply sets
	// DefaultWebAddrTries when the address is the default one, 0 when the
	// user named it.
	WebAddrTries int
	// Inspect is the request inspector's setting (docs/inspect.md); the
	// zero value records every HTTP request with the default limits.
	Inspect InspectConfig
	// Endpoints are bound after each successful Auth, in order. Names must
	// be unique.
	Endpoints []config.Endpoint
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
	endpoints []*config.EndpointSpec
	transport string
	webAddr   string         // "" = disabled
	roots     *x509.CertPool // nil = system roots
	tlsCache  tls.ClientSessionCache
}

// validate checks c, applies defaults and loads the CA file. Errors are
// *codes.Error: TG_9002 for invalid values, TG_9003 for an unreadable or
// empty CA file, TG_9007 for an http:// URL, TG_4018 for a missing
// authtoken.
func (c Config) validate() (*resolved, error) {
	r := &resolved{Config: c}
	if c.Authtoken == "" {
		return nil, codes.NewError(codes.AuthtokenMissing,
			"No authtoken: run 'tollgate config add-authtoken TOKEN', pass --authtoken, or set %s.", config.EnvAuthtoken)
	}
	if err := config.CheckServerAddr(c.ServerAddr); err != nil {
		return nil, err
	}
	var err error
	if r.transport, err = config.ParseTransport(c.Transport); err != nil {
		return nil, err
	}
	if c.Region != "" {
		reg, err := regions.Parse(c.Region)
		if err != nil {
			return nil, inputError("%v.", err)
		}
		r.Region = string(reg)
	}
	if r.webAddr, err = config.ParseWebAddr(c.WebAddr); err != nil {
		return nil, err
	}
	if r.HAConnections == 0 {
		r.HAConnections = config.DefaultHAConnections
	}
	if err := config.CheckHAConnections(r.HAConnections); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(c.Endpoints))
	for _, ec := range c.Endpoints {
		spec, err := ec.Validate()
		if err != nil {
			return nil, err
		}
		if spec.BindProto == config.ProtoHTTP {
			return nil, plainHTTPError(spec)
		}
		if seen[spec.Name] {
			return nil, inputError("Two endpoints are named %q: names must be unique.", spec.Name)
		}
		seen[spec.Name] = true
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
		if r.roots, err = config.LoadRootCAs(c.RootCAFile); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// edgeTLSConfig returns the TLS configuration for a connection to the
// edge at addr: ServerName from the address host, the configured roots (or
// the system pool), TLS 1.2 at least (docs/agent-protocol.md), and a
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

// Apply copies the values s gives into c (as config.MergeAgentSettings
// merged them from flags, environment and config file). An absent WebAddr
// becomes config.DefaultWebAddr; an absent Transport stays "" (auto).
func (c *Config) Apply(s config.AgentSettings) {
	val := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	c.Authtoken = val(s.Authtoken)
	c.ServerAddr = val(s.ServerAddr)
	c.RootCAFile = val(s.RootCA)
	c.Transport = val(s.Transport)
	c.Region = val(s.Region)
	c.HAConnections = 0
	if s.HAConnections != nil {
		c.HAConnections = *s.HAConnections
	}
	c.WebAddr, c.WebAddrTries = config.DefaultWebAddr, DefaultWebAddrTries
	if s.WebAddr != nil {
		c.WebAddr, c.WebAddrTries = *s.WebAddr, 0
	}
}

// plainHTTPError refuses an http:// public URL with TG_9007: the edge
// serves HTTP endpoints over HTTPS only (its plain-HTTP listener redirects
// to HTTPS, docs/tls.md), so binding it would silently give an https://
// URL.
func plainHTTPError(spec *config.EndpointSpec) *codes.Error {
	name := ""
	if spec.Name != config.CommandLineEndpoint {
		name = fmt.Sprintf(" (endpoint %q)", spec.Name)
	}
	https := "https://" + strings.TrimPrefix(spec.URL, "http://")
	return codes.NewError(codes.PlainHTTPURL,
		"The URL %s%s asks for plain HTTP, but Tollgate edges serve HTTP endpoints over HTTPS only "+
			"(their plain-HTTP port redirects to HTTPS). Use --url %s; clients that ask for http:// are redirected there.",
		spec.URL, name, https)
}
