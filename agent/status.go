package agent

import (
	"time"
)

// EventKind names something the user should see.
type EventKind string

// Event kinds passed to Config.OnEvent.
const (
	// EventConnected: a leg's session authenticated and its endpoints are
	// bound (again, after a reconnect). Leg, EdgeID, ServerAddr and
	// SessionID say which; Legs counts the online legs.
	EventConnected EventKind = "connected"
	// EventDisconnected: a leg's session ended; the leg reconnects after
	// Delay. Err says why; Legs counts the legs still online, which keep
	// serving.
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

	Leg        int    // the leg (0..HAConnections-1) of a connect or disconnect
	Legs       int    // legs online after the event
	EdgeID     string // the edge a leg connected to, when it names itself
	ServerAddr string // the address a leg connected to
	SessionID  string // the session a leg connected with (ts_...)
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
	BindID    string // bind Id the edge knows the endpoint by, on every leg
	// Connections counts the legs the endpoint is bound on.
	Connections int
	TunnelID    string // the edge's endpoint ID (ep_...), when it sent one

	StopMessage string // the edge's StopTunnel message
	StopCode    string // the edge's StopTunnel code

	ConnsTotal int64 // proxy streams accepted since start
	ConnsOpen  int64 // proxy streams being forwarded now
	BytesIn    int64 // bytes from public clients to the upstream
	BytesOut   int64 // bytes from the upstream to public clients
}

// Status is a snapshot of the agent's sessions. The session fields are
// those of the first online leg (leg 0's while none is online); Legs has
// every leg.
type Status struct {
	State       string        // "connecting", "online" (a leg is), "reconnecting" or "stopped"
	SessionID   string        // the edge's agent session ID (ts_...)
	ClientID    string        // ClientId the edge assigned
	Region      string        // region the edge serves
	Transport   string        // "quic" or "tcp"; "" when not connected
	ServerAddr  string        // edge address in use
	Latency     time.Duration // last heartbeat round trip
	ConnectedAt time.Time     // when the current session authenticated
	Version     string        // agent version
	Connections int           // legs online
	RegionEdges int           // live edges of the region as an edge last listed them; 0 = none listed
	Legs        []LegStatus   // every leg, by number
}

// LegStatus is a snapshot of one leg: one of the agent's connections to an
// edge of its region (Config.HAConnections).
type LegStatus struct {
	Number      int           // 0..HAConnections-1, Auth's LegNumber
	State       string        // SessionConnecting, SessionOnline, SessionReconnecting or LegIdle
	SessionID   string        // the edge's agent session ID (ts_...) of the last session
	ClientID    string        // ClientId the edge assigned
	EdgeID      string        // the edge (ed_...), when it names itself
	Region      string        // region the edge serves
	Transport   string        // "quic" or "tcp"; "" when not connected
	ServerAddr  string        // edge address in use
	Latency     time.Duration // last heartbeat round trip
	ConnectedAt time.Time     // when the last session authenticated
}

// Session states reported in Status.State and LegStatus.State.
const (
	SessionConnecting   = "connecting"
	SessionOnline       = "online"
	SessionReconnecting = "reconnecting"
	SessionStopped      = "stopped"
	// LegIdle: the leg waits for an edge of its own; the region has fewer
	// live edges than legs, or its edges do not list their region.
	LegIdle = "idle"
)
