package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Wire types of the control plane's API for edges (/edge/v1/...), shared by
// the control plane that serves it and the edges that call it.

// FeedVersion is the version of the feed's wire format this package
// speaks, sent as FeedMessage.Version. Version 1 (no version field) had the
// same shape. The format only grows: a newer control plane may add fields,
// and an edge ignores the fields it does not know (DecodeFeedMessage), so
// that an older edge keeps applying revocations from a newer control plane.
const FeedVersion = 2

// FeedMessage is the body of GET /edge/v1/snapshot: exactly one of Snapshot
// (a whole snapshot: the first request, after a gap, or when the edge is
// further behind than the control plane's change history) and Delta (the
// change from the revision the edge holds).
type FeedMessage struct {
	// Version is the sender's FeedVersion; 0 from a control plane older
	// than version 2. Informational: a receiver decodes what it knows.
	Version  int    `json:"version,omitempty"`
	Snapshot *Data  `json:"snapshot,omitempty"`
	Delta    *Delta `json:"delta,omitempty"`
}

// DecodeFeedMessage reads one FeedMessage from r. Unknown fields, at any
// depth, are ignored (forward compatibility: see FeedVersion); strict
// decoding is for user configuration and API bodies, not for what a newer
// control plane sends. It fails on malformed JSON and on a message that
// holds neither a snapshot nor a delta.
func DecodeFeedMessage(r io.Reader) (*FeedMessage, error) {
	var msg FeedMessage
	if err := json.NewDecoder(r).Decode(&msg); err != nil {
		return nil, fmt.Errorf("decoding feed message: %w", err)
	}
	if msg.Snapshot == nil && msg.Delta == nil {
		return nil, errors.New("decoding feed message: it holds neither a snapshot nor a delta")
	}
	return &msg, nil
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
	// PeerAddr is the host:port where sibling edges of the region forward
	// public connections to this edge (EdgeInfo.PeerAddr); "" = none.
	PeerAddr string `json:"peer_addr,omitempty"`
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
	ID        string `json:"id"`
	Region    string `json:"region"`
	AgentAddr string `json:"agent_addr"`
	// PeerAddr is the edge-to-edge listener where sibling edges of the
	// region forward public connections; "" when the edge has none.
	PeerAddr string    `json:"peer_addr,omitempty"`
	LastSeen time.Time `json:"last_seen"`
}
