package snapshot

import "time"

// AgentSession is what an edge reports about one online agent session
// (the API's tunnel_sessions object).
type AgentSession struct {
	ID           string     `json:"id"` // ts_...
	AccountID    string     `json:"account_id"`
	CredentialID string     `json:"credential_id"` // cr_... or sshcr_...
	PrincipalID  string     `json:"principal_id"`
	Region       string     `json:"region"`
	Transport    string     `json:"transport"` // "tcp", "quic" or "ssh"
	IP           string     `json:"ip"`
	OS           string     `json:"os"`
	AgentVersion string     `json:"agent_version"`
	Metadata     string     `json:"metadata"`
	StartedAt    time.Time  `json:"started_at"`
	Endpoints    []Endpoint `json:"endpoints"`
}

// Endpoint is one online endpoint of an agent session (the API's endpoints
// object).
type Endpoint struct {
	ID         string    `json:"id"`         // ep_...
	URL        string    `json:"public_url"` // https://name.base[:port], tcp://host:port
	Proto      string    `json:"proto"`      // https, http, tcp, tls
	ForwardsTo string    `json:"forwards_to"`
	StartedAt  time.Time `json:"started_at"`
}
