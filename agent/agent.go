package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
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

// Agent keeps one agent session to an edge and forwards its endpoints'
// traffic to their upstreams. Create it with New and start it with Run.
type Agent struct {
	cfg   *resolved
	log   *zap.Logger
	eps   []*endpoint
	ready chan struct{}

	readyOnce      sync.Once
	running        atomic.Bool
	allStopped     chan struct{}
	allStoppedOnce sync.Once
	routes         atomic.Pointer[map[string]*endpoint] // bind ID → endpoint

	// Replaceable in tests.
	dial          func(ctx context.Context, transport, addr string) (tunnel.Mux, error)
	backoff       backoffer
	fallbackDelay time.Duration
	// preferredRetry is the first delay of returnToPreferred (prefer.go);
	// 0 = never return.
	preferredRetry time.Duration
	probe          regions.Measure // measures a region's edge (region.go)

	mu       sync.Mutex // guards the fields below
	status   Status
	clientID string
	cookie   string
	sess     *tunnel.ClientSession // current session; nil between sessions
	webAddr  string                // inspection API address once listening
	hostname string
}

// endpoint is one configured endpoint and its bind state.
type endpoint struct {
	spec    *config.EndpointSpec
	opts    json.RawMessage // Bind.Opts; holds passwords: never log
	fwd     *forwarder
	metrics counters

	mu        sync.Mutex // guards the fields below
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
		ready:          make(chan struct{}),
		allStopped:     make(chan struct{}),
		fallbackDelay:  FallbackDelay,
		preferredRetry: PreferredRetry,
		status:         Status{State: SessionConnecting, ServerAddr: r.ServerAddr, Version: r.Version},
	}
	a.dial = a.dialEdge
	a.probe = a.tlsHandshakeTime
	for _, spec := range r.endpoints {
		opts, err := bindOpts(spec)
		if err != nil {
			return nil, fmt.Errorf("encoding options of endpoint %q: %w", spec.Name, err)
		}
		ep := &endpoint{spec: spec, opts: opts, state: StateStarting}
		ep.fwd = &forwarder{spec: spec, log: logger, metrics: &ep.metrics}
		a.eps = append(a.eps, ep)
	}
	a.routes.Store(&map[string]*endpoint{})
	return a, nil
}

// Ready is closed once every endpoint has been bound for the first time
// (right after Auth when there are none). It is never closed if Run fails
// first.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Transport returns the transport of the current session, "quic" or
// "tcp"; "" when not connected.
func (a *Agent) Transport() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status.Transport
}

// WebAddr returns the address the inspection API listens on, once Run has
// opened it; "" before, or when it is disabled.
func (a *Agent) WebAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.webAddr
}

// Status returns a snapshot of the session.
func (a *Agent) Status() Status {
	a.mu.Lock()
	st, sess := a.status, a.sess
	a.mu.Unlock()
	if sess != nil {
		st.Latency = sess.Latency()
	}
	return st
}

// Endpoints returns a snapshot of every endpoint, in configuration order.
func (a *Agent) Endpoints() []EndpointStatus {
	out := make([]EndpointStatus, 0, len(a.eps))
	for _, ep := range a.eps {
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
		TunnelID:    ep.tunnelID,
		StopMessage: ep.stopMsg,
		StopCode:    ep.stopCode,
		ConnsTotal:  ep.metrics.connsTotal.Load(),
		ConnsOpen:   ep.metrics.connsOpen.Load(),
		BytesIn:     ep.metrics.bytesIn.Load(),
		BytesOut:    ep.metrics.bytesOut.Load(),
	}
}

// Run connects to the edge, binds every endpoint and forwards traffic
// until ctx ends, the edge asks the agent to stop, or a permanent error
// occurs. A dropped connection is re-established with exponential backoff
// and jitter, re-using the session's ClientId and Cookie and each
// endpoint's bind Id and Token so public URLs stay the same.
//
// Run returns nil when ctx ends (after unbinding and closing the session)
// or when the edge sent Stop. It returns a *codes.Error for a permanent
// refusal (authtoken rejected, a bind refused, every endpoint stopped by
// the edge) carrying the edge's code and message, TG_9001 when the
// inspection API cannot listen, and ErrAlreadyRunning on a second call.
// Every goroutine Run starts has ended when it returns.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer a.setState(SessionStopped)

	// Forwarded connections outlive a session only until Run returns.
	fwdCtx, stopForwarding := context.WithCancel(context.Background())
	var fwdWG sync.WaitGroup
	defer func() {
		stopForwarding()
		fwdWG.Wait()
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

	bo := a.backoff
	if bo == nil {
		bo = &tunnel.Backoff{}
	}
	addr := a.cfg.ServerAddr
	redirected := false
	var next *conn // a session that replaced the previous one (prefer.go)
	for {
		var c *conn
		var err error
		if next != nil {
			c, next = next, nil
		} else {
			c, err = a.connect(ctx, addr)
		}
		if err == nil {
			if next := a.regionRedirect(ctx, c.resp, addr); next != "" && !redirected {
				a.log.Info("reconnecting to the edge of the configured region",
					zap.String("region", a.cfg.Region), zap.String("server_addr", next))
				redirected, addr = true, next
				c.close()
				continue
			}
			a.sessionStarted(c, addr)
			if err = a.bindAll(ctx, c); err != nil {
				a.sessionEnded()
				c.close()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isPermanent(err) || tunnel.IsPermanent(err) {
				return userError(err)
			}
			if !a.wait(ctx, bo, err) {
				return nil
			}
			continue
		}

		bo.Reset()
		a.emit(Event{Kind: EventConnected})
		replaced, end := a.serve(ctx, c, addr, fwdCtx, &fwdWG)
		a.sessionEnded()
		switch {
		case replaced != nil:
			c.close()
			a.log.Info("the preferred transport works again; moved the session to it",
				zap.String("transport", replaced.transport), zap.String("from", c.transport))
			next = replaced
			continue
		case ctx.Err() != nil:
			a.shutdown(c)
			return nil
		case errors.Is(end, tunnel.ErrStopRequested):
			c.close()
			a.log.Info("the edge asked the agent to stop")
			return nil
		case errors.Is(end, tunnel.ErrRestartRequested):
			c.close()
			a.log.Info("the edge asked the agent to restart; reconnecting with a new session")
			a.forgetSession()
			continue
		case errors.Is(end, errAllStopped):
			a.shutdown(c)
			return a.stoppedError()
		case errors.Is(end, tunnel.ErrGoingAway):
			// The edge drains for a restart: its successor (or a sibling)
			// is expected at once, so reconnect without a delay; the
			// backoff (reset above) paces the attempts after a failure.
			c.close()
			a.log.Info("the edge is going away; reconnecting now", zap.Error(end))
			a.emit(Event{Kind: EventDisconnected, Err: end})
			continue
		}
		c.close()
		if !a.wait(ctx, bo, end) {
			return nil
		}
	}
}

// startWeb opens the inspection API listener and serves it; the returned
// func stops it.
func (a *Agent) startWeb() (func(), error) {
	ln, err := net.Listen("tcp", a.cfg.webAddr)
	if err != nil {
		return nil, codes.NewError(codes.ListenFailed,
			"Cannot serve the inspection API on %s: %v. Pass --web-addr with another address, or --web-addr false to turn it off.",
			a.cfg.webAddr, unwrapOpError(err)).WithCause(err)
	}
	a.mu.Lock()
	a.webAddr = ln.Addr().String()
	a.mu.Unlock()
	srv := &http.Server{
		Handler:           newInspectHandler(a),
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
