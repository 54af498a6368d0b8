package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/edge/limits"
	"github.com/tollgate/tollgate/tunnel"
)

// Any edge of a region serves any endpoint of the region
// (docs/regions-multi-edge.md):
//
//   - An edge that receives a public connection for a name or TCP address
//     it has no endpoint for asks the region's route table (RouteTable,
//     routes.go; RouteDirectory) which
//     sibling edges hold it, and forwards the raw connection to one of
//     them over the edge-to-edge link: the ClientHello (or the TCP
//     client's bytes) untouched, behind a small header naming the route
//     key, the listener and the client's address (peerframe.go).
//   - The sibling injects the connection into its own public path as if
//     it had accepted it from the client: its TLS handshake, minimum TLS
//     version, IP restrictions and endpoint IP policies on the client's
//     address, basic auth and its throttles, connection caps.
//   - A forwarded connection is never forwarded again. A sibling that no
//     longer holds the route answers so, and the forwarding edge tries the
//     next holder, then answers as it would have without forwarding (404
//     TG_3200 page over its own TLS, or a reset for TCP).
//   - The link is TLS 1.3 to the sibling's --peer-addr, authenticated both
//     ways by an HMAC over the TLS exporter keyed from the edge secret
//     (peerlink.go); one muxado session per sibling carries every
//     forwarded connection as a stream.
//   - Every edge listens on the ports of the TCP endpoints held anywhere in
//     its region (RouteDirectory.RemoteTCPKeys), following the route table.

// PeerConfig configures the edge-to-edge link. The zero value turns it
// off: the edge serves only the endpoints of its own agents.
type PeerConfig struct {
	// Secret authenticates the link both ways; every edge of the region
	// holds the same one (tollgated edge gives the control plane's edge
	// secret). "" = no forwarding and no listener. Never logged.
	Secret string
	// Addr is the edge-to-edge listener, HOST:PORT, where siblings forward
	// public connections; keep it on a private network. "" = none (this
	// edge still forwards to its siblings). Requires Secret.
	Addr string
}

// Link limits.
const (
	// peerAuthTimeout bounds a link's TLS handshake and authentication.
	peerAuthTimeout = 5 * time.Second
	// peerHeaderTimeout bounds reading a forwarded connection's header.
	peerHeaderTimeout = 10 * time.Second
	// peerStatusTimeout bounds the wait for a sibling's answer to a
	// forwarded connection; past it the link is taken for dead and
	// redialled on next use.
	peerStatusTimeout = 5 * time.Second
	// maxPeerHandshakes bounds links being authenticated at once; more
	// are closed at accept.
	maxPeerHandshakes = 64
	// maxPeerSessions bounds the authenticated links an edge accepts, and
	// those it dials.
	maxPeerSessions = 256
	// peerAcceptBacklog bounds forwarded connections a link's muxado
	// session holds before they are accepted.
	peerAcceptBacklog = 256
	// peerPingInterval is how often a dialled link proves the sibling
	// alive, and peerPingTimeout how long the echo may take before the
	// link is taken for dead (closed, redialled on next use): a sibling
	// that stops answering is noticed within their sum, not at the next
	// forwarded connection's peerStatusTimeout or TCP's keepalive.
	peerPingInterval = 2 * time.Second
	peerPingTimeout  = 3 * time.Second
	// peerFailMemory is how long a sibling whose link failed is offered
	// connections only after the other holders of a route.
	peerFailMemory = 10 * time.Second
	// remoteTCPSync is how often the listeners of the region's TCP
	// endpoints follow the route table.
	remoteTCPSync = 250 * time.Millisecond
)

// peerAuthPolicy is the failure budget of one address on the link: 5
// failed authentications, then one every 10 s.
var peerAuthPolicy = limits.Policy{Burst: 5, Every: 10 * time.Second}

// peerMetrics count the link's work; every reason exists from zero.
type peerMetrics struct {
	forwarded     atomic.Int64 // connections a sibling accepted from this edge
	notHere       atomic.Int64 // siblings that answered "no route here"
	refusedThere  atomic.Int64 // connections a sibling refused (caps, memory, drain)
	linkFailed    atomic.Int64 // forward attempts that found no working link
	unforwarded   atomic.Int64 // connections with holders that no sibling took
	received      atomic.Int64 // forwarded connections this edge served
	receivedNoHit atomic.Int64 // forwarded connections for a route this edge does not hold
	authFailed    atomic.Int64 // links refused: bad or missing authentication
	authThrottled atomic.Int64 // links closed at accept: the address is throttled
}

// peering is an edge's side of the edge-to-edge link: the listener and
// the sessions siblings opened to it, the links it dialled to them, the
// forwarding of public connections, and the listeners of the region's
// TCP endpoints. A nil *peering is off: every method is safe on it.
type peering struct {
	e        *Edge
	log      *zap.Logger
	routes   RouteDirectory
	key      []byte // link key derived from the secret (peerlink.go)
	addr     string
	ln       net.Listener
	cert     tls.Certificate // ephemeral, made at listen
	throttle *limits.Throttle
	links    *peerLinks
	metrics  peerMetrics
	dialFrom net.Addr // the source address of dialled links; nil = the system's choice (tests set it)

	handshakes chan struct{} // semaphore of links being authenticated
	inbound    atomic.Int64  // authenticated links accepted and alive

	rrMu sync.Mutex
	rr   map[string]uint32 // route key → the next holder to offer first (offerOrder)

	tcpMu       sync.Mutex
	remotePorts map[int]bool // ports held open for remote tcp routes
	failedPorts map[int]bool // ports that could not be opened (logged once)
}

// newPeering returns e's link, or nil when cfg turns it off.
func newPeering(e *Edge, cfg PeerConfig, routes RouteDirectory) (*peering, error) {
	if cfg.Secret == "" {
		if cfg.Addr != "" {
			return nil, errors.New("edge: the edge-to-edge listener (Peer.Addr) needs Peer.Secret")
		}
		return nil, nil
	}
	if len(cfg.Secret) < 16 {
		return nil, errors.New("edge: Peer.Secret is shorter than 16 characters")
	}
	th, err := limits.NewThrottle(e.guard.table, limits.ThrottleConfig{Name: "peer_auth", Policy: peerAuthPolicy,
		IPv6Prefix: e.cfg.Guard.IPv6Prefix, Now: e.cfg.Guard.Now})
	if err != nil {
		return nil, err
	}
	if routes == nil {
		routes = e.routes
	}
	p := &peering{
		e:           e,
		log:         e.log.Named("peer"),
		routes:      routes,
		key:         peerLinkKey(cfg.Secret),
		addr:        cfg.Addr,
		throttle:    th,
		handshakes:  make(chan struct{}, maxPeerHandshakes),
		remotePorts: map[int]bool{},
		failedPorts: map[int]bool{},
	}
	p.links = newPeerLinks(p)
	return p, nil
}

// forwarder returns p when it forwards public connections: it has a
// route directory.
func (p *peering) forwarder() *peering {
	if p == nil || p.routes == nil {
		return nil
	}
	return p
}

// listen binds the edge-to-edge listener, if one is configured.
func (p *peering) listen() error {
	if p == nil || p.addr == "" {
		return nil
	}
	cert, err := ephemeralPeerCert()
	if err != nil {
		return err
	}
	p.cert = cert
	p.ln, err = listenTCP("edge-to-edge links (--peer-addr)", p.addr)
	return err
}

// boundAddr returns the listener's address; "" when there is none.
func (p *peering) boundAddr() string {
	if p == nil || p.ln == nil {
		return ""
	}
	return p.ln.Addr().String()
}

// closeListener closes the listener; links already open stay until Serve
// ends.
func (p *peering) closeListener() {
	if p != nil && p.ln != nil {
		p.ln.Close()
	}
}

// run accepts siblings' links and keeps the region's TCP ports open until
// ctx ends; then it closes every link.
func (p *peering) run(ctx context.Context) error {
	if p == nil {
		return nil
	}
	defer p.links.closeAll()
	var wg sync.WaitGroup
	defer wg.Wait()
	if p.routes != nil {
		wg.Add(1)
		go p.followRemoteTCP(ctx, &wg)
	}
	if p.ln == nil {
		<-ctx.Done()
		return nil
	}
	return AcceptLoop(ctx, p.ln, func(c net.Conn) { p.serveLink(ctx, c) })
}

// serveLink authenticates a sibling's link and serves the connections it
// forwards until the link or ctx ends.
func (p *peering) serveLink(ctx context.Context, c net.Conn) {
	addr := PeerAddr(c.RemoteAddr()).Addr()
	if wait := p.throttle.Wait("", addr); wait > 0 {
		p.metrics.authThrottled.Add(1)
		refuse(c)
		return
	}
	select {
	case p.handshakes <- struct{}{}:
	default:
		refuse(c)
		return
	}
	tc, remoteID, err := p.acceptLink(ctx, c)
	<-p.handshakes
	if err != nil {
		p.metrics.authFailed.Add(1)
		p.throttle.Failed("", addr)
		if p.e.guard.allowLog() {
			p.log.Warn("edge-to-edge link refused", zap.Stringer("remote_addr", addr), zap.Error(err))
		}
		c.Close()
		return
	}
	if p.inbound.Add(1) > maxPeerSessions {
		p.inbound.Add(-1)
		c.Close()
		return
	}
	defer p.inbound.Add(-1)
	mux := tunnel.NewMuxadoMux(tc, true, tunnel.MuxConfig{AcceptBacklog: peerAcceptBacklog})
	log := p.log.With(zap.String("peer_edge_id", remoteID), zap.Stringer("remote_addr", addr))
	log.Debug("edge-to-edge link up")
	stop := context.AfterFunc(ctx, func() { mux.Close() })
	defer stop()
	defer mux.Close()
	for {
		t, st, err := mux.AcceptStream(context.WithoutCancel(ctx))
		if err != nil {
			log.Debug("edge-to-edge link down", zap.Error(err))
			return
		}
		switch t {
		case peerStreamForward:
			go p.serveForwarded(ctx, st)
		case peerStreamPing:
			go echoPing(st)
		default:
			st.Close()
		}
	}
}

// Answers to a forwarded connection, the one byte a sibling writes before
// anything else.
const (
	peerAccepted byte = 0 // served here; the client's bytes follow
	peerNoRoute  byte = 1 // this edge holds no such route: try another
)

// serveForwarded serves one connection a sibling forwarded: it reads the
// header, checks that the route is held here, and hands the connection
// to the public path with the client's address.
func (p *peering) serveForwarded(ctx context.Context, st tunnel.Stream) {
	_ = st.SetReadDeadline(time.Now().Add(peerHeaderTimeout))
	h, err := readPeerHeader(st)
	_ = st.SetReadDeadline(time.Time{})
	if err != nil {
		st.Close()
		return
	}
	ep, ok := p.e.router.lookup(h.key)
	if !ok || !h.listener.serves(ep.proto) || isClosed(p.e.Draining()) {
		p.metrics.receivedNoHit.Add(1)
		_, _ = st.Write([]byte{peerNoRoute})
		st.Close()
		return
	}
	c := &forwardedConn{Stream: st, client: net.TCPAddrFromAddrPort(h.client), local: net.TCPAddrFromAddrPort(h.local)}
	pub := p.e.public
	if !pub.mem.admit(c) {
		return
	}
	release, ok := pub.guard.admitConn(c, h.listener.String())
	if !ok {
		return
	}
	defer release()
	if _, err := st.Write([]byte{peerAccepted}); err != nil {
		st.Close()
		return
	}
	p.metrics.received.Add(1)
	switch h.listener {
	case listenerHTTPS:
		pub.handleHTTPS(ctx, c)
	case listenerTCP:
		pub.handleTCP(c, h.key)
	}
}

// forwardedConn is a public connection a sibling forwarded: a link stream
// that reports the client's address and the public address it reached.
type forwardedConn struct {
	tunnel.Stream
	client, local net.Addr
}

func (c *forwardedConn) RemoteAddr() net.Addr { return c.client }
func (c *forwardedConn) LocalAddr() net.Addr  { return c.local }
func (*forwardedConn) notForwardable()        {}

// notForwardable marks a connection that must not be forwarded (again):
// one a sibling forwarded, or one whose forwarding failed and that is
// served here.
type notForwardable interface{ notForwardable() }

// mayForward reports whether a public connection may go to a sibling.
func mayForward(c net.Conn) bool {
	_, no := c.(notForwardable)
	return !no
}

// replayConn serves a connection whose first bytes were read already (a
// ClientHello that no sibling took): Read returns them first.
type replayConn struct {
	net.Conn
	pre []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *replayConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return c.Conn.Close()
}

func (*replayConn) notForwardable() {}

// clientAddrPort returns a connection's client address, folded to IPv4.
func clientAddrPort(c net.Conn) netip.AddrPort { return PeerAddr(c.RemoteAddr()) }

// localAddrPort returns the public address a client reached.
func localAddrPort(c net.Conn) netip.AddrPort { return PeerAddr(c.LocalAddr()) }

var _ io.ReadWriteCloser = (*forwardedConn)(nil)
