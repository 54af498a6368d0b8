package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	stdlog "log"

	"github.com/tollgate/tollgate/codes"
	"go.uber.org/zap"
)

// Stream is one proxy stream to an agent: a byte pipe whose send side can be
// closed on its own.
type Stream interface {
	io.ReadWriteCloser
	// CloseWrite closes the send side; the agent reads EOF.
	CloseWrite() error
}

// Endpoint is one endpoint (a public URL) as the edge's router resolved it:
// it opens proxy streams to the agent that serves it. The service the agent
// forwards to is the upstream; this package never calls the endpoint or the
// agent that.
type Endpoint interface {
	// OpenStream opens a proxy stream to the endpoint's agent for one public
	// client connection. The implementation fills the proxy header; the
	// client's address is ClientAddrFromContext(ctx). ctx bounds the opening
	// only, not the stream's life. An error is answered 502 (TG_3201).
	OpenStream(ctx context.Context) (Stream, error)
	// ID returns the endpoint ID (ep_...) for logs and events.
	ID() string
}

// Resolver finds the endpoint serving a host.
type Resolver interface {
	// Resolve returns the endpoint bound at host: lower case, without port.
	Resolve(host string) (Endpoint, bool)
}

// BufferPool hands out copy buffers. httputil.BufferPool has the same shape.
type BufferPool interface {
	Get() []byte
	Put([]byte)
}

// RequestInfo describes one finished request for Config.OnRequest. The hook
// must not keep the pointer: the value is reused.
type RequestInfo struct {
	RemoteAddr    netip.AddrPort // the TCP peer, IPv4-mapped addresses folded to IPv4
	Host          string         // the authority the connection was opened for
	EndpointID    string         // Endpoint.ID(), "" when none was resolved
	Endpoint      Endpoint       // the endpoint resolved; nil when none was
	TLSVersion    uint16         // the client connection's TLS version (crypto/tls constant); 0 without TLS
	Proto         string         // "HTTP/1.1", "HTTP/1.0" or "HTTP/2.0"
	Method        string
	Path          string     // request target as forwarded
	Status        int        // status of the final response, 0 if none was sent
	Code          codes.Code // set when the edge answered itself (error page)
	ResponseBytes int64      // bytes of the response written to the client, head included (HTTP/1.1) or body (HTTP/2)
	RequestBytes  int64      // bytes of the request body read from the client
	Start         time.Time  // when the request head was complete
	Duration      time.Duration
}

// Config configures a Proxy. Zero values take the defaults given.
type Config struct {
	// Logger receives connection-level problems at debug level and proxy
	// lifecycle at info. Default: no logging.
	Logger *zap.Logger
	// MaxHeaderBytes bounds a request head (request line and fields) and, for
	// HTTP/2, the header list. Default 64 KiB.
	MaxHeaderBytes int
	// HeaderReadTimeout bounds reading one request head once its first byte
	// arrived. Default 10s.
	HeaderReadTimeout time.Duration
	// IdleTimeout closes a connection that waits this long for its next
	// request, and bounds one stalled write to a client. Default 120s.
	IdleTimeout time.Duration
	// MaxConcurrentStreams bounds concurrent HTTP/2 streams per connection.
	// Default 100 (Envoy's recommendation for an edge).
	MaxConcurrentStreams uint32
	// MaxStreamResets bounds the RST_STREAM frames an HTTP/2 client may
	// send on one connection within 10 seconds; past it the connection gets
	// GOAWAY(ENHANCE_YOUR_CALM) and closes (HTTP/2 rapid reset,
	// CVE-2023-44487). Default 200, twice the default stream limit, so a
	// browser that cancels a full page of requests stays within it;
	// negative: unlimited.
	MaxStreamResets int
	// BodyReadTimeout is the longest a request body may go without
	// sending a byte, on HTTP/1.1 and HTTP/2. Default 30s.
	BodyReadTimeout time.Duration
	// MinBodyRate is the slowest average rate, in bytes per second, a
	// request body may arrive at once it has been arriving for
	// BodyReadTimeout. A body that falls behind, like one that stalls, is
	// cut: its proxy stream and upstream connection are released and the
	// client gets 408 if no response began. Both are enforced to within a
	// quarter of BodyReadTimeout. Default 1024; negative: no minimum.
	MinBodyRate int64
	// MaxIdleStreams bounds the idle proxy streams an HTTP/2 connection
	// keeps for reuse. Default 16.
	MaxIdleStreams int
	// BufferPool provides copy buffers (at least 4 KiB each). Default: a
	// pool of 16 KiB buffers.
	BufferPool BufferPool
	// Scheme is the X-Forwarded-Proto value: "https" (default) or "http".
	Scheme string
	// Overload, if not nil, is asked before each request is forwarded —
	// the first one of a connection, one on a kept-alive HTTP/1.1
	// connection, every HTTP/2 stream: a non-nil Refusal answers the
	// request instead (the edge's memory guard: 503 with Retry-After),
	// and no proxy stream is opened or written for it. After such an
	// answer an HTTP/1.1 connection closes; an HTTP/2 connection goes on.
	// It must be fast, safe for concurrent use, and must not block.
	Overload func() *Refusal
	// OnRequest, if not nil, is called once per finished request from the
	// connection's goroutines; it must be fast and must not block. Setting it
	// costs a few allocations per request (method and path strings).
	OnRequest func(*RequestInfo)
}

// Defaults of Config.
const (
	// DefaultMaxHeaderBytes is the default of Config.MaxHeaderBytes.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultHeaderReadTimeout is the default of Config.HeaderReadTimeout.
	DefaultHeaderReadTimeout = 10 * time.Second
	// DefaultIdleTimeout is the default of Config.IdleTimeout.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxConcurrentStreams is the default of Config.MaxConcurrentStreams.
	DefaultMaxConcurrentStreams = 100
	// DefaultMaxStreamResets is the default of Config.MaxStreamResets.
	DefaultMaxStreamResets = 200
	// DefaultBodyReadTimeout is the default of Config.BodyReadTimeout.
	DefaultBodyReadTimeout = 30 * time.Second
	// DefaultMinBodyRate is the default of Config.MinBodyRate.
	DefaultMinBodyRate = 1024
	// DefaultMaxIdleStreams is the default of Config.MaxIdleStreams.
	DefaultMaxIdleStreams = 16

	defaultBufferSize = 16 << 10
	minBufferSize     = 4 << 10
	// bulkBufferSize is the largest buffer a response body moves through,
	// while its client keeps up (bulkbuf.go): large bodies are CPU-bound
	// on the number of reads and writes, small ones keep the small buffer.
	bulkBufferSize = 256 << 10
)

// maxRecordPayload is the most data one TLS record carries (RFC 8446 §5.1).
const maxRecordPayload = 16 << 10

// recordBatcher is implemented by the connection under a client's
// tls.Conn when it can gather the records of one large Write into fewer
// system calls (tunnel.BatchRecords; the edge wraps public connections in
// it): the relay brackets such writes with HoldRecords and ReleaseRecords.
type recordBatcher interface {
	HoldRecords()
	ReleaseRecords() error
}

// recordBatcherOf returns the recordBatcher under c, a *tls.Conn; nil
// when there is none.
func recordBatcherOf(c net.Conn) recordBatcher {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	rb, _ := tc.NetConn().(recordBatcher)
	return rb
}

// Proxy serves public client connections for the endpoints its Resolver
// knows. Create it with New; hand it connections with ServeConn; stop it
// with Shutdown.
type Proxy struct {
	cfg      Config
	log      *zap.Logger
	resolver Resolver
	pool     BufferPool
	xfp      []byte // "X-Forwarded-Proto: https\r\n"

	h2srv   *http.Server                                // its HTTP/2 serves every HTTP/2 connection (h2server.go)
	h2serve func(*http.Server, *tls.Conn, http.Handler) // h2srv's handler of one connection
	lateH2  atomic.Bool                                 // an HTTP/2 connection started after Shutdown's GOAWAY

	calmed      atomic.Int64 // HTTP/2 connections sent GOAWAY(ENHANCE_YOUR_CALM)
	unsolicited atomic.Int64 // pooled proxy streams retired for bytes no request asked for
	bulkHeld    atomic.Int64 // bytes of bulk body buffers held by responses (bulkbuf.go)
	parked      atomic.Int64 // response copies waiting, holding no buffer, for a full client socket (unsent.go)
	slowCopies  atomic.Int64 // HTTP/2 response copies holding only a slowBufferSize buffer (bulkbuf.go)

	mu        sync.Mutex
	conns     map[servedConn]struct{}
	closing   bool
	closingAt atomic.Bool   // closing, for readers that take no lock
	drained   chan struct{} // closed when closing and conns is empty
}

// servedConn is a connection Shutdown can drain and force closed.
type servedConn interface {
	shutdown() // stop taking requests; close once in-flight ones finish
	abort()    // close now
}

// New validates cfg and returns a Proxy for r. It starts nothing.
func New(cfg Config, r Resolver) (*Proxy, error) {
	if r == nil {
		return nil, errors.New("httpproxy: a Resolver is required")
	}
	if cfg.MaxHeaderBytes < 0 || cfg.HeaderReadTimeout < 0 || cfg.IdleTimeout < 0 || cfg.MaxIdleStreams < 0 || cfg.BodyReadTimeout < 0 {
		return nil, errors.New("httpproxy: negative limit in Config")
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.MaxHeaderBytes < 1024 {
		return nil, errors.New("httpproxy: MaxHeaderBytes below 1024")
	}
	if cfg.HeaderReadTimeout == 0 {
		cfg.HeaderReadTimeout = DefaultHeaderReadTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if cfg.MaxIdleStreams == 0 {
		cfg.MaxIdleStreams = DefaultMaxIdleStreams
	}
	if cfg.MaxStreamResets == 0 {
		cfg.MaxStreamResets = DefaultMaxStreamResets
	}
	if cfg.BodyReadTimeout == 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	switch {
	case cfg.MinBodyRate == 0:
		cfg.MinBodyRate = DefaultMinBodyRate
	case cfg.MinBodyRate < 0:
		cfg.MinBodyRate = 0
	}
	switch cfg.Scheme {
	case "":
		cfg.Scheme = "https"
	case "http", "https":
	default:
		return nil, errors.New(`httpproxy: Scheme must be "http" or "https"`)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	pool := cfg.BufferPool
	if pool == nil {
		pool = newBufferPool(defaultBufferSize)
	}
	p := &Proxy{
		cfg:      cfg,
		log:      log,
		resolver: r,
		pool:     pool,
		xfp:      []byte("X-Forwarded-Proto: " + cfg.Scheme + "\r\n"),
		conns:    make(map[servedConn]struct{}),
		drained:  make(chan struct{}),
	}
	srv, serve, err := p.newH2Server()
	if err != nil {
		return nil, err
	}
	p.h2srv, p.h2serve = srv, serve
	return p, nil
}

type clientAddrKey struct{}

// ClientAddrFromContext returns the public client's TCP address for the
// connection a stream is opened for (IPv4-mapped IPv6 folded to IPv4).
func ClientAddrFromContext(ctx context.Context) (netip.AddrPort, bool) {
	a, ok := ctx.Value(clientAddrKey{}).(netip.AddrPort)
	return a, ok
}

// peerAddr returns c's remote address with an IPv4-mapped IPv6 address
// folded to IPv4; the zero value when it is not an IP address.
func peerAddr(c net.Conn) netip.AddrPort {
	var ap netip.AddrPort
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case nil:
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// ServeConn serves one public client connection until it ends and closes
// it. sni is the TLS server name (lower case, "" for none or plain HTTP);
// alpn is the negotiated protocol: "h2" selects HTTP/2, anything else
// HTTP/1.1. Cancelling ctx closes the connection at once; Shutdown drains it.
func (p *Proxy) ServeConn(ctx context.Context, c net.Conn, sni, alpn string) {
	remote := peerAddr(c)
	ctx = context.WithValue(ctx, clientAddrKey{}, remote)
	var tlsVersion uint16
	if tc, ok := c.(*tls.Conn); ok && p.cfg.OnRequest != nil {
		tlsVersion = tc.ConnectionState().Version
	}
	limitUnsent(c)
	if alpn == "h2" {
		p.serveH2(ctx, c, sni, remote, tlsVersion)
		return
	}
	h := newH1Conn(p, ctx, c, sni, remote)
	h.tlsVer = tlsVersion
	if !p.track(h) {
		c.Close()
		return
	}
	defer p.untrack(h)
	stop := context.AfterFunc(ctx, h.abort)
	defer stop()
	h.serve()
}

func (p *Proxy) track(sc servedConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.conns[sc] = struct{}{}
	return true
}

func (p *Proxy) untrack(sc servedConn) {
	p.mu.Lock()
	delete(p.conns, sc)
	if p.closing && len(p.conns) == 0 {
		select {
		case <-p.drained:
		default:
			close(p.drained)
		}
	}
	p.mu.Unlock()
}

// Shutdown stops taking new connections and requests and drains the
// rest: HTTP/1.1 connections close once idle, and the last response of
// each carries "Connection: close"; HTTP/2 connections get GOAWAY with the
// last stream ID they accepted, finish those streams and close. Accepted
// requests run until they end or ctx ends; then the rest are closed at
// once and ctx's error is returned. Upgraded connections (WebSocket) count
// as in flight until they end. Calling it again returns ErrProxyClosed
// after waiting like the first call.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	again := p.closing
	p.closing = true
	p.closingAt.Store(true)
	conns := make([]servedConn, 0, len(p.conns))
	for sc := range p.conns {
		conns = append(conns, sc)
	}
	if len(p.conns) == 0 {
		select {
		case <-p.drained:
		default:
			close(p.drained)
		}
	}
	p.mu.Unlock()

	if !again {
		p.log.Info("http proxy shutting down", zap.Int("connections", len(conns)))
		// The http.Server sends GOAWAY to every HTTP/2 connection and
		// closes each once its streams are done.
		go func() { _ = p.h2srv.Shutdown(ctx) }()
	}
	for _, sc := range conns {
		sc.shutdown()
	}
	// An HTTP/2 connection handed to the server just before Shutdown may
	// register after the GOAWAY went out: send it again for those.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.drained:
			if again {
				return ErrProxyClosed
			}
			return nil
		case <-tick.C:
			if p.lateH2.Swap(false) {
				go func() { _ = p.h2srv.Shutdown(ctx) }()
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	p.mu.Lock()
	conns = conns[:0]
	for sc := range p.conns {
		conns = append(conns, sc)
	}
	p.mu.Unlock()
	for _, sc := range conns {
		sc.abort()
	}
	return ctx.Err()
}

func (p *Proxy) isClosing() bool { return p.closingAt.Load() }

// Counts are the proxy's counters since New.
type Counts struct {
	// Calmed is the HTTP/2 connections sent GOAWAY(ENHANCE_YOUR_CALM)
	// for resetting streams too fast (Config.MaxStreamResets).
	Calmed int64
	// Unsolicited is the pooled proxy streams retired because the agent
	// sent bytes no request asked for.
	Unsolicited int64
	// WaitingForClient is, now, the HTTP/1.1 responses and HTTP/2
	// connections waiting, holding no buffer, for a client whose socket
	// is full (unsent.go): slow or stalled clients.
	WaitingForClient int64
}

// Counts returns the proxy's counters.
func (p *Proxy) Counts() Counts {
	return Counts{Calmed: p.calmed.Load(), Unsolicited: p.unsolicited.Load(), WaitingForClient: p.parked.Load()}
}

// newStdLog returns the http.Server's error log: debug lines of log.
func newStdLog(log *zap.Logger) (*stdlog.Logger, error) {
	return zap.NewStdLogAt(log.Named("http2"), zap.DebugLevel)
}

const debugLevel = zap.DebugLevel

func remoteField(a netip.AddrPort) zap.Field { return zap.Stringer("remote_addr", a) }

// bufferPool is the default BufferPool: a sync.Pool of fixed-size buffers
// that allocates nothing in the steady state (the slice headers travel in
// recycled holders).
type bufferPool struct {
	size    int
	bufs    sync.Pool // *[]byte holding a buffer
	holders sync.Pool // *[]byte holding nil
}

func newBufferPool(size int) *bufferPool { return &bufferPool{size: size} }

func (bp *bufferPool) Get() []byte {
	if h, ok := bp.bufs.Get().(*[]byte); ok {
		b := *h
		*h = nil
		bp.holders.Put(h)
		return b
	}
	return make([]byte, bp.size)
}

func (bp *bufferPool) Put(b []byte) {
	if cap(b) < bp.size {
		return
	}
	h, ok := bp.holders.Get().(*[]byte)
	if !ok {
		h = new([]byte)
	}
	*h = b[:bp.size]
	bp.bufs.Put(h)
}

// getBuf returns a buffer of at least minBufferSize bytes.
func (p *Proxy) getBuf() []byte {
	b := p.pool.Get()
	if len(b) < minBufferSize {
		b = b[:cap(b)]
		if len(b) < minBufferSize {
			return make([]byte, defaultBufferSize)
		}
	}
	return b
}
