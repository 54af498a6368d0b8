package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/tunnel"
)

// Shutdown bounds.
const (
	unbindTimeout  = 3 * time.Second
	webStopTimeout = 2 * time.Second
)

// backoffer is the part of tunnel.Backoff the supervisor uses.
type backoffer interface {
	Next() time.Duration
	Reset()
}

// errAllStopped ends a session whose endpoints the edge all stopped.
var errAllStopped = errors.New("agent: every endpoint was stopped by the edge")

// Agent keeps agent sessions to Config.HAConnections distinct edges of
// its region (its legs, leg.go) and forwards its endpoints' traffic, which
// arrives on any leg, to their upstreams. Create it with New and start it
// with Run.
type Agent struct {
	cfg        *resolved
	log        *zap.Logger
	eps        endpointSet
	legs       []*leg
	edges      *edgePicker
	instanceID string       // random per Agent: Auth's InstanceID on every leg
	rec        *captureRing // the request inspector's ring; nil when off
	ready      chan struct{}

	readyOnce      sync.Once
	fewerOnce      sync.Once // the one line saying the agent keeps fewer legs
	running        atomic.Bool
	allStopped     chan struct{}
	allStoppedOnce sync.Once
	bg             sync.WaitGroup // unbinds on other legs (onStopTunnel); Run waits

	// Replaceable in tests.
	dial          func(ctx context.Context, transport, addr string) (tunnel.Mux, error)
	backoff       backoffer // shared by every leg when set; else one tunnel.Backoff per leg
	fallbackDelay time.Duration
	// preferredRetry is the first delay of returnToPreferred (prefer.go);
	// 0 = never return.
	preferredRetry time.Duration
	probe          regions.Measure // measures a region's edge (region.go)
	regionRefresh  time.Duration   // how often refreshRegion asks; 0 = never

	mu         sync.Mutex // guards the fields below
	home       string     // where legs dial without a list: ServerAddr, or the region's edge it redirected to
	stopped    bool       // Run has returned
	everOnline bool       // a leg has been online
	webAddr    string     // inspection API address once listening
	hostname   string
}

// endpoint is one configured endpoint and its bind state.
type endpoint struct {
	spec    *config.EndpointSpec
	opts    json.RawMessage // Bind.Opts; holds passwords: never log
	fwd     *forwarder
	metrics counters

	mu        sync.Mutex // guards the fields below
	on        uint32     // bit n set: bound on leg n
	bindID    string
	token     string
	publicURL string
	tunnelID  string
	state     string
	stopMsg   string
	stopCode  string
}

// New validates cfg and returns an Agent; it does no network I/O (it reads
// the root CA file, if any). Errors are *codes.Error: TG_9002 for invalid
// settings, TG_9003 for an unreadable CA file, TG_4018 without an
// authtoken. A nil logger logs nothing.
func New(cfg Config, logger *zap.Logger) (*Agent, error) {
	r, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	a := &Agent{
		cfg:            r,
		log:            logger,
		edges:          newEdgePicker(r.HAConnections),
		instanceID:     randomHex(16),
		ready:          make(chan struct{}),
		allStopped:     make(chan struct{}),
		fallbackDelay:  FallbackDelay,
		preferredRetry: PreferredRetry,
		regionRefresh:  RegionRefresh,
		home:           r.ServerAddr,
	}
	for n := range r.HAConnections {
		a.legs = append(a.legs, &leg{n: n, st: LegStatus{Number: n, State: SessionConnecting}})
	}
	a.dial = a.dialEdge
	a.probe = a.tlsHandshakeTime
	if !r.Inspect.Off && r.webAddr != "" { // nothing could show what is recorded without a web address
		a.rec = newCaptureRing(r.Inspect)
	}
	for _, spec := range r.endpoints {
		opts, err := bindOpts(spec)
		if err != nil {
			return nil, fmt.Errorf("encoding options of endpoint %q: %w", spec.Name, err)
		}
		ep := &endpoint{spec: spec, opts: opts, state: StateStarting}
		ep.fwd = &forwarder{spec: spec, log: logger, metrics: &ep.metrics}
		if spec.Kind == config.ProtoHTTP {
			ep.fwd.rec = a.rec
		}
		a.eps.list = append(a.eps.list, ep)
	}
	a.eps.routes.Store(&map[string]*endpoint{})
	return a, nil
}

// Ready is closed once every endpoint has been bound for the first time
// (right after Auth when there are none), on the first leg. It is never
// closed if Run fails first.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Transport returns the transport of the first online leg's session,
// "quic" or "tcp"; "" when not connected.
func (a *Agent) Transport() string {
	return a.Status().Transport
}

// WebAddr returns the address the inspection API listens on, once Run has
// opened it; "" before, or when it is disabled.
func (a *Agent) WebAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.webAddr
}

// Status returns a snapshot of the agent's sessions: every leg in Legs,
// and in the other fields the first online leg's session (leg 0's while
// none is online).
func (a *Agent) Status() Status {
	a.mu.Lock()
	st := Status{ServerAddr: a.home, Version: a.cfg.Version}
	stopped, ever := a.stopped, a.everOnline
	a.mu.Unlock()
	st.Legs = make([]LegStatus, 0, len(a.legs))
	first := -1
	for _, l := range a.legs {
		ls := l.status()
		if first < 0 && ls.State == SessionOnline {
			first = len(st.Legs)
		}
		st.Legs = append(st.Legs, ls)
	}
	switch {
	case stopped:
		st.State = SessionStopped
	case first >= 0:
		st.State = SessionOnline
	case ever:
		st.State = SessionReconnecting
	default:
		st.State = SessionConnecting
	}
	if first < 0 {
		first = 0
	}
	m := st.Legs[first]
	st.SessionID, st.ClientID, st.Region, st.Transport = m.SessionID, m.ClientID, m.Region, m.Transport
	st.ConnectedAt, st.Latency = m.ConnectedAt, m.Latency
	if m.ServerAddr != "" {
		st.ServerAddr = m.ServerAddr
	}
	for _, ls := range st.Legs {
		if ls.State == SessionOnline {
			st.Connections++
		}
	}
	st.RegionEdges = a.edges.count()
	return st
}

// Endpoints returns a snapshot of every endpoint, in configuration order.
func (a *Agent) Endpoints() []EndpointStatus {
	out := make([]EndpointStatus, 0, len(a.eps.list))
	for _, ep := range a.eps.list {
		out = append(out, ep.snapshot())
	}
	return out
}

func (ep *endpoint) snapshot() EndpointStatus {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return EndpointStatus{
		Name:        ep.spec.Name,
		Proto:       ep.spec.BindProto,
		URL:         ep.spec.URL,
		PublicURL:   ep.publicURL,
		Upstream:    ep.spec.Upstream.String(),
		State:       ep.state,
		BindID:      ep.bindID,
		Connections: bits.OnesCount32(ep.on),
		TunnelID:    ep.tunnelID,
		StopMessage: ep.stopMsg,
		StopCode:    ep.stopCode,
		ConnsTotal:  ep.metrics.connsTotal.Load(),
		ConnsOpen:   ep.metrics.connsOpen.Load(),
		BytesIn:     ep.metrics.bytesIn.Load(),
		BytesOut:    ep.metrics.bytesOut.Load(),
	}
}

// Run connects to the edges, binds every endpoint and forwards traffic
// until ctx ends, the edge asks the agent to stop, or a permanent error
// occurs. It keeps Config.HAConnections legs, each on its own edge of the
// region (fewer while the region has fewer live edges): the first leg
// connects and binds, then the others do. A dropped leg is re-established
// with exponential backoff and jitter, on another edge when the region has
// one, while the other legs keep serving; a leg re-uses its session's
// ClientId and Cookie and every leg each endpoint's bind Id and Token, so
// public URLs stay the same.
//
// Run returns nil when ctx ends (after unbinding and closing every
// session) or when an edge sent Stop. It returns a *codes.Error for a
// permanent refusal (authtoken rejected, a bind refused, every endpoint
// stopped by the edge) carrying the edge's code and message, TG_9001 when
// the inspection API cannot listen, and ErrAlreadyRunning on a second
// call. Every goroutine Run starts has ended when it returns.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer func() {
		a.mu.Lock()
		a.stopped = true
		a.mu.Unlock()
	}()

	// Forwarded connections outlive a session only until Run returns.
	fwdCtx, stopForwarding := context.WithCancel(context.Background())
	fwd := &forwarding{ctx: fwdCtx}
	defer func() {
		stopForwarding()
		fwd.wg.Wait()
	}()

	if a.cfg.webAddr != "" {
		stopWeb, err := a.startWeb()
		if err != nil {
			return err
		}
		defer stopWeb()
	}
	if h, err := os.Hostname(); err == nil {
		a.mu.Lock()
		a.hostname = h
		a.mu.Unlock()
	}

	legCtx, stopLegs := context.WithCancel(ctx)
	defer stopLegs()
	ended := make(chan error, len(a.legs)) // each leg's result; the first ends Run
	var wg sync.WaitGroup
	startLeg := func(l *leg) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ended <- a.runLeg(legCtx, l, fwd)
		}()
	}
	startLeg(a.legs[0])
	if len(a.legs) > 1 {
		wg.Add(1)
		go func() { // the other legs, once the first has bound every endpoint
			defer wg.Done()
			select {
			case <-a.ready:
			case <-legCtx.Done():
				return
			}
			for _, l := range a.legs[1:] {
				startLeg(l)
			}
			a.refreshRegion(legCtx)
		}()
	}
	err := <-ended
	stopLegs()
	wg.Wait()
	a.bg.Wait()
	return err
}

// newBackoff returns the reconnect backoff of one leg.
func (a *Agent) newBackoff() backoffer {
	if a.backoff != nil {
		return a.backoff
	}
	return &tunnel.Backoff{}
}

// homeAddr returns where legs dial while no edge has listed its region.
func (a *Agent) homeAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.home
}

func (a *Agent) setHome(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.home = addr
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startWeb opens the inspection API listener and serves it; the returned
// func stops it.
func (a *Agent) startWeb() (func(), error) {
	ln, err := listenWeb(a.cfg.webAddr, a.cfg.WebAddrTries)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.webAddr = ln.Addr().String()
	a.mu.Unlock()
	if a.webAddr != a.cfg.webAddr && !strings.HasSuffix(a.cfg.webAddr, ":0") {
		a.log.Warn("web address taken (another agent?); the inspector listens on the next free port",
			zap.String("asked", a.cfg.webAddr), zap.String("web_addr", a.webAddr))
	}
	ins := &inspector{ring: a.rec, token: randomHex(16), upstream: a.httpUpstream}
	webHost, _, _ := net.SplitHostPort(a.cfg.webAddr)
	srv := &http.Server{
		Handler:           hostGuard(newInspectHandler(a, OpsHandler(a), ins), webHost, isLoopbackHost(webHost)),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          zap.NewStdLog(a.log.Named("web")),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	a.log.Info("inspection API listening", zap.String("web_addr", a.webAddr))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), webStopTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
	}, nil
}

// httpUpstream returns the HTTP endpoint named name, for replays.
func (a *Agent) httpUpstream(name string) (*config.EndpointSpec, func(context.Context, config.Upstream, bool) (halfConn, error), bool) {
	for _, ep := range a.eps.list {
		if ep.spec.Name == name && ep.spec.Kind == config.ProtoHTTP {
			return ep.spec, ep.fwd.dialer(), true
		}
	}
	return nil, nil, false
}

// listenWeb listens on addr or, while its port is taken, on each of the
// next tries ports (4040 → 4041 …). Errors are TG_9001 naming addr (and
// the last port tried).
func listenWeb(addr string, tries int) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	host, portStr, _ := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(portStr)
	tried := addr
	for i := 1; i <= tries && perr == nil && port != 0 && port+i <= 65535 && errors.Is(err, syscall.EADDRINUSE); i++ {
		tried = net.JoinHostPort(host, strconv.Itoa(port+i))
		var next net.Listener
		if next, err = net.Listen("tcp", tried); err == nil {
			return next, nil
		}
	}
	also := ""
	if tried != addr {
		also = " (and the ports up to " + tried + ")"
	}
	return nil, codes.NewError(codes.ListenFailed,
		"Cannot serve the inspection API on %s%s: %v. Pass --web-addr with another address, or --web-addr false to turn it off.",
		addr, also, unwrapOpError(err)).WithCause(err)
}

// unwrapOpError returns the innermost cause of a *net.OpError ("address
// already in use"), so messages do not repeat the address.
func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Err
		}
		return oe.Err
	}
	return err
}
