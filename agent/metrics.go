package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/internal/opsserver"
)

// OpsHandler serves the agent's metrics and health checks: /metrics
// (Prometheus text format: the agent's sessions, endpoints, connections
// and bytes, and the Go runtime and process collectors), /healthz and
// /readyz (200 once a session is online and every endpoint is bound,
// else 503 saying what is missing). The local inspection API serves it
// too; `tollgate --metrics-addr` serves it on a listener of its own.
func OpsHandler(a *Agent) http.Handler { return opsHandler(a) }

func opsHandler(src statusSource) http.Handler {
	reg := opsserver.NewRegistry()
	reg.MustRegister(collector{src})
	return opsserver.Handler(reg, opsserver.Check{Name: "agent", Ready: func(context.Context) error { return ready(src) }})
}

// ready returns nil when src has a session online and every endpoint is
// bound on it, else what is missing.
func ready(src statusSource) error {
	st := src.Status()
	if st.State != SessionOnline {
		return fmt.Errorf("no agent session is online (%s)", st.State)
	}
	for _, ep := range src.Endpoints() {
		if ep.State != StateOnline {
			return errors.New("endpoint " + ep.Name + " is " + ep.State)
		}
	}
	return nil
}

var (
	descSessions = prometheus.NewDesc("tollgate_agent_sessions",
		"Agent sessions (HA legs) online, by region and transport.", []string{"region", "transport"}, nil)
	descLegs = prometheus.NewDesc("tollgate_agent_legs",
		"HA legs (connections to edges) by state.", []string{"state"}, nil)
	descLatency = prometheus.NewDesc("tollgate_agent_heartbeat_latency_seconds",
		"Last heartbeat round trip of the first online session.", nil, nil)
	descEndpoints = prometheus.NewDesc("tollgate_agent_endpoints",
		"Configured endpoints by kind and state.", []string{"endpoint_kind", "state"}, nil)
	descConns = prometheus.NewDesc("tollgate_agent_connections_total",
		"Proxy streams (public connections) the edge opened to the agent, by endpoint kind.", []string{"endpoint_kind"}, nil)
	descConnsOpen = prometheus.NewDesc("tollgate_agent_connections_open",
		"Proxy streams being forwarded to upstreams now, by endpoint kind.", []string{"endpoint_kind"}, nil)
	descBytes = prometheus.NewDesc("tollgate_agent_bytes_total",
		"Bytes forwarded from public clients to upstreams (in) and back (out), by endpoint kind.", []string{"endpoint_kind", "direction"}, nil)
)

// agentKinds are the endpoint_kind values: bind protos, http folded into
// https (the edge serves both over HTTPS).
var agentKinds = []string{"https", "tls", "tcp"}

func agentKind(proto string) string {
	if proto == "http" {
		return "https"
	}
	return proto
}

// collector is the agent's Prometheus collector.
type collector struct{ src statusSource }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessions, descLegs, descLatency, descEndpoints, descConns, descConnsOpen, descBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	st := c.src.Status()
	type rt struct{ region, transport string }
	sessions := map[rt]int{}
	legs := map[string]int{SessionConnecting: 0, SessionOnline: 0, SessionReconnecting: 0, LegIdle: 0}
	for _, l := range st.Legs {
		legs[l.State]++
		if l.State == SessionOnline {
			sessions[rt{l.Region, l.Transport}]++
		}
	}
	for k, n := range sessions {
		gauge(descSessions, float64(n), k.region, k.transport)
	}
	for s, n := range legs {
		gauge(descLegs, float64(n), s)
	}
	gauge(descLatency, st.Latency.Seconds())
	type ks struct{ kind, state string }
	eps := map[ks]int{}
	var conns, open, in, out = map[string]int64{}, map[string]int64{}, map[string]int64{}, map[string]int64{}
	for _, k := range agentKinds {
		conns[k], open[k], in[k], out[k] = 0, 0, 0, 0
	}
	for _, ep := range c.src.Endpoints() {
		k := agentKind(ep.Proto)
		eps[ks{k, ep.State}]++
		conns[k] += ep.ConnsTotal
		open[k] += ep.ConnsOpen
		in[k] += ep.BytesIn
		out[k] += ep.BytesOut
	}
	for k, n := range eps {
		gauge(descEndpoints, float64(n), k.kind, k.state)
	}
	for k := range conns {
		counter(descConns, conns[k], k)
		gauge(descConnsOpen, float64(open[k]), k)
		counter(descBytes, in[k], k, "in")
		counter(descBytes, out[k], k, "out")
	}
}
