package snapshot

import "github.com/tollgate/tollgate/codes"

// Wire types of the edge API's command channel (GET /edge/v1/commands,
// POST /edge/v1/commands/results): how operator commands on agent sessions
// (POST /tunnel_sessions/{id}/stop and /restart) reach an edge that runs as
// its own process, and how the edge answers.

// Verbs of an EdgeCommand.
const (
	EdgeCommandStop    = "stop"
	EdgeCommandRestart = "restart"
)

// EdgeCommand is one operator command for one agent session on the edge
// that polls for it.
type EdgeCommand struct {
	// ID identifies the command in its result; unique per control plane.
	ID string `json:"id"`
	// Verb is EdgeCommandStop or EdgeCommandRestart.
	Verb string `json:"verb"`
	// SessionID is the agent session (ts_...) the command is for.
	SessionID string `json:"session_id"`
}

// EdgeCommands is the body of GET /edge/v1/commands: the commands queued
// for the polling edge, and the live edges of every region whenever they
// changed since the version the edge named.
type EdgeCommands struct {
	// Commands are for the polling edge; each is delivered once.
	Commands []EdgeCommand `json:"commands"`
	// Edges are the live edges, this one included (as in EdgeReportAnswer).
	Edges []EdgeInfo `json:"edges"`
	// EdgesVersion changes whenever Edges does; the edge sends it back as
	// known= so that the next poll waits until it changes again.
	EdgesVersion uint64 `json:"edges_version"`
	// ReportNeeded asks the edge to send its session report now: the
	// control plane has none from it (it restarted, or forgot the edge).
	ReportNeeded bool `json:"report_needed,omitempty"`
}

// EdgeCommandResult is the body of POST /edge/v1/commands/results: how one
// command ended. An empty ErrorCode means the agent accepted it; otherwise
// ErrorCode and Msg are those of the *Error the edge's command returned
// (codes.SessionNotFound, codes.SessionCommandUnsupported, ...).
type EdgeCommandResult struct {
	EdgeID    string     `json:"edge_id"`
	ID        string     `json:"id"`
	ErrorCode codes.Code `json:"error_code,omitempty"`
	Msg       string     `json:"msg,omitempty"`
}
