package agent

import (
	"time"
)

// EventKind names something the user should see.
type EventKind string

// Event kinds passed to Config.OnEvent.
const (
	// EventConnected: a session authenticated and every endpoint is bound
	// (again, after a reconnect).
	EventConnected EventKind = "connected"
	// EventDisconnected: the session ended; the agent reconnects after
	// Delay. Err says why.
	EventDisconnected EventKind = "disconnected"
	// EventEndpointStopped: the edge stopped Endpoint (StopTunnel) with
	// Message and Code; the endpoint is not re-bound.
	EventEndpointStopped EventKind = "endpoint_stopped"
	// EventStopRequested: the edge asked the agent to stop; Run returns nil.
	EventStopRequested EventKind = "stop_requested"
	// EventRestartRequested: the edge asked the agent to restart; it
	// reconnects with a new session.
	EventRestartRequested EventKind = "restart_requested"
)

// Event is one thing that happened to the agent; fields that do not apply
// to Kind are zero.
type Event struct {
	Kind     EventKind
	Endpoint string        // endpoint name
	Message  string        // the edge's message
	Code     string        // the edge's error code (TG_nnn), if any
	Err      error         // cause of a disconnect
	Delay    time.Duration // wait before the next connection attempt
}

// Endpoint states reported in EndpointStatus.State.
const (
	StateStarting     = "starting"     // not bound yet
	StateOnline       = "online"       // bound on the current session
	StateReconnecting = "reconnecting" // bound before; the session is being re-established
	StateStopped      = "stopped"      // stopped by the edge; see StopMessage
)

// EndpointStatus is a snapshot of one endpoint.
type EndpointStatus struct {
	Name      string // configured name
	Proto     string // bind proto: http, https, tcp or tls
	URL       string // the URL asked for; "" = edge's choice
	PublicURL string // the URL the edge returned; "" until bound
	Upstream  string // e.g. http://localhost:8080
	State     string // StateStarting, StateOnline, StateReconnecting or StateStopped
	BindID    string // bind Id the edge knows the endpoint by
	TunnelID  string // the edge's endpoint ID (ep_...), when it sent one

	StopMessage string // the edge's StopTunnel message
	StopCode    string // the edge's StopTunnel code

	ConnsTotal int64 // proxy streams accepted since start
	ConnsOpen  int64 // proxy streams being forwarded now
	BytesIn    int64 // bytes from public clients to the upstream
	BytesOut   int64 // bytes from the upstream to public clients
}

// Status is a snapshot of the agent session.
type Status struct {
	State       string        // "connecting", "online", "reconnecting" or "stopped"
	SessionID   string        // the edge's agent session ID (ts_...)
	ClientID    string        // ClientId the edge assigned
	Region      string        // region the edge serves
	Transport   string        // "quic" or "tcp"; "" when not connected
	ServerAddr  string        // edge address in use
	Latency     time.Duration // last heartbeat round trip
	ConnectedAt time.Time     // when the current session authenticated
	Version     string        // agent version
}

// Session states reported in Status.State.
const (
	SessionConnecting   = "connecting"
	SessionOnline       = "online"
	SessionReconnecting = "reconnecting"
	SessionStopped      = "stopped"
)
