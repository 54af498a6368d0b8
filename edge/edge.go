package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// Config configures an Edge. Zero values take the documented defaults.
type Config struct {
	// Region is this edge's region code. Default "us".
	Region string
	// EdgeID is this edge's ID (edge_…, kept in its data dir), as the
	// control plane knows it. Default "edge_" + Region (tollgated dev).
	EdgeID string
	// BaseDomain is the domain whose one-label subdomains agents may bind
	// without a reservation, e.g. "tollgate.localhost". Required.
	BaseDomain string
	// DataDir holds the persisted snapshot, the bind-token key and the QUIC
	// stateless-reset key. "" keeps nothing on disk (tests).
	DataDir string
	// RegionSecret is a secret every edge of the region shares (tollgated
	// edge gives the edge secret). Bind tokens are signed with a key
	// derived from it, so that a token one edge issued lets the agent take
	// its name back through any edge of the region. Secret: never logged.
	// "" keeps a random per-edge key in DataDir (tollgated dev).
	RegionSecret string
	// AgentAddr is the agent ingress address: TLS+muxado on TCP and QUIC on
	// UDP, same port. Default "127.0.0.1:4443".
	AgentAddr string
	// DisableQUIC turns off the QUIC agent listener (agents then use TLS
	// over TCP only).
	DisableQUIC bool
	// AdvertiseAgentAddr is the agent address told to agents; "" = the bound
	// AgentAddr.
	AdvertiseAgentAddr string
	// HTTPSAddr is the public HTTPS listener. Default "127.0.0.1:8443".
	HTTPSAddr string
	// HTTPAddr is the public plain-HTTP listener, which redirects to HTTPS.
	// Default "127.0.0.1:8880"; "off" disables it.
	HTTPAddr string
	// PublicHTTPSPort is the port in public URLs; 0 = the bound HTTPSAddr
	// port. 443 is left out of URLs.
	PublicHTTPSPort int
	// DefaultMinTLS is the minimum TLS version of endpoints that ask for
	// none: "1.0".."1.3". Default "1.2".
	DefaultMinTLS string
	// MinTLSFloor is the lowest minimum TLS version an endpoint may ask
	// for. Default "1.2".
	MinTLSFloor string
	// MinHeartbeatInterval is the smallest heartbeat interval and tolerance
	// agents may ask for. Default 1s.
	MinHeartbeatInterval time.Duration
	// HandshakeTimeout bounds a public TLS handshake. Default 10s.
	HandshakeTimeout time.Duration
	// TCPHost is the host name in the tcp:// URLs of TCP endpoints; it is
	// also the host part of reserved addresses this edge serves. Default
	// "localhost".
	TCPHost string
	// TCPPorts is the range random TCP endpoint ports come from, "LO-HI".
	// Default "20000-29999".
	TCPPorts string
	// TCPListenIP is the IP TCP endpoint listeners bind. Default: the host
	// of HTTPSAddr ("" there = every interface).
	TCPListenIP string
	// Guard caps public connections and throttles failed logins
	// (guard.go).
	Guard GuardConfig
	// Peer configures the edge-to-edge link over which sibling edges of
	// the region forward public connections (peer.go). Zero = off.
	Peer PeerConfig
	// MemoryLimit is the memory the process may use, in bytes; the caller
	// sets the Go runtime's soft limit to it (debug.SetMemoryLimit). While
	// the live heap is above 80% of it the edge refuses new public
	// connections and agent sessions (TG_2741), and admits again below
	// 70% (memguard.go). 0 turns the guard off (default).
	MemoryLimit int64
	// HTTP2MaxConcurrentStreams bounds concurrent HTTP/2 streams per
	// public client connection. Default 100
	// (httpproxy.DefaultMaxConcurrentStreams).
	HTTP2MaxConcurrentStreams uint32
	// Version is the edge's version string, told to agents.
	Version string
	// Logger receives structured logs. Default: no logs.
	Logger *zap.Logger
}

// CertSource supplies certificates for public names (certmagic in
// production, a local CA in dev).
type CertSource interface {
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// EdgeDirectory lists the live edges of every region, so that agents learn
// where each region is (Auth's ConnectAddresses). Optional.
type EdgeDirectory interface {
	Edges() []snapshot.EdgeInfo
}

// Deps are the Edge's collaborators. AgentTLS and Certs are required.
// Snapshots arrive through ApplySnapshot (edge/controlclient follows the
// control plane's feed and calls it).
type Deps struct {
	AgentTLS *tls.Config // certificate agents verify; MinVersion raised to TLS 1.2
	Certs    CertSource
	// Directory lists every region's edges; nil lists only this edge.
	Directory EdgeDirectory
	// Leases arbitrates names across the edges of the region (the
	// control plane; leases.go); nil = this edge decides alone.
	Leases RouteLeases
	// Routes replaces the route table the edge reads to forward a public
	// connection for a route only siblings hold (with Config.Peer.Secret);
	// nil = the edge's own RouteTable, from its snapshot (tests set it).
	Routes RouteDirectory
	// Traffic receives a record of every finished public request and
	// TCP/TLS connection (the access log); nil = none are made.
	Traffic TrafficSink
}

// Addrs are the addresses an Edge listens on, after Listen.
type Addrs struct {
	Agent string // TCP and UDP
	HTTPS string
	HTTP  string // "" when disabled
	Peer  string // edge-to-edge listener; "" when off
}

type counters struct {
	authFailures  atomic.Int64
	sessions      atomic.Int64
	agentIPClosed atomic.Int64 // live sessions closed by a new agent IP restriction
	// pool members taken out of rotation: their agent did not answer (poolhealth.go)
	poolMembersDown atomic.Int64
}

// Edge is one regional edge. Create it with New, bind its listeners with
// Listen, run it with Serve, stop it with Shutdown; snapshots arrive
// through ApplySnapshot (edge/controlclient). Its methods are safe for
// concurrent use.
type Edge struct {
	cfg  Config
	deps Deps
	log  *zap.Logger

	snap    *snapshotHolder
	gates   *ipGates      // IP restrictions, endpoint IP policies, basic auth
	guard   *guard        // connection caps and failure throttles
	binds   *binder       // bind validation, TCP ports, bind tokens
	public  *publicServer // public HTTPS and TCP clients
	router  *router       // route key → endpoint
	tokens  *bindTokens   // shared with binds
	routes  *RouteTable   // the region's route table (routes.go)
	leases  *leases       // this edge's holders in it (leases.go)
	tcp     *tcpListeners // shared with binds
	proxy   *httpproxy.Proxy
	mem     *memGuard // refuses new work while memory is short (memguard.go)
	peers   *peering  // edge-to-edge link; nil = off (peer.go)
	metrics counters
	prom    *Metrics // Prometheus collector and traffic counters (metrics.go)

	agentLn net.Listener
	quicLn  *tunnel.QUICListener
	httpsLn net.Listener
	httpLn  net.Listener
	httpSrv *httpRedirector

	sessions *sessionSet   // live agent and attached sessions (sessions.go)
	stopping chan struct{} // closed when Shutdown begins
	stopped  chan struct{} // closed when Shutdown has drained
	stopOnce sync.Once
}

// New validates cfg and deps and returns an Edge. It opens nothing.
func New(cfg Config, deps Deps) (*Edge, error) {
	if cfg.BaseDomain == "" {
		return nil, errors.New("edge: BaseDomain is required")
	}
	base, err := policy.NormalizeHostname(strings.TrimSpace(cfg.BaseDomain))
	if err != nil {
		return nil, fmt.Errorf("edge: base domain %q: %w", cfg.BaseDomain, err)
	}
	cfg.BaseDomain = base
	if deps.AgentTLS == nil || deps.Certs == nil {
		return nil, errors.New("edge: AgentTLS and Certs are required")
	}
	if cfg.Region == "" {
		cfg.Region = string(regions.Default)
	}
	if _, err := regions.Parse(cfg.Region); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	setDefault(&cfg.EdgeID, "edge_"+cfg.Region)
	setDefault(&cfg.AgentAddr, "127.0.0.1:4443")
	setDefault(&cfg.HTTPSAddr, "127.0.0.1:8443")
	setDefault(&cfg.HTTPAddr, "127.0.0.1:8880")
	setDefault(&cfg.DefaultMinTLS, "1.2")
	setDefault(&cfg.MinTLSFloor, "1.2")
	if cfg.MinHeartbeatInterval == 0 {
		cfg.MinHeartbeatInterval = time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.MemoryLimit < 0 {
		return nil, errors.New("edge: MemoryLimit must not be negative")
	}
	setDefault(&cfg.TCPPorts, "20000-29999")
	tcpRange, err := parsePortRange(cfg.TCPPorts)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	setDefault(&cfg.TCPHost, "localhost")
	tcpHost, err := policy.NormalizeHostname(strings.TrimSpace(cfg.TCPHost))
	if err != nil {
		return nil, fmt.Errorf("edge: TCP host %q: %w", cfg.TCPHost, err)
	}
	if cfg.TCPListenIP == "" {
		cfg.TCPListenIP, _, _ = net.SplitHostPort(cfg.HTTPSAddr)
	}
	floor, err := policy.ParseTLSVersion(cfg.MinTLSFloor)
	if err != nil {
		return nil, fmt.Errorf("edge: MinTLSFloor: %w", err)
	}
	def, err := policy.MinTLSVersion(cfg.DefaultMinTLS, 0, floor)
	if err != nil {
		return nil, fmt.Errorf("edge: DefaultMinTLS: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("region", cfg.Region))
	tokens, err := loadBindTokens(cfg.DataDir, cfg.RegionSecret)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	// TCPServerTLSConfig offers our agents' ALPN, which selects large muxado
	// windows; SDK agents offer none and keep muxado's default window.
	agentTLS := tunnel.TCPServerTLSConfig(deps.AgentTLS.Clone())
	if agentTLS.MinVersion < tls.VersionTLS12 {
		agentTLS.MinVersion = tls.VersionTLS12
	}
	deps.AgentTLS = agentTLS
	e := &Edge{
		cfg:      cfg,
		deps:     deps,
		log:      log,
		snap:     newSnapshotHolder(cfg.DataDir, log),
		router:   newRouter(),
		tokens:   tokens,
		sessions: newSessionSet(),
		stopping: make(chan struct{}),
		stopped:  make(chan struct{}),
		mem:      newMemGuard(cfg.MemoryLimit, log),
	}
	e.prom = newMetrics(e, deps.Traffic)
	e.routes = NewRouteTable(cfg.Region, cfg.EdgeID, e.snap.Load, deps.Directory)
	e.leases = newLeases(deps.Leases, cfg.EdgeID, cfg.Region, e.routes, log)
	e.gates = newIPGates(e.snap, log)
	if e.guard, err = newGuard(cfg.Guard, log); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	e.gates.guard = e.guard
	e.public = &publicServer{
		log:              log,
		snap:             e.snap,
		router:           e.router,
		gates:            e.gates,
		guard:            e.guard,
		mem:              e.mem,
		certs:            deps.Certs,
		handshakeTimeout: cfg.HandshakeTimeout,
		defaultMinTLS:    def,
		floorMinTLS:      floor,
		raw:              newRawConns(),
		stats:            e.prom,
	}
	if e.public.tls, err = newPublicTLS(markCertErrors(deps.Certs.GetCertificate)); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	e.proxy, err = httpproxy.New(httpproxy.Config{Logger: log, MaxConcurrentStreams: cfg.HTTP2MaxConcurrentStreams,
		Overload: e.mem.refuseRequest, OnRequest: e.prom.onRequest}, e.public)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	e.public.proxy = e.proxy
	if e.peers, err = newPeering(e, cfg.Peer, deps.Routes); err != nil {
		return nil, err
	}
	e.public.fwd = e.peers.forwarder()
	e.binds = &binder{
		region:        cfg.Region,
		baseDomain:    cfg.BaseDomain,
		defaultMinTLS: def,
		floorMinTLS:   floor,
		snap:          e.snap,
		gates:         e.gates,
		tokens:        tokens,
		tcpRange:      tcpRange,
		tcpHost:       tcpHost,
		httpsPort:     e.httpsPort,
	}
	e.tcp = newTCPListeners(cfg.TCPListenIP, func(ln net.Listener, port int) { e.public.serveTCP(ln, e.binds.tcpKey(port)) })
	e.binds.tcp = e.tcp
	return e, nil
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// Listen binds every listener. A bind failure is a *codes.Error with code
// TG_9001 naming the address; nothing stays open after a failure.
func (e *Edge) Listen() (err error) {
	defer func() {
		if err != nil {
			e.closeListeners()
		}
	}()
	e.agentLn, err = listenTCP("agent", e.cfg.AgentAddr)
	if err != nil {
		return err
	}
	if !e.cfg.DisableQUIC {
		if err := e.listenQUIC(); err != nil {
			return err
		}
	}
	e.httpsLn, err = listenTCP("https", e.cfg.HTTPSAddr)
	if err != nil {
		return err
	}
	if e.cfg.HTTPAddr != "off" {
		e.httpLn, err = listenTCP("http", e.cfg.HTTPAddr)
		if err != nil {
			return err
		}
	}
	return e.peers.listen()
}

// listenQUIC binds UDP on the agent listener's port for QUIC agents.
func (e *Edge) listenQUIC() error {
	udpAddr := e.agentLn.Addr().String()
	pc, perr := net.ListenPacket("udp", udpAddr)
	if perr != nil {
		return codes.NewError(codes.ListenFailed, "Cannot listen for QUIC agents on UDP %s: %v. Free the port or choose another --agent-addr.", udpAddr, perr).WithCause(perr)
	}
	ln, err := tunnel.ListenQUIC(pc, e.deps.AgentTLS, tunnel.QUICListenerConfig{KeyDir: e.cfg.DataDir})
	if err != nil {
		pc.Close()
		return codes.NewError(codes.ListenFailed, "Cannot start the QUIC agent listener on %s: %v.", udpAddr, err).WithCause(err)
	}
	e.quicLn = ln
	return nil
}

func listenTCP(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, codes.NewError(codes.ListenFailed, "Cannot listen for %s on %s: %v. Free the port or choose another address.", what, addr, err).WithCause(err)
	}
	return ln, nil
}

func (e *Edge) closeListeners() {
	for _, ln := range []net.Listener{e.agentLn, e.httpsLn, e.httpLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if e.quicLn != nil {
		e.quicLn.Close()
	}
	if e.tcp != nil {
		e.tcp.closeAll()
	}
	e.peers.closeListener()
}

// Addressing is how an edge names its endpoints, as New normalised its
// Config.
type Addressing struct {
	Region     string // this edge's region code
	BaseDomain string // lower-case punycode
	TCPHost    string // the host of tcp:// URLs, lower-case punycode
}

// Addressing returns the edge's region, base domain and TCP host.
func (e *Edge) Addressing() Addressing {
	return Addressing{Region: e.cfg.Region, BaseDomain: e.cfg.BaseDomain, TCPHost: e.binds.tcpHost}
}

// Addrs returns the bound addresses. Call after Listen.
func (e *Edge) Addrs() Addrs {
	a := Addrs{Agent: e.agentLn.Addr().String(), HTTPS: e.httpsLn.Addr().String()}
	if e.httpLn != nil {
		a.HTTP = e.httpLn.Addr().String()
	}
	a.Peer = e.peers.boundAddr()
	return a
}

func (e *Edge) advertisedAgentAddr() string {
	if e.cfg.AdvertiseAgentAddr != "" {
		return e.cfg.AdvertiseAgentAddr
	}
	return e.agentLn.Addr().String()
}

// connectAddresses lists one agent address per region for Auth responses:
// this edge for its own region, and for each other region the first live
// edge the directory names.
func (e *Edge) connectAddresses() []tunnel.ConnectAddress {
	out := []tunnel.ConnectAddress{{Region: e.cfg.Region, ServerAddr: e.advertisedAgentAddr()}}
	if e.deps.Directory == nil {
		return out
	}
	seen := map[string]bool{e.cfg.Region: true}
	for _, ed := range e.deps.Directory.Edges() {
		if seen[ed.Region] || ed.AgentAddr == "" {
			continue
		}
		seen[ed.Region] = true
		out = append(out, tunnel.ConnectAddress{Region: ed.Region, ServerAddr: ed.AgentAddr})
	}
	return out
}

func (e *Edge) httpsPort() int {
	if e.cfg.PublicHTTPSPort != 0 {
		return e.cfg.PublicHTTPSPort
	}
	_, p, _ := net.SplitHostPort(e.httpsLn.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// Serve runs the edge until ctx ends or Shutdown has drained it. Ending
// ctx stops it at once: listeners, client connections and agent sessions
// close without a drain; call Shutdown for a graceful stop. It loads the
// persisted snapshot first, so it serves even when the control plane is
// down.
func (e *Edge) Serve(ctx context.Context) error {
	if e.agentLn == nil {
		return errors.New("edge: Serve before Listen")
	}
	if ok, err := e.snap.loadPersisted(); err != nil {
		e.log.Warn("ignoring the persisted snapshot", zap.Error(err))
	} else if ok {
		e.log.Info("serving from the persisted snapshot until the control plane answers", zap.Uint64("revision", e.snap.Load().Revision()))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer e.guard.close()
	e.prom.serving.Store(true)
	defer e.prom.serving.Store(false)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// Shutdown closes the listeners that take new work and drains;
		// connections and sessions keep gctx until it is done.
		select {
		case <-gctx.Done():
		case <-e.stopped:
		}
		cancel()
		e.closeListeners()
		return nil
	})
	g.Go(func() error { return e.acceptAgentsTCP(gctx) })
	if e.quicLn != nil {
		g.Go(func() error { return e.acceptAgentsQUIC(gctx) })
	}
	g.Go(func() error { return e.public.serveHTTPS(gctx, e.httpsLn) })
	g.Go(func() error { return e.public.tls.runTicketRotation(gctx, ticketKeyRotation, e.log) })
	g.Go(func() error { return e.mem.run(gctx) })
	g.Go(func() error { e.leases.run(gctx); return nil })
	g.Go(func() error { return e.peers.run(gctx) })
	if e.httpLn != nil {
		e.httpSrv = newHTTPRedirector(e)
		g.Go(func() error { return e.httpSrv.serve(e.httpLn) })
	}
	err := g.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
