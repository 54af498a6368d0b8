package snapshot

import "time"

// Wire types of the control plane's API for edges (/edge/v1/...), shared by
// the control plane that serves it and the edges that call it.

// FeedMessage is the body of GET /edge/v1/snapshot: exactly one of Snapshot
// (a whole snapshot: the first request, or after a gap) and Delta (the
// change from the revision the edge holds).
type FeedMessage struct {
	Snapshot *Data  `json:"snapshot,omitempty"`
	Delta    *Delta `json:"delta,omitempty"`
}

// EdgeReport is the body of PUT /edge/v1/sessions: who the edge is and its
// complete list of online agent sessions. Edges send it when the list
// changes and at least every EdgeReportInterval, which also tells the
// control plane the edge is alive.
type EdgeReport struct {
	// EdgeID is stable for one edge process's data dir (edge_...).
	EdgeID string `json:"edge_id"`
	// Region is the region the edge serves ("us", "eu", ...).
	Region string `json:"region"`
	// AgentAddr is the host:port agents dial.
	AgentAddr string `json:"agent_addr"`
	// Sessions are the edge's online agent sessions.
	Sessions []AgentSession `json:"sessions"`
}

// EdgeReportAnswer is the control plane's answer to an EdgeReport.
type EdgeReportAnswer struct {
	// Edges are the edges alive now, this one included.
	Edges []EdgeInfo `json:"edges"`
}

// EdgeReportInterval is how often an edge reports even without changes; the
// control plane counts an edge silent for three intervals as gone.
const EdgeReportInterval = 15 * time.Second

// EdgeInfo is one edge as the control plane knows it (GET /regions).
type EdgeInfo struct {
	ID        string    `json:"id"`
	Region    string    `json:"region"`
	AgentAddr string    `json:"agent_addr"`
	LastSeen  time.Time `json:"last_seen"`
}
