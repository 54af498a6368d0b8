package controlplane

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// refJSON is a reference to another object.
type refJSON struct {
	ID  string `json:"id"`
	URI string `json:"uri"`
}

// tunnelSessionJSON is the tunnel_sessions object
// (reference/platform-behaviour.md §1.14).
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

func (s *Server) tunnelSessionJSON(r *http.Request, si *SessionInfo) tunnelSessionJSON {
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

func (s *Server) endpointJSON(r *http.Request, ep *onlineEndpoint) endpointJSON {
	base := s.baseURL(r)
	out := endpointJSON{
		ID: ep.ID, URI: base + "/endpoints/" + ep.ID, Region: ep.session.Region,
		CreatedAt: timestamp(ep.StartedAt), UpdatedAt: timestamp(ep.StartedAt),
		PublicURL: ep.URL, URL: ep.URL, Proto: ep.Proto, Type: "agent", UpstreamURL: ep.ForwardsTo,
		TunnelSession: refJSON{ID: ep.session.ID, URI: base + "/tunnel_sessions/" + ep.session.ID},
	}
	if ep.session.PrincipalID != "" {
		coll := "users"
		if strings.HasPrefix(ep.session.PrincipalID, ids.PrefixBotUser+"_") {
			coll = "bot_users"
		}
		out.Principal = refJSON{ID: ep.session.PrincipalID, URI: base + "/" + coll + "/" + ep.session.PrincipalID}
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

func (s *Server) listTunnelSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	page, err := listParams(r, ids.PrefixAgentSession)
	if err != nil {
		return err
	}
	list, more := pageOf(s.accountSessions(c.accountID()), func(si *SessionInfo) string { return si.ID }, page)
	items := make([]tunnelSessionJSON, len(list))
	last := ""
	for i := range list {
		items[i] = s.tunnelSessionJSON(r, &list[i])
		last = list[i].ID
	}
	s.listResponse(w, r, "tunnel_sessions", items, more, last, page)
	return nil
}

func (s *Server) getTunnelSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := objectPathID(r, ids.PrefixAgentSession)
	if err != nil {
		return err
	}
	for _, si := range s.accountSessions(c.accountID()) {
		if si.ID == id {
			writeJSON(w, http.StatusOK, s.tunnelSessionJSON(r, &si))
			return nil
		}
	}
	return notFound(store.ErrNotFound, "tunnel session", id)
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request, c *caller) error {
	page, err := listParams(r, ids.PrefixEndpoint)
	if err != nil {
		return err
	}
	list, more := pageOf(s.accountEndpoints(c.accountID()), func(ep *onlineEndpoint) string { return ep.ID }, page)
	items := make([]endpointJSON, len(list))
	last := ""
	for i := range list {
		items[i] = s.endpointJSON(r, &list[i])
		last = list[i].ID
	}
	s.listResponse(w, r, "endpoints", items, more, last, page)
	return nil
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := objectPathID(r, ids.PrefixEndpoint)
	if err != nil {
		return err
	}
	for _, ep := range s.accountEndpoints(c.accountID()) {
		if ep.ID == id {
			writeJSON(w, http.StatusOK, s.endpointJSON(r, &ep))
			return nil
		}
	}
	return notFound(store.ErrNotFound, "endpoint", id)
}

// sessionCommandTimeout bounds how long a stop or restart waits for the
// agent's answer.
const sessionCommandTimeout = 15 * time.Second

// sessionCommand is one operator command on an agent session.
type sessionCommand struct {
	verb  string // "stop" or "restart", for messages
	event string // audit event type
	run   func(SessionCommander, context.Context, string) error
}

var (
	stopCommand = sessionCommand{verb: "stop", event: "tunnel_session_stopped.v0",
		run: func(c SessionCommander, ctx context.Context, id string) error { return c.StopSession(ctx, id) }}
	restartCommand = sessionCommand{verb: "restart", event: "tunnel_session_restarted.v0",
		run: func(c SessionCommander, ctx context.Context, id string) error { return c.RestartSession(ctx, id) }}
)

// stopTunnelSession is POST /tunnel_sessions/{id}/stop: the agent exits
// (204). reference/platform-behaviour.md §1.14.
func (s *Server) stopTunnelSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	return s.commandSession(w, r, c, stopCommand)
}

// restartTunnelSession is POST /tunnel_sessions/{id}/restart: the agent
// reconnects with a new session ID (204).
func (s *Server) restartTunnelSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	return s.commandSession(w, r, c, restartCommand)
}

// commandSession sends cmd to the agent of session {id} through the edge
// that serves it. Read/write roles only; any such caller may command any
// session of the account, as with the account's other resources.
func (s *Server) commandSession(w http.ResponseWriter, r *http.Request, c *caller, cmd sessionCommand) error {
	var body struct{} // the hosted platform's clients send {} or nothing
	id, err := s.beginWrite(w, r, ids.PrefixAgentSession, nil, &body)
	if err != nil {
		return err
	}
	if err := s.runSessionCommand(r, c, id, cmd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// runSessionCommand sends cmd to the agent of session id through the edge
// that serves it, and records it in the audit log: the part of a stop or
// restart that the API and the dashboard share. Read/write roles only.
func (s *Server) runSessionCommand(r *http.Request, c *caller, id string, cmd sessionCommand) error {
	if err := c.requireWrite(); err != nil {
		return err
	}
	si, target, ok := s.sessionEdge(c.accountID(), id)
	if !ok {
		return notFound(store.ErrNotFound, "tunnel session", id)
	}
	if target == nil {
		return newAPIError(http.StatusServiceUnavailable, codes.SessionCommandUnavailable,
			"The edge in region %s that serves tunnel session %s takes no commands from this control plane; stop the agent where it runs.", si.Region, id)
	}
	ctx, cancel := context.WithTimeout(r.Context(), sessionCommandTimeout)
	defer cancel()
	if err := cmd.run(target, ctx, id); err != nil {
		return commandError(err, cmd.verb, id)
	}
	payload := map[string]any{"credential_id": si.CredentialID, "region": si.Region}
	if err := s.store.RecordEvent(r.Context(), c.actor, c.accountID(), cmd.event, id, payload); err != nil {
		// The agent has acted; the caller's request succeeded. The log keeps
		// what the audit log could not.
		s.log.Error("could not record a session command in the audit log", zap.String("session_id", id),
			zap.String("command", cmd.verb), zap.String("principal_id", c.actor.PrincipalID), zap.Error(err))
	}
	return nil
}

// commandError maps a SessionCommander error to the API's answer.
func commandError(err error, verb, id string) error {
	var ce *codes.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case codes.SessionNotFound:
			return notFound(store.ErrNotFound, "tunnel session", id)
		case codes.SessionCommandUnsupported, codes.SessionCommandRefused:
			return &apiError{status: http.StatusConflict, code: ce.Code, msg: ce.Message, cause: err}
		case codes.SessionCommandFailed:
			return &apiError{status: http.StatusBadGateway, code: ce.Code, msg: ce.Message, cause: err}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &apiError{status: http.StatusGatewayTimeout, code: codes.SessionCommandFailed,
			msg: "The agent of tunnel session " + id + " did not answer the " + verb + " command in time.", cause: err}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &apiError{status: http.StatusBadGateway, code: codes.SessionCommandFailed,
		msg: "The " + verb + " command did not reach the agent of tunnel session " + id + ". Retry; the session may be ending.", cause: err}
}
