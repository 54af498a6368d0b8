package restapi

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// refJSON is a reference to another object.
type refJSON struct {
	ID  string `json:"id"`
	URI string `json:"uri"`
}

// sessionAPI serves what the edges report: /tunnel_sessions (with their
// stop and restart commands), /endpoints and /regions. The
// controlplane.Registry holds it: in the store for edges in other
// processes, so every control-plane replica answers the same.
type sessionAPI struct{ *Server }

// routes registers /tunnel_sessions, /endpoints and /regions.
func (s *sessionAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/tunnel_sessions", methods{http.MethodGet: s.listTunnelSessions})
	s.route(mux, "/tunnel_sessions/{id}", methods{http.MethodGet: s.getTunnelSession})
	s.route(mux, "/tunnel_sessions/{id}/stop", methods{http.MethodPost: s.stopTunnelSession})
	s.route(mux, "/tunnel_sessions/{id}/restart", methods{http.MethodPost: s.restartTunnelSession})
	s.route(mux, "/endpoints", methods{http.MethodGet: s.listEndpoints})
	s.route(mux, "/endpoints/{id}", methods{http.MethodGet: s.getEndpoint})
	s.route(mux, "/regions", methods{http.MethodGet: s.listRegions})
}

// tunnelSessionJSON is the tunnel_sessions object
// (docs/api-compatibility.md#tunnel-sessions).
type tunnelSessionJSON struct {
	ID           string  `json:"id"`
	URI          string  `json:"uri"`
	AgentVersion string  `json:"agent_version"`
	Credential   refJSON `json:"credential"`
	IP           string  `json:"ip"`
	Metadata     string  `json:"metadata"`
	OS           string  `json:"os"`
	Region       string  `json:"region"`
	StartedAt    string  `json:"started_at"`
	Transport    string  `json:"transport"`
}

// endpointJSON is the endpoints object for an agent endpoint that is online.
type endpointJSON struct {
	ID            string  `json:"id"`
	URI           string  `json:"uri"`
	Region        string  `json:"region"`
	CreatedAt     string  `json:"created_at"`
	UpdatedAt     string  `json:"updated_at"`
	PublicURL     string  `json:"public_url"`
	URL           string  `json:"url"`
	Proto         string  `json:"proto"`
	Scheme        string  `json:"scheme"`
	HostPort      string  `json:"hostport"`
	Host          string  `json:"host"`
	Port          int     `json:"port"`
	Type          string  `json:"type"`
	UpstreamURL   string  `json:"upstream_url"`
	TunnelSession refJSON `json:"tunnel_session"`
	Principal     refJSON `json:"principal"`
}

func (s *sessionAPI) tunnelSessionJSON(r *http.Request, si *controlplane.SessionInfo) tunnelSessionJSON {
	base := s.baseURL(r)
	credColl := "credentials"
	if strings.HasPrefix(si.CredentialID, ids.PrefixSSHCredential+"_") {
		credColl = "ssh_credentials"
	}
	return tunnelSessionJSON{
		ID: si.ID, URI: base + "/tunnel_sessions/" + si.ID, AgentVersion: si.AgentVersion,
		Credential: refJSON{ID: si.CredentialID, URI: base + "/" + credColl + "/" + si.CredentialID},
		IP:         si.IP, Metadata: si.Metadata, OS: si.OS, Region: si.Region,
		StartedAt: timestamp(si.StartedAt), Transport: si.Transport,
	}
}

func (s *sessionAPI) endpointJSON(r *http.Request, ep *controlplane.OnlineEndpoint) endpointJSON {
	base := s.baseURL(r)
	out := endpointJSON{
		ID: ep.ID, URI: base + "/endpoints/" + ep.ID, Region: ep.Session.Region,
		CreatedAt: timestamp(ep.StartedAt), UpdatedAt: timestamp(ep.StartedAt),
		PublicURL: ep.URL, URL: ep.URL, Proto: ep.Proto, Type: "agent", UpstreamURL: ep.ForwardsTo,
		TunnelSession: refJSON{ID: ep.Session.ID, URI: base + "/tunnel_sessions/" + ep.Session.ID},
	}
	if ep.Session.PrincipalID != "" {
		coll := "users"
		if strings.HasPrefix(ep.Session.PrincipalID, ids.PrefixBotUser+"_") {
			coll = "bot_users"
		}
		out.Principal = refJSON{ID: ep.Session.PrincipalID, URI: base + "/" + coll + "/" + ep.Session.PrincipalID}
	}
	if u, err := url.Parse(ep.URL); err == nil {
		out.Scheme, out.Host = u.Scheme, u.Hostname()
		port := u.Port()
		if port == "" {
			switch u.Scheme {
			case "https", "tls":
				port = "443"
			case "http":
				port = "80"
			}
		}
		out.Port, _ = strconv.Atoi(port)
		if port != "" {
			out.HostPort = out.Host + ":" + port
		}
	}
	return out
}

// pageOf cuts one page, newest first, out of items sorted by descending ID.
func pageOf[T any](items []T, id func(*T) string, p store.Page) ([]T, bool) {
	start := 0
	if p.BeforeID != "" {
		start = len(items)
		for i := range items {
			if id(&items[i]) < p.BeforeID {
				start = i
				break
			}
		}
	}
	limit := p.Limit
	if limit <= 0 {
		limit = store.MaxPageSize
	}
	end := min(start+limit, len(items))
	return items[start:end], end < len(items)
}

func (s *sessionAPI) listTunnelSessions(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	page, err := listParams(r, ids.PrefixAgentSession)
	if err != nil {
		return err
	}
	all, err := s.core.Registry().AccountSessions(r.Context(), c.AccountID())
	if err != nil {
		return err
	}
	list, more := pageOf(all, func(si *controlplane.SessionInfo) string { return si.ID }, page)
	items := make([]tunnelSessionJSON, len(list))
	last := ""
	for i := range list {
		items[i] = s.tunnelSessionJSON(r, &list[i])
		last = list[i].ID
	}
	s.listResponse(w, r, "tunnel_sessions", items, more, last, page)
	return nil
}

func (s *sessionAPI) getTunnelSession(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixAgentSession)
	if err != nil {
		return err
	}
	all, err := s.core.Registry().AccountSessions(r.Context(), c.AccountID())
	if err != nil {
		return err
	}
	for _, si := range all {
		if si.ID == id {
			controlplane.WriteJSON(w, http.StatusOK, s.tunnelSessionJSON(r, &si))
			return nil
		}
	}
	return controlplane.NotFound(store.ErrNotFound, "tunnel session", id)
}

func (s *sessionAPI) listEndpoints(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	page, err := listParams(r, ids.PrefixEndpoint)
	if err != nil {
		return err
	}
	all, err := s.core.Registry().AccountEndpoints(r.Context(), c.AccountID())
	if err != nil {
		return err
	}
	list, more := pageOf(all, func(ep *controlplane.OnlineEndpoint) string { return ep.ID }, page)
	items := make([]endpointJSON, len(list))
	last := ""
	for i := range list {
		items[i] = s.endpointJSON(r, &list[i])
		last = list[i].ID
	}
	s.listResponse(w, r, "endpoints", items, more, last, page)
	return nil
}

func (s *sessionAPI) getEndpoint(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixEndpoint)
	if err != nil {
		return err
	}
	all, err := s.core.Registry().AccountEndpoints(r.Context(), c.AccountID())
	if err != nil {
		return err
	}
	for _, ep := range all {
		if ep.ID == id {
			controlplane.WriteJSON(w, http.StatusOK, s.endpointJSON(r, &ep))
			return nil
		}
	}
	return controlplane.NotFound(store.ErrNotFound, "endpoint", id)
}

// stopTunnelSession is POST /tunnel_sessions/{id}/stop: the agent exits
// (204). docs/api-compatibility.md#tunnel-sessions.
func (s *sessionAPI) stopTunnelSession(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return s.commandSession(w, r, c, controlplane.StopCommand)
}

// restartTunnelSession is POST /tunnel_sessions/{id}/restart: the agent
// reconnects with a new session ID (204).
func (s *sessionAPI) restartTunnelSession(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return s.commandSession(w, r, c, controlplane.RestartCommand)
}

// commandSession sends cmd to the agent of session {id} through the edge
// that serves it. Read/write roles only; any such caller may command any
// session of the account, as with the account's other resources.
func (s *sessionAPI) commandSession(w http.ResponseWriter, r *http.Request, c *controlplane.Caller, cmd controlplane.SessionCommand) error {
	var body struct{} // the hosted platform's clients send {} or nothing
	id, err := s.beginWrite(w, r, ids.PrefixAgentSession, nil, &body)
	if err != nil {
		return err
	}
	if err := s.core.RunSessionCommand(r, c, id, cmd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type regionJSON struct {
	ID    string          `json:"id"`
	Edges []regionEdgeOut `json:"edges"`
}

type regionEdgeOut struct {
	ID        string `json:"id"`
	AgentAddr string `json:"agent_addr"`
}

// listRegions is GET /regions (API key, any role): the edges that reported
// within three snapshot.EdgeReportIntervals, by region.
func (s *sessionAPI) listRegions(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	if err := noBody(r); err != nil {
		return err
	}
	regions := []regionJSON{}
	edges, err := s.core.Registry().LiveEdges(r.Context())
	if err != nil {
		return err
	}
	for _, e := range edges {
		if n := len(regions); n == 0 || regions[n-1].ID != e.Region {
			regions = append(regions, regionJSON{ID: e.Region})
		}
		last := &regions[len(regions)-1]
		last.Edges = append(last.Edges, regionEdgeOut{ID: e.ID, AgentAddr: e.AgentAddr})
	}
	controlplane.WriteJSON(w, http.StatusOK, map[string]any{"regions": regions})
	return nil
}
