package main

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/edge/limits"
	"github.com/tollgate/tollgate/edge/sshserver"
	"github.com/tollgate/tollgate/policy"
)

// edgeListenOptions are the flags of an edge's listeners and public TLS
// policy, shared by `tollgated dev` and `tollgated edge`.
type edgeListenOptions struct {
	agentAddr  string
	agentQUIC  bool
	httpsAddr  string
	httpAddr   string
	sshAddr    string
	sshAlive   time.Duration
	tcpHost    string
	tcpPorts   string
	baseDomain string
	minTLS     string
	minFloor   string
	guard      edge.GuardConfig

	memoryLimit string // --memory-limit; memoryLimit() parses it
	h2Streams   uint32
	accessLog   accessLogOptions
	traffic     trafficOptions
}

// register adds the flags to f; sshDefault is --ssh-addr's default ("" =
// SSH ingress off unless asked for).
func (o *edgeListenOptions) register(f *pflag.FlagSet, sshDefault string) {
	f.StringVar(&o.agentAddr, "agent-addr", "127.0.0.1:4443", "agent ingress address (TLS on TCP and QUIC on UDP, same port)")
	f.BoolVar(&o.agentQUIC, "agent-quic", true, "accept agents over QUIC (UDP) as well as TLS over TCP")
	f.StringVar(&o.httpsAddr, "https-addr", "127.0.0.1:8443", "public HTTPS listen address")
	f.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8880", `public HTTP listen address, which redirects to HTTPS ("off" disables it)`)
	f.StringVar(&o.sshAddr, "ssh-addr", sshDefault, `SSH ingress address for "ssh -R" reverse tunnels ("" disables it)`)
	f.DurationVar(&o.sshAlive, "ssh-keepalive", 15*time.Second, "how often SSH clients must answer a keepalive; one unanswered for another interval closes the connection")
	f.StringVar(&o.tcpHost, "tcp-host", "localhost", "host name in the tcp:// URLs of TCP endpoints (and of reserved addresses in this region)")
	f.StringVar(&o.tcpPorts, "tcp-ports", "20000-29999", "port range random TCP endpoints get, LO-HI")
	f.StringVar(&o.baseDomain, "base-domain", "tollgate.localhost", "domain whose subdomains agents may bind (*.localhost resolves to loopback)")
	f.StringVar(&o.minTLS, "min-tls", "1.2", "default minimum TLS version of public endpoints (1.0 to 1.3, not below --min-tls-floor)")
	f.StringVar(&o.minFloor, "min-tls-floor", "1.2", "lowest minimum TLS version an endpoint or reserved domain may ask for (1.0 to 1.3)")
	f.IntVar(&o.guard.MaxConns, "max-conns", limits.DefaultMaxConns, "most public connections (HTTPS, HTTP, TCP endpoints) held at once; past it new ones are reset (-1 = no cap)")
	f.IntVar(&o.guard.MaxConnsPerIP, "max-conns-per-ip", limits.DefaultMaxConnsPerIP, "most public connections held at once by one client address, an IPv6 client by its --client-ipv6-prefix (-1 = no cap)")
	f.IntVar(&o.guard.IPv6Prefix, "client-ipv6-prefix", limits.DefaultIPv6Prefix, "prefix length an IPv6 client is counted by for connection caps and login throttles (1 to 64)")
	f.Int64Var(&o.guard.MaxAddresses, "max-tracked-addrs", limits.DefaultTableEntries, "most client addresses whose failed logins the edge remembers (a bounded cache)")

	f.StringVar(&o.memoryLimit, "memory-limit", "0", "memory the process may use, e.g. 1536MiB (sets Go's soft limit, as GOMEMLIMIT); while the live heap is above 80% of it the edge refuses new connections and agent sessions (TG_2741) until it is below 70%; 0 = off, or GOMEMLIMIT when set")
	f.Uint32Var(&o.h2Streams, "http2-max-concurrent-streams", 100, "concurrent HTTP/2 streams a public client connection may have open")
	o.accessLog.register(f)
	o.traffic.register(f)
}

// check validates the flags that edge.New would refuse with its own field
// names, so that the error names the flag instead.
func (o *edgeListenOptions) check() error {
	lo, hi, _ := strings.Cut(o.tcpPorts, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return codes.NewError(codes.ConfigInvalid, "--tcp-ports %q: give the range as LO-HI with 1 <= LO <= HI <= 65535, e.g. 20000-29999.", o.tcpPorts)
	}
	floor, err := tlsVersionFlag("--min-tls-floor", o.minFloor)
	if err != nil {
		return err
	}
	def, err := tlsVersionFlag("--min-tls", o.minTLS)
	if err != nil {
		return err
	}
	if def < floor {
		return codes.NewError(codes.ConfigInvalid, "--min-tls %s is below --min-tls-floor %s: raise --min-tls, or lower --min-tls-floor to %s to let endpoints ask for it.", o.minTLS, o.minFloor, o.minTLS)
	}
	return nil
}

// tlsVersionFlag parses a TLS version flag; "" is the edge's default, 1.2.
func tlsVersionFlag(flag, v string) (uint16, error) {
	n, err := policy.ParseTLSVersion(v)
	if err != nil {
		return 0, codes.NewError(codes.ConfigInvalid, "%s %q: use 1.0, 1.1, 1.2 or 1.3.", flag, v)
	}
	if n == 0 {
		n = tls.VersionTLS12
	}
	return n, nil
}

// edgeConfig is the edge.Config these flags describe, for region with its
// state in dataDir. It sets the runtime's memory limit (memoryLimit).
func (o *edgeListenOptions) edgeConfig(region, dataDir string, log *zap.Logger) (edge.Config, error) {
	memLimit, err := memoryLimit(o.memoryLimit)
	if err != nil {
		return edge.Config{}, err
	}
	return edge.Config{
		MemoryLimit:               memLimit,
		Region:                    region,
		BaseDomain:                o.baseDomain,
		DataDir:                   dataDir,
		AgentAddr:                 o.agentAddr,
		DisableQUIC:               !o.agentQUIC,
		HTTPSAddr:                 o.httpsAddr,
		HTTPAddr:                  o.httpAddr,
		TCPHost:                   o.tcpHost,
		TCPPorts:                  o.tcpPorts,
		DefaultMinTLS:             o.minTLS,
		MinTLSFloor:               o.minFloor,
		Guard:                     o.guard,
		HTTP2MaxConcurrentStreams: o.h2Streams,
		Version:                   version,
		Logger:                    log.Named("edge"),
	}, nil
}

// sshIngress returns the SSH server these flags ask for, serving through
// e with its host key in dataDir, and its listener; nil, nil when
// --ssh-addr is "".
func (o *edgeListenOptions) sshIngress(e *edge.Edge, dataDir string, log *zap.Logger) (*sshserver.Server, net.Listener, error) {
	if o.sshAddr == "" {
		return nil, nil, nil
	}
	key, err := sshserver.LoadHostKey(dataDir)
	if err != nil {
		return nil, nil, codes.NewError(codes.ConfigInvalid, "edge: %v", err)
	}
	srv, err := sshserver.New(sshserver.Config{HostKey: key, KeepaliveInterval: o.sshAlive, Logger: log.Named("edge"), Throttle: e.SSHLoginThrottle()}, e)
	if err != nil {
		return nil, nil, codes.NewError(codes.ConfigInvalid, "%v", err)
	}
	ln, err := sshserver.Listen(o.sshAddr)
	if err != nil {
		return nil, nil, err
	}
	return srv, ln, nil
}

// logOptions are the logging, profiler and metrics flags of every
// tollgated command.
type logOptions struct {
	logLevel, logFormat string
	debugAddr           string
	opsOptions
}

func (o *logOptions) register(f *pflag.FlagSet) {
	o.opsOptions.register(f)
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "console", "log format: console or json")
	f.StringVar(&o.debugAddr, "debug-addr", "", "serve Go's profiler (/debug/pprof/) on this address for performance work; keep it on loopback (default off)")
}
