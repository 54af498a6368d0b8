package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/traffic"
)

// TrafficSink receives one traffic.Record per finished public HTTP request
// and per TCP/TLS endpoint connection (Deps.Traffic): the edge's access
// log, later the traffic events. Record is called from the goroutine that
// served the request; it must not block (drop and count instead) and gets
// its own copy of the record.
type TrafficSink interface {
	Record(r traffic.Record)
}

// Endpoint kinds, the endpoint_kind label.
const (
	kindHTTPS = iota
	kindTLS
	kindTCP
	numKinds
)

var kindNames = [numKinds]string{"https", "tls", "tcp"}

func kindOf(proto string) int {
	switch proto {
	case "tls":
		return kindTLS
	case "tcp":
		return kindTCP
	}
	return kindHTTPS
}

// Reasons of failed public TLS handshakes, the reason label of
// tollgate_edge_tls_handshake_failures_total.
const (
	tlsFailTimeout       = iota // no complete handshake within Config.HandshakeTimeout
	tlsFailClientClosed         // the client closed or reset the connection
	tlsFailNotTLS               // the first bytes were not a TLS handshake
	tlsFailVersion              // no version both sides allow (the name's minimum TLS version)
	tlsFailCipher               // no cipher suite both sides allow
	tlsFailNoCertificate        // no certificate for the name (no SNI, or a name the edge does not serve)
	tlsFailClientAlert          // the client aborted with an alert (e.g. it does not trust the certificate)
	tlsFailOther                // anything else
	numTLSFailures
)

var tlsFailureNames = [numTLSFailures]string{"timeout", "client_closed", "not_tls", "protocol_version",
	"no_shared_cipher", "no_certificate", "client_alert", "other"}

// certError marks an error of the CertSource, so that a failed handshake
// is counted as no_certificate.
type certError struct{ err error }

func (e *certError) Error() string { return e.err.Error() }
func (e *certError) Unwrap() error { return e.err }

// markCertErrors wraps getCert's errors in certError.
func markCertErrors(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := getCert(h)
		if err != nil {
			return nil, &certError{err}
		}
		return c, nil
	}
}

// tlsFailure classifies a failed server handshake. crypto/tls has typed
// errors for a record that is not TLS and for the peer's alerts only; a
// version or cipher mismatch is known by its message.
func tlsFailure(err error) int {
	var ce *certError
	var rh tls.RecordHeaderError
	var alert tls.AlertError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return tlsFailNoCertificate
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return tlsFailTimeout
	case errors.As(err, &rh):
		return tlsFailNotTLS
	case errors.As(err, &alert):
		return tlsFailClientAlert
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return tlsFailClientClosed
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "version"):
		return tlsFailVersion
	case strings.Contains(msg, "cipher"):
		return tlsFailCipher
	}
	return tlsFailOther
}

// Metrics is the edge's Prometheus collector (Edge.Metrics) and its
// traffic counters. It reads the counters the edge's parts keep (guard,
// IP gates, memory guard, HTTP proxy, edge-to-edge link, sessions)
// at scrape time, so that nothing is counted twice; the request,
// connection, byte and handshake counters are its own. Label values are
// bounded: kinds, status classes, reasons, the region and transports —
// never a host name, address or ID.
type Metrics struct {
	e    *Edge
	sink TrafficSink // nil: no records are made

	requests    [6]atomic.Int64 // by status class: none, 1xx … 5xx
	conns       [numKinds]atomic.Int64
	open        [numKinds]atomic.Int64 // tls and tcp; https is publicServer.httpConns
	bytesIn     [numKinds]atomic.Int64
	bytesOut    [numKinds]atomic.Int64
	tlsFailures [numTLSFailures]atomic.Int64
	serving     atomic.Bool // Serve runs with its listeners

	reqDur  *prometheus.HistogramVec
	connDur *prometheus.HistogramVec
	reqObs  prometheus.Observer           // https
	connObs [numKinds]prometheus.Observer // tls, tcp
}

func newMetrics(e *Edge, sink TrafficSink) *Metrics {
	m := &Metrics{e: e, sink: sink}
	m.reqDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tollgate_edge_request_duration_seconds",
		Help: "Time from a complete request head to the end of its response, HTTP requests of https endpoints.",
		// 1 ms … ~33 s
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"endpoint_kind"})
	m.connDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tollgate_edge_connection_duration_seconds",
		Help:    "Lifetime of TCP and TLS endpoint connections served.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10), // 10 ms … ~44 min
	}, []string{"endpoint_kind"})
	m.reqObs = m.reqDur.WithLabelValues(kindNames[kindHTTPS])
	for _, k := range []int{kindTLS, kindTCP} {
		m.connObs[k] = m.connDur.WithLabelValues(kindNames[k])
	}
	return m
}

// Metrics returns the edge's Prometheus collector, which also reports
// readiness (Metrics.Ready). Register it once.
func (e *Edge) Metrics() *Metrics { return e.prom }

// Ready returns nil when the edge serves: it holds a snapshot (from the
// control plane or its data dir), its listeners are up (Serve runs) and it
// is not draining. Otherwise the error says what is missing.
func (m *Metrics) Ready() error {
	e := m.e
	switch {
	case isClosed(e.stopping):
		return errors.New("draining: the edge is shutting down")
	case !m.serving.Load():
		return errors.New("listeners are not serving yet")
	case !e.snap.ready():
		return errors.New("no snapshot from the control plane yet (and none persisted in the data dir)")
	}
	return nil
}

// onRequest is httpproxy.Config.OnRequest.
func (m *Metrics) onRequest(info *httpproxy.RequestInfo) {
	cls := 0
	if info.Status >= 100 && info.Status <= 599 {
		cls = info.Status / 100
	}
	m.requests[cls].Add(1)
	m.bytesIn[kindHTTPS].Add(info.RequestBytes)
	m.bytesOut[kindHTTPS].Add(info.ResponseBytes)
	m.reqObs.Observe(info.Duration.Seconds())
	if m.sink == nil {
		return
	}
	ep, _ := info.Endpoint.(*Endpoint)
	decision := ipDecision(ep)
	if info.Code == codes.IPDenied {
		decision = traffic.IPPolicyDeny
	}
	r := traffic.Record{
		Type: traffic.HTTPRequestComplete, Start: info.Start.UTC(), Duration: info.Duration.Seconds(),
		Region: m.e.cfg.Region, EdgeID: m.e.cfg.EdgeID, EndpointKind: kindNames[kindHTTPS],
		ClientIP: info.RemoteAddr.Addr(), TLSVersion: traffic.TLSVersionName(info.TLSVersion), Host: info.Host,
		Method: info.Method, Path: info.Path, Proto: info.Proto, Status: info.Status, Code: string(info.Code),
		IPPolicy: decision, BytesIn: info.RequestBytes, BytesOut: info.ResponseBytes,
	}
	if ep != nil {
		r.AccountID, r.EndpointID, r.SessionID = ep.accountID, ep.id, ep.sessionID
	}
	m.sink.Record(r)
}

// ipDecision is the IP policy decision for a client ep admitted.
func ipDecision(ep *Endpoint) string {
	if ep != nil && ep.access != nil && (ep.access.static != nil || len(ep.access.policyIDs) > 0) {
		return traffic.IPPolicyAllow
	}
	return traffic.IPPolicyNone
}

// countedConn counts the bytes of a public TCP/TLS connection. Read and
// Write are each called by one goroutine of pipe; the counts are read
// after pipe returned.
type countedConn struct {
	halfCloser
	in, out int64
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.halfCloser.Read(p)
	c.in += int64(n)
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.halfCloser.Write(p)
	c.out += int64(n)
	return n, err
}

// rawStarted counts a TCP/TLS connection handed to ep's agent.
func (m *Metrics) rawStarted(kind int) {
	m.conns[kind].Add(1)
	m.open[kind].Add(1)
}

// rawEnded counts a TCP/TLS connection that rawStarted counted, and
// records it.
func (m *Metrics) rawEnded(c net.Conn, ep *Endpoint, kind int, start time.Time, in, out int64) {
	m.open[kind].Add(-1)
	m.bytesIn[kind].Add(in)
	m.bytesOut[kind].Add(out)
	d := time.Since(start)
	m.connObs[kind].Observe(d.Seconds())
	m.recordRaw(c, ep, kind, start, d, ipDecision(ep), in, out)
}

// rawRefused records a TCP/TLS connection refused by IP policy.
func (m *Metrics) rawRefused(c net.Conn, ep *Endpoint) {
	m.recordRaw(c, ep, kindOf(ep.proto), time.Now(), 0, traffic.IPPolicyDeny, 0, 0)
}

func (m *Metrics) recordRaw(c net.Conn, ep *Endpoint, kind int, start time.Time, d time.Duration, decision string, in, out int64) {
	if m.sink == nil {
		return
	}
	r := traffic.Record{
		Type: traffic.TCPConnectionClosed, Start: start.UTC(), Duration: d.Seconds(),
		Region: m.e.cfg.Region, EdgeID: m.e.cfg.EdgeID, EndpointKind: kindNames[kind],
		ClientIP: PeerAddr(c.RemoteAddr()).Addr(), Host: ep.key, IPPolicy: decision, BytesIn: in, BytesOut: out,
		AccountID: ep.accountID, EndpointID: ep.id, SessionID: ep.sessionID,
	}
	if tc, ok := c.(*tls.Conn); ok {
		r.TLSVersion = traffic.TLSVersionName(tc.ConnectionState().Version)
	}
	m.sink.Record(r)
}

// The descriptions of the metrics Collect reads from the edge's parts.
var (
	descRequests = prometheus.NewDesc("tollgate_edge_requests_total",
		"HTTP requests of public clients that ended, by endpoint kind and status class (none: no status was sent).",
		[]string{"endpoint_kind", "status_class"}, nil)
	descConns = prometheus.NewDesc("tollgate_edge_connections_total",
		"Public connections handed to an endpoint: HTTPS connections after their TLS handshake, TLS and TCP connections after routing and IP policy.",
		[]string{"endpoint_kind"}, nil)
	descOpen = prometheus.NewDesc("tollgate_edge_connections_open",
		"Public connections being served now.", []string{"endpoint_kind"}, nil)
	descBytes = prometheus.NewDesc("tollgate_edge_bytes_total",
		"Bytes from (in) and to (out) public clients: request bodies and responses of HTTP requests, every byte of TCP and TLS connections; counted when the request or connection ends.",
		[]string{"endpoint_kind", "direction"}, nil)
	descTLSFailures = prometheus.NewDesc("tollgate_edge_tls_handshake_failures_total",
		"Public TLS handshakes that failed, by reason.", []string{"reason"}, nil)
	descRefusals = prometheus.NewDesc("tollgate_edge_refusals_total",
		"Connections, sessions, binds and requests the edge refused, by reason.", []string{"reason"}, nil)
	descDryRun = prometheus.NewDesc("tollgate_edge_ip_restriction_dry_run_total",
		"Clients an unenforced IP restriction would have refused and let through.", nil, nil)
	descSessions = prometheus.NewDesc("tollgate_edge_agent_sessions",
		"Agent sessions online on this edge (SSH tunnels included), by region and transport.", []string{"region", "transport"}, nil)
	descEndpoints = prometheus.NewDesc("tollgate_edge_endpoints",
		"Endpoints bound on this edge, by region and endpoint kind.", []string{"region", "endpoint_kind"}, nil)
	descRevision = prometheus.NewDesc("tollgate_edge_snapshot_revision",
		"Revision of the snapshot the edge serves from (0: none yet).", nil, nil)
	descReady = prometheus.NewDesc("tollgate_edge_ready",
		"1 when the edge is ready (/readyz answers 200), else 0.", nil, nil)
	descMemLimit = prometheus.NewDesc("tollgate_edge_memory_guard_limit_bytes",
		"The memory limit the memory guard works to (--memory-limit); 0: the guard is off.", nil, nil)
	descMemLive = prometheus.NewDesc("tollgate_edge_memory_guard_live_heap_bytes",
		"Live heap at the memory guard's last sample.", nil, nil)
	descMemRefusing = prometheus.NewDesc("tollgate_edge_memory_guard_refusing",
		"1 while the memory guard refuses new connections, sessions and requests.", nil, nil)
	descTracked = prometheus.NewDesc("tollgate_edge_tracked_addresses",
		"Client addresses whose failed logins the edge remembers now (bounded by --max-tracked-addrs).", nil, nil)
	descTrackedEvicted = prometheus.NewDesc("tollgate_edge_tracked_addresses_evicted_total",
		"Remembered client addresses evicted to make room.", nil, nil)
	descLogDropped = prometheus.NewDesc("tollgate_edge_log_lines_dropped_total",
		"Log lines left out by a rate limit, by log.", []string{"log"}, nil)
	descRetired = prometheus.NewDesc("tollgate_edge_proxy_streams_retired_total",
		"Pooled proxy streams retired because the agent sent bytes no request asked for.", nil, nil)
	descWaiting = prometheus.NewDesc("tollgate_edge_responses_waiting_for_client",
		"HTTP/1.1 responses and HTTP/2 connections waiting, holding no buffer, for a client whose socket is full.", nil, nil)
	descAgentIPClosed = prometheus.NewDesc("tollgate_edge_agent_ip_sessions_closed_total",
		"Live agent and SSH sessions closed because a new agent IP restriction refuses them.", nil, nil)
	descPoolMembersDown = prometheus.NewDesc("tollgate_edge_pool_members_out_of_rotation_total",
		"Times a member of an endpoint pool was taken out of rotation because its agent did not answer.", nil, nil)
	descPeerForwards = prometheus.NewDesc("tollgate_edge_peer_forwards_total",
		"Public connections this edge tried to forward to a sibling edge, by result.", []string{"result"}, nil)
	descPeerReceived = prometheus.NewDesc("tollgate_edge_peer_received_total",
		"Connections sibling edges forwarded to this edge, by result.", []string{"result"}, nil)
	descPeerRefused = prometheus.NewDesc("tollgate_edge_peer_link_refusals_total",
		"Edge-to-edge links refused, by reason.", []string{"reason"}, nil)
	descPeerInbound = prometheus.NewDesc("tollgate_edge_peer_links_inbound",
		"Authenticated edge-to-edge links sibling edges hold to this edge now.", nil, nil)
)

// refusalReasons are the reason labels of tollgate_edge_refusals_total, in
// the order refusalCounts returns them.
var refusalReasons = []string{
	"ip_restriction",       // public connection or request: the account's endpoints IP restriction (TG_3205)
	"ip_policy",            // public connection or request: the endpoint's own IP policy (TG_3205)
	"agent_ip_restriction", // agent or SSH session: the account's agent IP restriction (TG_115)
	"basic_auth",           // request answered 401 (TG_3207)
	"basic_auth_throttle",  // request answered 429 after failed basic-auth logins (TG_3240)
	"agent_auth",           // agent session with an authtoken that failed
	"agent_auth_throttle",  // agent session refused after failed authtokens (TG_3241)
	"ssh_auth_throttle",    // SSH login refused after failed logins (TG_3241)
	"bind_acl",             // bind refused by the credential's bind ACL (TG_619)
	"conn_cap",             // public connection past --max-conns
	"conn_cap_per_ip",      // public connection past --max-conns-per-ip
	"memory_guard",         // connection, session or request refused while memory is short (TG_2741)
	"rapid_reset",          // HTTP/2 connection sent GOAWAY for resetting streams too fast
}

func (m *Metrics) refusalCounts() []int64 {
	e := m.e
	ip, g, pc := m.IPPolicyCounts(), m.GuardCounts(), e.proxy.Counts()
	return []int64{
		ip.EndpointsRefused, ip.EndpointRefused, ip.AgentRefused, ip.BasicAuthFailed,
		g.BasicAuth.Refused, e.metrics.authFailures.Load(), g.AgentAuth.Refused, g.SSHAuth.Refused,
		e.binds.aclRefused.Load(), g.Conns.RefusedTotal, g.Conns.RefusedPerIP, e.mem.refused.Load(), pc.Calmed,
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descConns, descOpen, descBytes, descTLSFailures, descRefusals,
		descDryRun, descSessions, descEndpoints, descRevision, descReady, descMemLimit, descMemLive, descMemRefusing,
		descTracked, descTrackedEvicted, descLogDropped, descRetired, descWaiting, descAgentIPClosed, descPoolMembersDown, descPeerForwards,
		descPeerReceived, descPeerRefused, descPeerInbound} {
		ch <- d
	}
	m.reqDur.Describe(ch)
	m.connDur.Describe(ch)
}

// Collect implements prometheus.Collector. It lists the edge's sessions
// once per call (O(sessions)).
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	e := m.e
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for i := range m.requests {
		counter(descRequests, m.requests[i].Load(), kindNames[kindHTTPS], statusClassNames[i])
	}
	for k := range numKinds {
		counter(descConns, m.conns[k].Load(), kindNames[k])
		counter(descBytes, m.bytesIn[k].Load(), kindNames[k], "in")
		counter(descBytes, m.bytesOut[k].Load(), kindNames[k], "out")
		open := m.open[k].Load()
		if k == kindHTTPS {
			open = e.public.httpConns.Load()
		}
		gauge(descOpen, float64(open), kindNames[k])
	}
	for i := range m.tlsFailures {
		counter(descTLSFailures, m.tlsFailures[i].Load(), tlsFailureNames[i])
	}
	for i, v := range m.refusalCounts() {
		counter(descRefusals, v, refusalReasons[i])
	}
	ip, g := m.IPPolicyCounts(), m.GuardCounts()
	counter(descDryRun, ip.DryRun)

	sessions := map[string]int{"tcp": 0, "quic": 0, "ssh": 0}
	endpoints := map[string]int{"https": 0, "tls": 0, "tcp": 0}
	for _, s := range e.Sessions() {
		sessions[s.Transport]++
		for _, ep := range s.Endpoints {
			endpoints[kindNames[kindOf(ep.Proto)]]++
		}
	}
	for t, n := range sessions {
		gauge(descSessions, float64(n), e.cfg.Region, t)
	}
	for k, n := range endpoints {
		gauge(descEndpoints, float64(n), e.cfg.Region, k)
	}
	gauge(descRevision, float64(e.snap.Load().Revision()))
	ready := 0.0
	if m.Ready() == nil {
		ready = 1
	}
	gauge(descReady, ready)
	mg := m.MemoryGuard()
	gauge(descMemLimit, float64(mg.Limit))
	gauge(descMemLive, float64(mg.LiveHeap))
	refusing := 0.0
	if mg.Refusing {
		refusing = 1
	}
	gauge(descMemRefusing, refusing)
	gauge(descTracked, float64(g.Table.Entries))
	counter(descTrackedEvicted, int64(g.Table.Evicted))
	counter(descLogDropped, g.LogsDropped, "guard")
	counter(descLogDropped, ip.DryRunLogDropped, "ip_dry_run")
	pc := e.proxy.Counts()
	counter(descRetired, pc.Unsolicited)
	gauge(descWaiting, float64(pc.WaitingForClient))
	counter(descAgentIPClosed, e.metrics.agentIPClosed.Load())
	counter(descPoolMembersDown, e.metrics.poolMembersDown.Load())
	var pm *peerMetrics
	var inbound int64
	if e.peers != nil {
		pm, inbound = &e.peers.metrics, e.peers.inbound.Load()
	} else {
		pm = &peerMetrics{}
	}
	for _, r := range []struct {
		result string
		v      *atomic.Int64
	}{{"forwarded", &pm.forwarded}, {"not_here", &pm.notHere}, {"refused_there", &pm.refusedThere},
		{"link_failed", &pm.linkFailed}, {"unforwarded", &pm.unforwarded}} {
		counter(descPeerForwards, r.v.Load(), r.result)
	}
	counter(descPeerReceived, pm.received.Load(), "served")
	counter(descPeerReceived, pm.receivedNoHit.Load(), "no_route")
	counter(descPeerRefused, pm.authFailed.Load(), "auth")
	counter(descPeerRefused, pm.authThrottled.Load(), "throttled")
	gauge(descPeerInbound, float64(inbound))
	m.reqDur.Collect(ch)
	m.connDur.Collect(ch)
}

var statusClassNames = [6]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}
