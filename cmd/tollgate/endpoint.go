package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/tollgate/tollgate/agent"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/internal/opsserver"
	"github.com/tollgate/tollgate/tunnel"
)

// endpointFlags are the flags of `tollgate http|tcp|tls`.
type endpointFlags struct {
	url, minTLS, metadata string
	hsts                  string
	cidrAllow, cidrDeny   []string
	ipPolicyIDs           []string
	basicAuth             []string
	insecure, pooling     bool
	proxyProto            int
	crt, key              string
}

var endpointHelp = map[string]struct{ short, long, example, urlHelp string }{
	config.ProtoHTTP: {
		short: "Forward a public HTTPS URL to a local HTTP service",
		long: `Bind an HTTP endpoint at the edge and forward its requests to UPSTREAM.
UPSTREAM is a port (8080), HOST:PORT (192.168.1.10:3000), or a URL
(http://localhost:8080; https://localhost:8443 to reach the upstream over TLS).
Without --url the edge picks a name.`,
		example: `  tollgate http 8080
  tollgate http 8080 --url https://app.example.com
  tollgate http https://localhost:8443 --upstream-tls-insecure
  tollgate http 3000 --basic-auth alice:correct-horse --cidr-allow 203.0.113.0/24
  tollgate http 8080 --min-tls 1.3
  tollgate http 8080 --url https://app.example.com --hsts "max-age=31536000; includeSubDomains"`,
		urlHelp: "public URL to bind, e.g. https://app.example.com (default: the edge picks one)",
	},
	config.ProtoTCP: {
		short: "Forward a public TCP address to a local TCP service",
		long: `Bind a TCP endpoint at the edge and forward each connection to UPSTREAM,
a port (22) or HOST:PORT (db.internal:5432). Without --url the edge picks an
address; use --url tcp://HOST:PORT for a reserved one.`,
		example: `  tollgate tcp 22
  tollgate tcp 5432 --url tcp://1.tcp.example.com:20002 --cidr-allow 198.51.100.7
  tollgate tcp 25 --proxy-proto 2`,
		urlHelp: "public address to bind, tcp://HOST:PORT (default: the edge picks one)",
	},
	config.ProtoTLS: {
		short: "Forward a public TLS name to a local TLS service, unterminated",
		long: `Bind a TLS endpoint at the edge: the edge routes by SNI and passes the
client's TLS bytes unterminated to UPSTREAM, a port (443) or HOST:PORT, which
holds the certificate. With --crt and --key the edge terminates TLS with that
key pair instead and UPSTREAM receives the decrypted bytes.`,
		example: `  tollgate tls 443 --url tls://app.example.com
  tollgate tls 8443 --url tls://app.example.com --min-tls 1.3
  tollgate tls 6379 --url tls://cache.example.com --crt cache.pem --key cache-key.pem`,
		urlHelp: "public name to bind, tls://NAME (default: the edge picks one)",
	},
}

func newEndpointCmd(e *env, proto string) *cobra.Command {
	var f endpointFlags
	h := endpointHelp[proto]
	cmd := &cobra.Command{
		Use:     proto + " UPSTREAM",
		Short:   h.short,
		Long:    h.long,
		Example: h.example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ep := config.Endpoint{
				Name:                config.CommandLineEndpoint,
				Proto:               proto,
				URL:                 f.url,
				Upstream:            args[0],
				UpstreamTLSInsecure: f.insecure,
				MinTLS:              f.minTLS,
				HSTS:                f.hsts,
				CIDRAllow:           f.cidrAllow,
				CIDRDeny:            f.cidrDeny,
				IPPolicyIDs:         f.ipPolicyIDs,
				BasicAuth:           f.basicAuth,
				Metadata:            f.metadata,
				PoolingEnabled:      f.pooling,
				ProxyProto:          f.proxyProto,
				TerminateCert:       f.crt,
				TerminateKey:        f.key,
			}
			file, _, err := e.global.loadFile(e.getenv, false)
			if err != nil {
				return fail(err)
			}
			return runAgent(cmd.Context(), e, file, []config.Endpoint{ep})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", "", h.urlHelp)
	fl.StringArrayVar(&f.cidrAllow, "cidr-allow", nil, "only let clients from this CIDR or IP in (repeatable)")
	fl.StringArrayVar(&f.cidrDeny, "cidr-deny", nil, "refuse clients from this CIDR or IP (repeatable)")
	fl.StringArrayVar(&f.ipPolicyIDs, "ip-policy-id", nil, "also apply the rules of this IP policy of the account, ipp_... (repeatable)")
	fl.StringVar(&f.metadata, "metadata", "", "opaque text stored with the endpoint at the edge")
	fl.BoolVar(&f.pooling, "pooling-enabled", false, "share the URL with other agents of the account that also pass it: the edge balances requests across them")
	if proto != config.ProtoTCP {
		fl.StringVar(&f.minTLS, "min-tls", "", "minimum TLS version clients must use: 1.2 or 1.3 (default: the edge's)")
	}
	if proto != config.ProtoHTTP {
		fl.IntVar(&f.proxyProto, "proxy-proto", 0, "send a PROXY protocol header (1 or 2) to the upstream, so it sees the client's address")
	}
	if proto == config.ProtoTLS {
		fl.StringVar(&f.crt, "crt", "", "PEM certificate the edge terminates TLS with (with --key); the upstream then gets plain bytes")
		fl.StringVar(&f.key, "key", "", "PEM private key of --crt")
	}
	if proto == config.ProtoHTTP {
		fl.StringArrayVar(&f.basicAuth, "basic-auth", nil, "require HTTP basic auth USER:PASSWORD (repeatable)")
		fl.BoolVar(&f.insecure, "upstream-tls-insecure", false, "do not verify an https:// upstream's certificate")
		fl.StringVar(&f.hsts, "hsts", "", `Strict-Transport-Security the edge adds to HTTPS responses, "max-age=SECONDS[; includeSubDomains][; preload]" (default: the upstream's own)`)
	}
	return cmd
}

func newStartCmd(e *env) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "start [NAME...]",
		Short: "Start endpoints defined in the config file",
		Long: `Start the named endpoints (or every one with --all) from the 'endpoints:'
section of the config file, all over one agent session:

  version: 1
  authtoken: 2Xk9..._s3cr3t
  server_addr: edge.example.com:4443
  endpoints:
    web:
      proto: http
      url: https://app.example.com
      upstream: 8080
      basic_auth: ["alice:correct-horse"]
    ssh:
      proto: tcp
      upstream: 22
      cidr_allow: [203.0.113.0/24]`,
		Example: `  tollgate start web
  tollgate start web ssh
  tollgate start --all`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return &exitErr{code: exitUsage, err: codes.NewError(codes.ConfigInvalid, "Give endpoint names or --all, not both.")}
			}
			file, _, err := e.global.loadFile(e.getenv, true)
			if err != nil {
				return fail(err)
			}
			eps, err := file.SelectEndpoints(args, all)
			if err != nil {
				return fail(err)
			}
			return runAgent(cmd.Context(), e, file, eps)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "start every endpoint in the config file")
	return cmd
}

// runAgent builds the agent from flags, environment and file (in that
// order of precedence), runs it until a signal, Stop or a permanent error,
// and prints what the user needs to see.
func runAgent(ctx context.Context, e *env, file *config.AgentFile, eps []config.Endpoint) error {
	cfg, settings, err := agentConfig(e, file, eps)
	if err != nil {
		return fail(err)
	}
	log, err := newLogger(e.stderr, deref(settings.LogLevel), deref(settings.LogFormat))
	if err != nil {
		return fail(err)
	}
	defer func() { _ = log.Sync() }()

	p := &printer{inspect: !cfg.Inspect.Off, askedWeb: cfg.WebAddr, out: e.stdout, errOut: e.stderr, ha: cfg.HAConnections}
	if p.ha == 0 {
		p.ha = config.DefaultHAConnections
	}
	cfg.OnEvent = p.event
	a, err := agent.New(cfg, log)
	if err != nil {
		return fail(err)
	}
	if m := deref(settings.MetricsAddr); m != "" {
		ops, err := opsserver.Listen(m, "--metrics-addr (metrics_addr in the config file)", agent.OpsHandler(a))
		if err != nil {
			return fail(err)
		}
		defer ops.Close()
		go func() { _ = ops.Serve() }()
		p.metricsAddr = ops.Addr()
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
		p.ready(a)
	case err := <-done:
		return result(err)
	}
	return result(<-done)
}

// agentConfig merges flags, environment and file (in that order of
// precedence) into the agent's configuration; the merged settings also
// give the logger and the metrics listener. Errors are *codes.Error.
func agentConfig(e *env, file *config.AgentFile, eps []config.Endpoint) (agent.Config, config.AgentSettings, error) {
	settings := config.MergeAgentSettings(e.global.settings(), config.AgentSettingsFromEnv(e.getenv), file.Settings())
	cfg := agent.Config{Endpoints: eps, Version: version,
		HeartbeatInterval: deref(settings.HeartbeatInterval), HeartbeatTolerance: deref(settings.HeartbeatTolerance)}
	if n := settings.HAConnections; n != nil {
		if err := config.CheckHAConnections(*n); err != nil {
			return cfg, settings, err // 0 would read as the default
		}
	}
	cfg.Apply(settings)
	cfg.Inspect.Off = settings.Inspect != nil && !*settings.Inspect
	return cfg, settings, nil
}

// deref returns *p, or the zero value for nil.
func deref[T any](p *T) T {
	var v T
	if p != nil {
		v = *p
	}
	return v
}

func result(err error) error {
	if err == nil {
		return nil
	}
	return fail(err)
}

// printer writes the agent's user-facing lines.
type printer struct {
	out, errOut io.Writer
	mu          sync.Mutex // events arrive from the agent's goroutines
	lost        bool       // every session was lost; say when one is back
	shown       bool       // ready has printed
	ha          int        // HA connections asked for
	legLines    bool       // print a line per HA connection
	metricsAddr string     // --metrics-addr's bound address; "" when off
	inspect     bool       // requests are recorded: show the inspector's page
	askedWeb    string     // the web address asked for, to say when it moved
}

// ready prints the session and one Forwarding line per endpoint.
func (p *printer) ready(a *agent.Agent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := a.Status()
	fmt.Fprintf(p.out, "Session     %s (region %s, transport %s)\n", orDash(st.SessionID), orDash(st.Region), orDash(st.Transport))
	if w := a.WebAddr(); w != "" {
		moved := ""
		if w != p.askedWeb && !strings.HasSuffix(p.askedWeb, ":0") {
			moved = "  (" + p.askedWeb + " is taken)"
		}
		if p.inspect {
			fmt.Fprintf(p.out, "Inspect     http://%s/inspect%s\n", w, moved)
			moved = ""
		}
		fmt.Fprintf(p.out, "Web API     http://%s/api/tunnels%s\n", w, moved)
	}
	if p.metricsAddr != "" {
		fmt.Fprintf(p.out, "Metrics     http://%s/metrics\n", p.metricsAddr)
	}
	for _, ep := range a.Endpoints() {
		name := ""
		if ep.Name != config.CommandLineEndpoint {
			name = "  (" + ep.Name + ")"
		}
		fmt.Fprintf(p.out, "Forwarding  %s -> %s%s\n", ep.PublicURL, ep.Upstream, name)
	}
	// One line per HA connection, once the region lists more than one
	// edge (a single edge, as in `tollgated dev`, keeps one connection).
	p.legLines = p.ha > 1 && st.RegionEdges > 1
	if p.legLines {
		for _, l := range st.Legs {
			if l.State == agent.SessionOnline {
				p.connection(l.Number, l.EdgeID, l.ServerAddr, l.SessionID)
			}
		}
	}
	p.shown = true
}

// connection prints one line per HA connection that comes up; p.mu is
// held.
func (p *printer) connection(leg int, edgeID, addr, sessionID string) {
	fmt.Fprintf(p.out, "Connection  %d/%d to edge %s at %s (session %s)\n", leg+1, p.ha, orDash(edgeID), orDash(addr), orDash(sessionID))
}

// event prints stops and reconnects; the logger has the detail.
func (p *printer) event(ev agent.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Kind {
	case agent.EventEndpointStopped:
		msg := strings.TrimSpace(ev.Message)
		if ev.Code != "" {
			msg += " [" + ev.Code + "]"
		}
		fmt.Fprintf(p.errOut, "tollgate: the edge stopped endpoint %s: %s\n", ev.Endpoint, msg)
	case agent.EventDisconnected:
		// The logger warns with the cause and the delay.
		p.lost = p.lost || ev.Legs == 0
		if errors.Is(ev.Err, tunnel.ErrGoingAway) {
			// A draining edge: no warning follows, so say why here.
			fmt.Fprintf(p.errOut, "tollgate: %v; reconnecting now\n", ev.Err)
		}
	case agent.EventConnected:
		if p.lost {
			fmt.Fprintln(p.errOut, "tollgate: reconnected to the edge")
			p.lost = false
		}
		if p.shown && (p.legLines || ev.Leg > 0) {
			p.legLines = true
			p.connection(ev.Leg, ev.EdgeID, ev.ServerAddr, ev.SessionID)
		}
	case agent.EventStopRequested:
		fmt.Fprintln(p.errOut, "tollgate: the edge asked this agent to stop")
	case agent.EventRestartRequested:
		fmt.Fprintln(p.errOut, "tollgate: the edge asked this agent to restart; reconnecting")
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
