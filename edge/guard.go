package edge

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/limits"
)

// The edge's guard against hostile public clients (issue 12 §3, §4):
//
//   - every public connection (HTTPS, the plain-HTTP redirector, TCP
//     endpoints) is counted per client address (IPv4, or an IPv6 /64) and
//     in total; one past either cap is reset at accept, counted, and
//     logged at Warn at most guardLogRate times a second;
//   - failed basic-auth logins (per endpoint and client address), failed
//     agent authtokens and failed SSH logins (per client address) are
//     throttled: past a burst, that client waits for a refill before its
//     next attempt is even checked — 429 with Retry-After over HTTP, a
//     retryable TG_3241 for agents and SSH. A valid credential from
//     another address is never delayed; from the throttled address it
//     waits at most one refill period once the failures stop;
//   - all this state is bounded whatever clients send (package limits).

// GuardConfig sets the caps and throttles of public clients. Zero values
// take the documented defaults.
type GuardConfig struct {
	// MaxConns caps the public connections held at once, over the HTTPS,
	// HTTP and TCP endpoint listeners. Default limits.DefaultMaxConns
	// (8192); -1 = no cap.
	MaxConns int
	// MaxConnsPerIP caps the public connections of one client address (an
	// IPv6 client by its IPv6Prefix). Default limits.DefaultMaxConnsPerIP
	// (1024); -1 = no cap.
	MaxConnsPerIP int
	// IPv6Prefix is the prefix length an IPv6 client is keyed by for caps
	// and throttles, 1..64. Default 64.
	IPv6Prefix int
	// MaxAddresses bounds the failure state kept (client addresses times
	// scopes). Default limits.DefaultTableEntries (65536).
	MaxAddresses int64
	// BasicAuth is the failure budget of one client on one endpoint with
	// basic auth. Default 10 failures, then one every second.
	BasicAuth limits.Policy
	// AgentAuth is the failure budget of one client address presenting
	// authtokens. Default 10 failures, then one every 6 seconds.
	AgentAuth limits.Policy
	// SSHAuth is the failure budget of one client address logging in over
	// SSH (a connection that offered keys and none was accepted). Default
	// 10 failures, then one every 6 seconds.
	SSHAuth limits.Policy
	// Now is the throttles' clock; default time.Now (tests inject one).
	Now func() time.Time
}

// Guard defaults.
var (
	defaultBasicAuthPolicy = limits.Policy{Burst: 10, Every: time.Second}
	defaultAgentAuthPolicy = limits.Policy{Burst: 10, Every: 6 * time.Second}
	defaultSSHAuthPolicy   = limits.Policy{Burst: 10, Every: 6 * time.Second}
)

// guardLogRate bounds the Warn lines of refused connections; dropped
// lines are counted.
const (
	guardLogRate  = 1 // per second
	guardLogBurst = 5
)

// guard holds the edge's per-client state: connection caps and failure
// throttles.
type guard struct {
	log       *zap.Logger
	conns     *limits.Conns
	table     *limits.Table
	basicAuth *limits.Throttle
	agentAuth *limits.Throttle
	sshAuth   *limits.Throttle

	logLimit   *rate.Limiter
	logDropped atomic.Int64
}

func newGuard(cfg GuardConfig, log *zap.Logger) (*guard, error) {
	conns, err := limits.NewConns(limits.ConnsConfig{Total: cfg.MaxConns, PerIP: cfg.MaxConnsPerIP, IPv6Prefix: cfg.IPv6Prefix})
	if err != nil {
		return nil, err
	}
	table, err := limits.NewTable(limits.TableConfig{Entries: cfg.MaxAddresses})
	if err != nil {
		return nil, err
	}
	g := &guard{log: log, conns: conns, table: table, logLimit: rate.NewLimiter(guardLogRate, guardLogBurst)}
	for _, t := range []struct {
		th   **limits.Throttle
		name string
		p    limits.Policy
		def  limits.Policy
	}{
		{&g.basicAuth, "basic_auth", cfg.BasicAuth, defaultBasicAuthPolicy},
		{&g.agentAuth, "agent_auth", cfg.AgentAuth, defaultAgentAuthPolicy},
		{&g.sshAuth, "ssh_auth", cfg.SSHAuth, defaultSSHAuthPolicy},
	} {
		if t.p == (limits.Policy{}) {
			t.p = t.def
		}
		if *t.th, err = limits.NewThrottle(table, limits.ThrottleConfig{Name: t.name, Policy: t.p, IPv6Prefix: cfg.IPv6Prefix, Now: cfg.Now}); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// close stops the failure table's goroutines.
func (g *guard) close() { g.table.Close() }

// admitConn counts a new public connection on listener what ("https",
// "http", "tcp"); past a cap it resets c and returns false. Otherwise the
// caller calls release once the connection has ended. A nil guard admits
// everything.
func (g *guard) admitConn(c net.Conn, what string) (release func(), ok bool) {
	if g == nil {
		return func() {}, true
	}
	addr := PeerAddr(c.RemoteAddr()).Addr()
	k, err := g.conns.Acquire(addr)
	if err != nil {
		refuse(c)
		reason := "per_ip"
		if errors.Is(err, limits.ErrTotalCap) {
			reason = "total"
		}
		if g.allowLog() {
			g.log.Warn("public connection refused: too many connections", zap.String("listener", what),
				zap.String("reason", reason), zap.Stringer("remote_addr", addr))
		}
		return nil, false
	}
	return sync.OnceFunc(func() { g.conns.Release(k) }), true
}

// allowLog reports whether a refusal may be logged at Warn now: at most
// guardLogRate lines a second; the others are counted. Call it before
// building the fields, so a refusal that is not logged allocates nothing.
func (g *guard) allowLog() bool {
	if g.logLimit.Allow() {
		return true
	}
	g.logDropped.Add(1)
	return false
}

// limitListener wraps ln so that connections past a cap are reset at
// accept and the others release their place on Close (the plain-HTTP
// redirector, whose connections net/http serves).
func (g *guard) limitListener(ln net.Listener, what string) net.Listener {
	return &guardedListener{Listener: ln, g: g, what: what}
}

type guardedListener struct {
	net.Listener
	g    *guard
	what string
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if release, ok := l.g.admitConn(c, l.what); ok {
			return &guardedConn{Conn: c, release: release}, nil
		}
	}
}

type guardedConn struct {
	net.Conn
	release func()
}

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// retryAfterSeconds rounds a throttle's wait up to whole seconds, at
// least 1 (RFC 9110 §10.2.3: Retry-After is in seconds).
func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// agentAuthWait returns the retryable TG_3241 refusal when addr is
// throttled for failed authtokens, nil otherwise.
func (g *guard) agentAuthWait(addr netip.Addr) *codes.Error {
	wait := g.agentAuth.Wait("", addr)
	if wait <= 0 {
		return nil
	}
	secs := retryAfterSeconds(wait)
	if g.allowLog() {
		g.log.Warn("agent authentication throttled: too many failed authtokens from this address",
			zap.Stringer("remote_addr", addr), zap.Int("retry_after_s", secs), zap.String("code", string(codes.AuthThrottled)))
	}
	return codes.NewError(codes.AuthThrottled, "Too many failed authentications from your address. Retry in %d seconds with a valid authtoken.", secs)
}

// GuardCounts is a copy of the edge's connection-cap and throttle
// counters.
type GuardCounts struct {
	Conns       limits.ConnCounts
	Table       limits.TableCounts
	BasicAuth   limits.ThrottleCounts
	AgentAuth   limits.ThrottleCounts
	SSHAuth     limits.ThrottleCounts
	LogsDropped int64 // refusal Warn lines left out by the rate limit
}

// GuardCounts returns the connection-cap and throttle counters.
func (m *Metrics) GuardCounts() GuardCounts {
	g := m.e.guard
	return GuardCounts{Conns: g.conns.Counts(), Table: g.table.Counts(), BasicAuth: g.basicAuth.Counts(),
		AgentAuth: g.agentAuth.Counts(), SSHAuth: g.sshAuth.Counts(), LogsDropped: g.logDropped.Load()}
}

// SSHLoginThrottle returns the throttle of failed SSH logins, keyed by
// client address (sshserver.Config.Throttle).
func (e *Edge) SSHLoginThrottle() *limits.Throttle { return e.guard.sshAuth }
