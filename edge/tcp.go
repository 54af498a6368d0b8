package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// portRange is an inclusive range of TCP ports.
type portRange struct{ lo, hi int }

// parsePortRange parses "LO-HI" (or one port "P"), 1 ≤ LO ≤ HI ≤ 65535.
func parsePortRange(s string) (portRange, error) {
	lo, hi, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		hi = lo
	}
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return portRange{}, fmt.Errorf("TCP port range %q: use LO-HI with 1 ≤ LO ≤ HI ≤ 65535, e.g. 20000-29999", s)
	}
	return portRange{a, b}, nil
}

func (r portRange) String() string { return strconv.Itoa(r.lo) + "-" + strconv.Itoa(r.hi) }

func (r portRange) contains(p int) bool { return p >= r.lo && p <= r.hi }

// tcpListeners owns the public listeners of TCP endpoints, one per port,
// shared by reference count: an endpoint taken over by a reconnecting
// agent's new endpoint keeps its listener open across the switch. The
// accept loop routes each connection by the router's current endpoint
// for the port, so the listener never holds an endpoint itself.
type tcpListeners struct {
	listenIP string
	serve    func(ln net.Listener, port int) // runs until ln closes
	mu       sync.Mutex
	byPort   map[int]*tcpListener
	closed   bool
}

type tcpListener struct {
	ln   net.Listener
	refs int
}

// newTCPListeners returns the listener set; each listener binds listenIP
// and is served by serve on its own goroutine.
func newTCPListeners(listenIP string, serve func(ln net.Listener, port int)) *tcpListeners {
	return &tcpListeners{listenIP: listenIP, serve: serve, byPort: make(map[int]*tcpListener)}
}

// errPortsExhausted means every port of the range is taken.
var errPortsExhausted = errors.New("no free port in the TCP port range")

// acquire takes a reference on the listener of port, opening it if needed.
func (t *tcpListeners) acquire(port int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return net.ErrClosed
	}
	if l, ok := t.byPort[port]; ok {
		l.refs++
		return nil
	}
	return t.openLocked(port)
}

// allocate opens a listener on a random free port of the range that no
// reservation in snap names, and returns the port with one reference.
// It tries every port of the range at most once.
func (t *tcpListeners) allocate(snap *snapshot.Snapshot, r portRange, host string) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, net.ErrClosed
	}
	n := r.hi - r.lo + 1
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		p := r.lo + (start+i)%n
		if _, used := t.byPort[p]; used {
			continue
		}
		if _, reserved := snap.ReservedAddr(net.JoinHostPort(host, strconv.Itoa(p))); reserved {
			continue
		}
		if t.openLocked(p) == nil {
			return p, nil
		}
	}
	return 0, errPortsExhausted
}

func (t *tcpListeners) openLocked(port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(t.listenIP, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	t.byPort[port] = &tcpListener{ln: ln, refs: 1}
	go t.serve(ln, port)
	return nil
}

// release drops a reference on port's listener; the last one closes it, so
// new connections to the port are refused at once.
func (t *tcpListeners) release(port int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.byPort[port]
	if !ok {
		return
	}
	if l.refs--; l.refs <= 0 {
		l.ln.Close()
		delete(t.byPort, port)
	}
}

// closeAll closes every listener (shutdown); later acquires fail.
func (t *tcpListeners) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for p, l := range t.byPort {
		l.ln.Close()
		delete(t.byPort, p)
	}
}

// tcpKey returns the route key of a TCP endpoint on this edge.
func (b *binder) tcpKey(port int) string { return net.JoinHostPort(b.tcpHost, strconv.Itoa(port)) }

// parseTCPAddr parses "tcp://HOST:PORT" or "HOST:PORT" into the route key
// "host:port" (host lower-case punycode, or an IP) and the port.
func parseTCPAddr(raw string) (string, int, *codes.Error) {
	s := strings.TrimSpace(raw)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || !strings.EqualFold(u.Scheme, "tcp") || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return "", 0, codes.NewError(codes.BindURL, "The URL %q is not valid: use tcp://HOST:PORT.", raw)
		}
		s = u.Host
	}
	host, ps, err := net.SplitHostPort(s)
	port, perr := strconv.Atoi(ps)
	if err != nil || perr != nil || port < 1 || port > 65535 || host == "" {
		return "", 0, codes.NewError(codes.BindURL, "The address %q is not valid: use tcp://HOST:PORT with a port from 1 to 65535.", raw)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	} else if host, err = policy.NormalizeHostname(host); err != nil {
		return "", 0, codes.NewError(codes.BindURL, "The host in %q is not valid: %v.", raw, policy.HostnameReason(err))
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), port, nil
}

// checkTCPBindAllowed decides whether ident may hold the TCP address key
// (host:port): the credential's bind ACL, the edge's TCP host, and either a
// reservation of this account in this region or a port of the edge's
// random range that nobody reserved. Whether an explicitly requested
// address must be reserved is the bind's business (bindTCP).
func (b *binder) checkTCPBindAllowed(snap *snapshot.Snapshot, ident *authn.Identity, key string) *codes.Error {
	if !policy.BindAllowed(ident.ACL, key) {
		return codes.NewError(codes.BindACL, "This credential's bind ACL does not allow tcp://%s. Ask an administrator to add 'bind:%s' to it, or bind an address it allows with --url.", key, key)
	}
	host, ps, _ := net.SplitHostPort(key)
	port, _ := strconv.Atoi(ps)
	if host != b.tcpHost {
		return codes.NewError(codes.BindOutsideBase, "tcp://%s is not an address this edge serves: its TCP endpoints are on tcp://%s:PORT.", key, b.tcpHost)
	}
	if ra, ok := snap.ReservedAddr(key); ok {
		if ra.AccountID != ident.Account.ID {
			return codes.NewError(codes.BindReservedOther, "tcp://%s is reserved by another account. Choose another address.", key)
		}
		if ra.Region != "" && ra.Region != b.region {
			return codes.NewError(codes.BindAddrRegion, "tcp://%s is reserved in region %s, but this edge serves region %s. Connect to a %s edge (--region %s).", key, ra.Region, b.region, ra.Region, ra.Region)
		}
		return nil
	}
	if !b.tcpRange.contains(port) {
		return codes.NewError(codes.BindNotReserved, "tcp://%s is not reserved by your account. Reserve it first (POST /reserved_addrs), or leave out --url for a random address.", key)
	}
	return nil
}

// bindTCP validates a tcp bind, takes its port (a reserved address, the
// address a valid bind token names, or a random port of the range) and
// returns the endpoint to install and the options to echo back. The
// endpoint holds a reference on its port's listener until it is unbound.
func (b *binder) bindTCP(req *tunnel.Bind, ident *authn.Identity, owner EndpointOwner) (*Endpoint, any, *codes.Error) {
	opts, derr := tunnel.DecodeTCPOptions(req.Opts)
	if derr != nil {
		return nil, nil, unreadableOptions(derr)
	}
	if err := refuseUnsupported(opts.Unsupported, opts.TrafficPolicy); err != nil {
		return nil, nil, err
	}
	if err := checkProxyProto(opts.ProxyProto); err != nil {
		return nil, nil, err
	}
	snap := b.snap.Load()
	access, aerr := b.gates.newEndpointAccess(snap, ident.Account.ID, opts.IPRestriction, nil, "")
	if aerr != nil {
		return nil, nil, aerr
	}
	requested := opts.URL
	if requested == "" {
		requested = opts.Addr
	}
	if u, err := url.Parse(requested); err == nil && strings.EqualFold(u.Scheme, "tcp") && u.Host == "" {
		requested = "" // "tcp://" (the Go SDK's way of asking for any address)
	}
	var key string
	var port int
	switch {
	case requested != "":
		var err *codes.Error
		if key, port, err = parseTCPAddr(requested); err != nil {
			return nil, nil, err
		}
		if err := b.checkTCPBindAllowed(snap, ident, key); err != nil {
			return nil, nil, err
		}
		// A fixed address must be reserved, unless a bind token proves the
		// account held it before (a reconnecting agent's random address).
		tokKey, tokOK := b.tokens.verify(req.Extra.Token, ident.Account.ID, "tcp")
		if _, reserved := snap.ReservedAddr(key); !reserved && (!tokOK || tokKey != key) {
			return nil, nil, codes.NewError(codes.BindNotReserved, "tcp://%s is not reserved by your account. Reserve it first (POST /reserved_addrs), or leave out --url for a random address.", key)
		}
		if err := b.tcp.acquire(port); err != nil {
			return nil, nil, tcpListenError(key, err)
		}
	default:
		if tokKey, ok := b.tokens.verify(req.Extra.Token, ident.Account.ID, "tcp"); ok {
			if k, p, err := parseTCPAddr(tokKey); err == nil && b.checkTCPBindAllowed(snap, ident, k) == nil && b.tcp.acquire(p) == nil {
				key, port = k, p
			}
		}
		if key == "" {
			p, err := b.tcp.allocate(snap, b.tcpRange, b.tcpHost)
			if err != nil {
				if errors.Is(err, errPortsExhausted) {
					return nil, nil, codes.NewError(codes.BindPortsExhausted, "Every port of this edge's TCP range %s is in use. Try again later, or ask the operator to widen --tcp-ports.", b.tcpRange)
				}
				return nil, nil, tcpListenError(b.tcpHost, err)
			}
			key, port = b.tcpKey(p), p
			if err := b.checkTCPBindAllowed(snap, ident, key); err != nil {
				b.tcp.release(port)
				if err.Code == codes.BindACL {
					err = codes.NewError(codes.BindACL, "This credential's bind ACL does not allow a random TCP address. Bind an address it allows with --url tcp://HOST:PORT.")
				}
				return nil, nil, err
			}
		}
	}
	ep := newEndpoint(req, owner, "tcp", key, "tcp://"+key, access)
	ep.proxyProto = opts.ProxyProto
	ep.release = sync.OnceFunc(func() { b.tcp.release(port) })
	opts.URL = ep.url
	opts.Addr = key
	opts.Unsupported = nil
	return ep, opts, nil
}

func tcpListenError(addr string, err error) *codes.Error {
	return codes.NewError(codes.BindTaken, "The edge cannot listen on %s: the port is in use on the edge host. Choose another address.", addr).WithCause(err)
}

// serveTCP accepts public clients of the TCP endpoint address key
// (host:port) on ln until it closes.
func (p *publicServer) serveTCP(ln net.Listener, key string) {
	_ = AcceptLoop(context.Background(), ln, func(c net.Conn) {
		if !p.mem.admit(c) {
			return
		}
		if release, ok := p.guard.admitConn(c, "tcp"); ok {
			defer release()
			p.handleTCP(c, key)
		}
	})
}

// streamOpenTimeout bounds opening a proxy stream to an agent for one TCP
// or TLS client.
const streamOpenTimeout = 10 * time.Second

// handleTCP serves one public TCP client: a proxy stream to the endpoint's
// agent, the PROXY header if the endpoint asked for one, then raw bytes.
func (p *publicServer) handleTCP(c net.Conn, key string) {
	ep, ok := p.router.pick(key)
	if !ok && p.forwardTCP(c, key) {
		return
	}
	if !ok || ep.proto != "tcp" {
		refuse(c)
		return
	}
	if !p.gates.admit(ep, PeerAddr(c.RemoteAddr()).Addr()) {
		p.stats.rawRefused(c, ep)
		refuse(c)
		return
	}
	p.proxyRaw(c, ep, &tunnel.ProxyHeader{ID: ep.bindID, Proto: "tcp", EdgeType: edgeTypeTCP}, nil)
}

// proxyRaw joins the public connection c to a new proxy stream of ep:
// the PROXY protocol header when ep asks for one, then prefix (bytes
// already read from c), then bytes both ways with half-close.
func (p *publicServer) proxyRaw(c net.Conn, ep *Endpoint, hdr *tunnel.ProxyHeader, prefix []byte) {
	hc, ok := c.(halfCloser)
	if !ok || !p.raw.add(c) {
		refuse(c)
		return
	}
	defer p.raw.remove(c)
	client := PeerAddr(c.RemoteAddr())
	hdr.ClientAddr = client.String()
	st, ep, err := p.openRaw(client, ep, hdr)
	if err != nil {
		if ce := p.log.Check(zap.DebugLevel, "agent unreachable for a raw connection"); ce != nil {
			ce.Write(zap.String("endpoint", ep.url), zap.String("remote_addr", hdr.ClientAddr), zap.Error(err))
		}
		refuse(c)
		return
	}
	if ep.proxyProto != 0 {
		h := proxyproto.HeaderProxyFromAddrs(byte(ep.proxyProto), net.TCPAddrFromAddrPort(client), c.LocalAddr())
		if _, err := h.WriteTo(st); err != nil {
			st.Close()
			c.Close()
			return
		}
	}
	if len(prefix) > 0 {
		if _, err := st.Write(prefix); err != nil {
			st.Close()
			c.Close()
			return
		}
	}
	kind, start := kindOf(ep.proto), time.Now()
	p.stats.rawStarted(kind)
	cc := &countedConn{halfCloser: hc, in: int64(len(prefix))}
	pipe(cc, st)
	p.stats.rawEnded(c, ep, kind, start, cc.in, cc.out)
}

// openRaw opens a proxy stream for a TCP or TLS client to ep or, when ep
// is a member of a pool whose agent is not answering (errMemberDown; none
// of the client's bytes went anywhere), to the next member that can take
// the same connection (rawCompatible) and whose IP gates admit the
// client: at most maxMemberTries members. It returns the endpoint the
// stream goes to; hdr's bind ID follows it.
func (p *publicServer) openRaw(client netip.AddrPort, ep *Endpoint, hdr *tunnel.ProxyHeader) (Stream, *Endpoint, error) {
	first := ep
	for tries := 1; ; tries++ {
		hdr.ID = ep.bindID
		ctx, cancel := context.WithTimeout(context.Background(), streamOpenTimeout)
		st, err := ep.openProxy(ctx, hdr)
		cancel()
		if err == nil || !errors.Is(err, errMemberDown) || tries == maxMemberTries {
			return st, ep, err
		}
		next, ok := p.router.pick(ep.key)
		if !ok || next == ep || !rawCompatible(first, next) || !p.gates.admit(next, client.Addr()) {
			return nil, ep, err
		}
		ep = next
	}
}

// rawCompatible reports whether a connection accepted for pool member a
// may go to member b instead: the same proto, TLS terminated by both or by
// neither, and no higher minimum TLS version than the client met.
func rawCompatible(a, b *Endpoint) bool {
	return a.proto == b.proto && (a.termCert == nil) == (b.termCert == nil) && b.minTLS <= a.minTLS
}

// refuse closes c with a reset, so the client sees the refusal at once.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// PeerAddr returns the address of a connection's peer with an
// IPv4-mapped IPv6 address folded to IPv4: the address IP policy decides
// on.
func PeerAddr(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// halfCloser is a connection whose send side closes on its own.
type halfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// rawBufPool holds copy buffers for raw (TCP and TLS passthrough) pipes.
var rawBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// pipe copies both ways between a and b until both directions end. EOF on
// one side half-closes the other's send side (so a client's shutdown(SHUT_WR)
// reaches the upstream and its answer still comes back); an error in either
// direction closes both. Both are closed when it returns.
func pipe(a, b halfCloser) {
	done := make(chan struct{})
	go pipeHalf(b, a, done)
	if err := copyHalf(a, b); err != nil {
		a.Close()
		b.Close()
	}
	<-done
	a.Close()
	b.Close()
}

// pipeHalf is the second direction of pipe, in its own goroutine (named for
// stack traces).
func pipeHalf(dst, src halfCloser, done chan<- struct{}) {
	defer close(done)
	if err := copyHalf(dst, src); err != nil {
		src.Close()
		dst.Close()
	}
}

// copyHalf copies src to dst and half-closes dst at src's EOF. A nil error
// means a clean EOF.
func copyHalf(dst, src halfCloser) error {
	bp := rawBufPool.Get().(*[]byte)
	defer rawBufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return dst.CloseWrite()
			}
			return rerr
		}
	}
}
