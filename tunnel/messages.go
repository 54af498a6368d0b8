package tunnel

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"go.uber.org/zap/zapcore"
)

// StreamType is the 4-byte big-endian value that starts every stream and
// says what the stream carries (docs/agent-protocol.md#stream-types).
type StreamType uint32

// Stream types. The numbers are the wire protocol's and never change.
const (
	StreamAuth             StreamType = 0          // agent→edge RPC: Auth → AuthResp
	StreamBind             StreamType = 1          // agent→edge RPC: Bind → BindResp
	StreamUnbind           StreamType = 2          // agent→edge RPC: Unbind → UnbindResp
	StreamProxy            StreamType = 3          // edge→agent: ProxyHeader, then raw bytes
	StreamRestart          StreamType = 4          // edge→agent RPC: Restart → RestartResp
	StreamStop             StreamType = 5          // edge→agent RPC: Stop → StopResp
	StreamUpdate           StreamType = 6          // edge→agent RPC: Update → UpdateResp
	StreamStartLabeled     StreamType = 7          // agent→edge RPC: StartTunnelWithLabel → StartTunnelWithLabelResp
	StreamSrvInfo          StreamType = 8          // agent→edge RPC: SrvInfo → SrvInfoResp
	StreamStopTunnel       StreamType = 9          // edge→agent: StopTunnel, no reply
	StreamPatchTunnelState StreamType = 10         // agent→edge RPC: PatchTunnelState → PatchTunnelStateResp
	StreamAgentMetrics     StreamType = 11         // agent→edge; never enabled by this package
	StreamHeartbeat        StreamType = 0xFFFFFFFF // either way: 4-byte beats echoed by the peer
)

// String returns the stream type's name, or its number when unknown.
func (t StreamType) String() string {
	switch t {
	case StreamAuth:
		return "auth"
	case StreamBind:
		return "bind"
	case StreamUnbind:
		return "unbind"
	case StreamProxy:
		return "proxy"
	case StreamRestart:
		return "restart"
	case StreamStop:
		return "stop"
	case StreamUpdate:
		return "update"
	case StreamStartLabeled:
		return "start_labeled"
	case StreamSrvInfo:
		return "srv_info"
	case StreamStopTunnel:
		return "stop_tunnel"
	case StreamPatchTunnelState:
		return "patch_tunnel_state"
	case StreamAgentMetrics:
		return "agent_metrics"
	case StreamHeartbeat:
		return "heartbeat"
	}
	return "type_" + strconv.FormatUint(uint64(t), 10)
}

// ProtocolVersions are the RPC protocol versions an agent offers in
// Auth.Version, in order of preference; ProtocolVersion is the one an edge
// answers with.
var ProtocolVersions = []string{"3", "2"}

// ProtocolVersion is the version an edge picks in AuthResp.Version.
const ProtocolVersion = "3"

// redacted is what a Secret prints as.
const redacted = "[REDACTED]"

// Secret is a string that never prints: String, Format (every verb,
// including %#v) and zap give "[REDACTED]" (or "" when empty). It marshals
// to JSON as the plain string because the wire needs it; use Reveal to read
// it on purpose.
type Secret string

// String returns "[REDACTED]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// Format implements fmt.Formatter so that no verb prints the secret.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// Reveal returns the secret in plain text.
func (s Secret) Reveal() string { return string(s) }

// Auth is the first RPC of a session (stream type 0): the agent presents
// its authtoken and capabilities.
type Auth struct {
	Version  []string // protocol versions offered, in order of preference
	ClientID string   `json:"ClientId"` // previous session's ID on reconnect, else ""
	Extra    AuthExtra
}

// MarshalLogObject logs the message without its secrets.
func (a *Auth) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("client_id", a.ClientID)
	enc.AddString("os", a.Extra.OS)
	enc.AddString("arch", a.Extra.Arch)
	enc.AddString("version", a.Extra.Version)
	enc.AddString("client_type", a.Extra.ClientType)
	enc.AddString("user_agent", a.Extra.UserAgent)
	enc.AddBool("authtoken_set", a.Extra.Authtoken != "")
	enc.AddBool("cookie_set", a.Extra.Cookie != "")
	enc.AddDuration("heartbeat_interval", time.Duration(a.Extra.HeartbeatInterval))
	enc.AddDuration("heartbeat_tolerance", time.Duration(a.Extra.HeartbeatTolerance))
	enc.AddUint32("leg_number", a.Extra.LegNumber)
	return nil
}

// AuthExtra is the body of Auth. The three *UnsupportedError fields say
// whether the agent executes a command the edge may send: nil = the agent
// is too old (unsupported), "" = supported, any other text = unsupported,
// with the text saying why.
type AuthExtra struct {
	OS                 string
	Arch               string
	Authtoken          Secret
	Version            string
	Hostname           string
	UserAgent          string
	Metadata           string
	Cookie             string // opaque value from a previous AuthResp, to resume
	HeartbeatInterval  int64  // ns; how often the agent sends heartbeats
	HeartbeatTolerance int64  // ns; how long the agent waits for an echo
	Fingerprint        *Fingerprint

	UpdateUnsupportedError  *string
	StopUnsupportedError    *string
	RestartUnsupportedError *string

	ProxyType       string
	MutualTLS       bool
	ServiceRun      bool
	ConfigVersion   string
	CustomInterface bool
	CustomCAs       bool

	ClientType string // "ngrok-go", "tollgate", ...
	LegNumber  uint32 // 0 for the first connection of a multi-leg agent

	// InstanceID is a random ID of one agent process, the same on every
	// connection (leg) it keeps to the edges of its region, so that its
	// legs may bind the same names region-wide. Tollgate's own field:
	// "" from agents that keep one connection (the platform's SDKs).
	InstanceID string `json:",omitempty"`
}

// Fingerprint is an unused part of AuthExtra, kept for wire fidelity.
type Fingerprint struct {
	M []string
	D []string
}

// AuthResp answers Auth. A non-empty Error means the edge refused the
// session and closes it after sending the response.
type AuthResp struct {
	Version  string // protocol version chosen
	ClientID string `json:"ClientId"` // the session's ID; never empty on success
	Error    string
	Extra    AuthRespExtra
}

// AuthRespExtra is the body of AuthResp.
type AuthRespExtra struct {
	Version            string // edge version
	Region             string
	Cookie             string // opaque; the agent sends it back on reconnect
	AccountName        string
	SessionDuration    int64 // seconds; 0 = unlimited
	PlanName           string
	Banner             string
	DeprecationWarning *AgentVersionDeprecated
	ConnectAddresses   []ConnectAddress
	AgentSessionID     string
	// AgentMetrics must stay nil: a non-null value invites the agent to open
	// AgentMetrics streams, which this package does not serve.
	AgentMetrics *json.RawMessage

	// EdgeID names the edge that answered (ed_…), so that an agent keeping
	// several connections tells edges apart, also behind one load-balanced
	// address. Tollgate's own field, left out when empty; the platform's
	// SDKs ignore fields they do not know.
	EdgeID string `json:",omitempty"`
	// RegionEdges lists the live edges of the answering edge's region, it
	// first: where an agent keeps its other connections
	// (docs/agent-protocol.md#ha-connections). Tollgate's own field.
	RegionEdges []RegionEdge `json:",omitempty"`
}

// RegionEdge is one live edge of a region: its ID and its agent address,
// HOST:PORT.
type RegionEdge struct {
	EdgeID     string
	ServerAddr string
}

// AgentVersionDeprecated warns an agent that it must be updated.
type AgentVersionDeprecated struct {
	NextMin  string
	NextDate time.Time
	Msg      string
}

// ConnectAddress names an edge address of a region.
type ConnectAddress struct {
	Region     string
	ServerAddr string
}

// Bind asks for an endpoint (stream type 1). Opts depends on Proto; decode
// it with DecodeHTTPOptions, DecodeTCPOptions or DecodeTLSOptions.
type Bind struct {
	ID            string `json:"Id"` // "" on the first bind; the edge generates one
	Proto         string // http, https, tcp, tls (ssh is refused)
	ForwardsTo    string // the agent's upstream, for display
	ForwardsProto string // "", "http1", "http2"
	Opts          json.RawMessage
	Extra         BindExtra
}

// BindExtra is the rest of a Bind.
type BindExtra struct {
	Name           string
	Token          string // opaque bind token from a previous BindResp, to take the same URL back
	IPPolicyRef    string
	Metadata       string
	Description    string
	Bindings       []string
	PoolingEnabled bool
}

// BindResp answers Bind. Proto must echo a valid protocol or the Go SDK
// refuses the response.
type BindResp struct {
	ID    string `json:"Id"` // the bind ID that ProxyHeader.ID carries
	URL   string // public URL of the endpoint
	Proto string
	Opts  any // options as the edge applied them; the SDK decodes them by Proto
	Error string
	Extra BindRespExtra
}

// BindRespExtra is the rest of a BindResp.
type BindRespExtra struct {
	Token    string // opaque; lets a reconnecting agent re-bind the same URL
	TunnelID string
}

// Unbind closes an endpoint (stream type 2).
type Unbind struct {
	ID    string          `json:"Id"`
	Extra json.RawMessage // unused; null on the wire
}

// UnbindResp answers Unbind.
type UnbindResp struct {
	Error string
	Extra json.RawMessage // unused; null on the wire
}

// ProxyHeader starts a proxy stream (type 3), written as an int64
// little-endian length and this JSON; raw bytes follow.
type ProxyHeader struct {
	ID             string `json:"Id"` // the bind ID (BindResp.ID)
	ClientAddr     string // "ip:port" of the public client
	Proto          string // http, https, tcp, tls
	EdgeType       string // "", "1" tcp, "2" tls, "3" https
	PassthroughTLS bool   // the agent receives the client's TLS bytes unterminated
}

// StopTunnel tells the agent that the edge closed one of its endpoints
// (stream type 9); the agent sends no reply.
type StopTunnel struct {
	ID        string `json:"Id"` // the bind ID
	Message   string
	ErrorCode string
}

// Stop asks the agent to exit (stream type 5).
type Stop struct{}

// StopResp answers Stop; Error is non-empty when the agent refused.
type StopResp struct{ Error string }

// Restart asks the agent to restart itself (stream type 4).
type Restart struct{}

// RestartResp answers Restart.
type RestartResp struct{ Error string }

// Update asks the agent to update itself (stream type 6).
type Update struct {
	Version            string // "" = latest
	PermitMajorVersion bool
}

// UpdateResp answers Update.
type UpdateResp struct{ Error string }

// SrvInfo asks for the edge's region (stream type 8).
type SrvInfo struct{}

// SrvInfoResp answers SrvInfo. EdgeID and RegionEdges are Tollgate's own,
// as in AuthRespExtra: an agent with several connections refreshes its list
// of the region's edges without opening a session.
type SrvInfoResp struct {
	Region      string
	EdgeID      string       `json:",omitempty"`
	RegionEdges []RegionEdge `json:",omitempty"`
}

// StartTunnelWithLabel asks for a labeled tunnel (stream type 7).
type StartTunnelWithLabel struct {
	Labels        map[string]string
	ForwardsTo    string
	ForwardsProto string
	Metadata      string
}

// StartTunnelWithLabelResp answers StartTunnelWithLabel.
type StartTunnelWithLabelResp struct {
	ID    string `json:"Id"`
	Error string
}

// PatchTunnelState changes mutable fields of a bound endpoint (stream type
// 10); nil fields are left alone.
type PatchTunnelState struct {
	TunnelID       string  `json:"TunnelId"`
	Name           *string `json:"Name,omitempty"`
	Description    *string `json:"Description,omitempty"`
	Metadata       *string `json:"Metadata,omitempty"`
	PoolingEnabled *bool   `json:"PoolingEnabled,omitempty"`
	TrafficPolicy  *string `json:"TrafficPolicy,omitempty"`
}

// PatchTunnelStateResp answers PatchTunnelState.
type PatchTunnelStateResp struct{ Error string }

// errorResp is the shape every RPC response shares: the session answers
// with it when it refuses a request itself.
type errorResp struct{ Error string }
