package restapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// auditEventJSON is the audit_events object: one change to the account, who
// made it and with which credential. Type is "<object>_<verb>.v0"
// ("api_key_created.v0"); Principal is the user or bot user that acted, or
// {"id": "system", "uri": null} for the control plane's own actions;
// Credential is the API key that authenticated the change, or null; Object
// is what changed (its uri is null when the object has no API resource);
// Payload holds the event's details, such as the fields an update changed.
// Secrets never appear in it.
type auditEventJSON struct {
	ID         string          `json:"id"`
	URI        string          `json:"uri"`
	Type       string          `json:"type"`
	Revision   uint64          `json:"revision"`
	CreatedAt  string          `json:"created_at"`
	Principal  optRefJSON      `json:"principal"`
	Credential *optRefJSON     `json:"credential"`
	Object     optRefJSON      `json:"object"`
	Payload    json.RawMessage `json:"payload"`
}

// optRefJSON is a reference whose uri is null when the object has no API
// resource.
type optRefJSON struct {
	ID  string  `json:"id"`
	URI *string `json:"uri"`
}

// collectionOf maps an ID prefix to its API collection, for object URIs.
var collectionOf = map[string]string{
	ids.PrefixUser:           "users",
	ids.PrefixBotUser:        "bot_users",
	ids.PrefixAuthtoken:      "credentials",
	ids.PrefixAPIKey:         "api_keys",
	ids.PrefixSSHCredential:  "ssh_credentials",
	ids.PrefixIPPolicy:       "ip_policies",
	ids.PrefixIPPolicyRule:   "ip_policy_rules",
	ids.PrefixIPRestriction:  "ip_restrictions",
	ids.PrefixReservedDomain: "reserved_domains",
	ids.PrefixReservedAddr:   "reserved_addrs",
	ids.PrefixAgentSession:   "tunnel_sessions",
	ids.PrefixEndpoint:       "endpoints",
	ids.PrefixEventSub:       "event_subscriptions",
	ids.PrefixEventDest:      "event_destinations",
	ids.PrefixAuditEvent:     "audit_events",
}

// auditAPI serves /audit_events.
type auditAPI struct{ *Server }

// routes registers /audit_events: read-only, newest first.
func (s *auditAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/audit_events", methods{http.MethodGet: s.listAuditEvents})
	s.route(mux, "/audit_events/{id}", methods{http.MethodGet: s.getAuditEvent})
}

func (s *auditAPI) ref(r *http.Request, id string) optRefJSON {
	out := optRefJSON{ID: id}
	if prefix, _, err := ids.Split(id, ""); err == nil {
		if coll, ok := collectionOf[prefix]; ok {
			u := s.baseURL(r) + "/" + coll + "/" + id
			out.URI = &u
		}
	}
	return out
}

func (s *auditAPI) auditEventJSON(r *http.Request, e *store.AuditEvent) auditEventJSON {
	out := auditEventJSON{
		ID: e.ID, URI: s.baseURL(r) + "/audit_events/" + e.ID, Type: e.Type, Revision: e.Revision,
		CreatedAt: timestamp(e.CreatedAt), Principal: s.ref(r, e.ActorID), Object: s.ref(r, e.ObjectID),
		Payload: e.Payload,
	}
	if e.ActorCredentialID != "" {
		cr := s.ref(r, e.ActorCredentialID)
		out.Credential = &cr
	}
	if p := strings.TrimSpace(string(e.Payload)); p == "" || p == "null" {
		out.Payload = json.RawMessage(`{}`)
	}
	return out
}

func (s *auditAPI) listAuditEvents(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	page, err := listParams(r, ids.PrefixAuditEvent)
	if err != nil {
		return err
	}
	if err := c.RequireAuditReader(); err != nil {
		return err
	}
	list, more, err := s.store.ListAuditEvents(r.Context(), c.AccountID(), page)
	if err != nil {
		return err
	}
	items := make([]auditEventJSON, len(list))
	last := ""
	for i := range list {
		items[i] = s.auditEventJSON(r, &list[i])
		last = list[i].ID
	}
	s.listResponse(w, r, "audit_events", items, more, last, page)
	return nil
}

func (s *auditAPI) getAuditEvent(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixAuditEvent)
	if err != nil {
		return err
	}
	if err := c.RequireAuditReader(); err != nil {
		return err
	}
	e, err := s.store.GetAuditEvent(r.Context(), c.AccountID(), id)
	if err != nil {
		return controlplane.NotFound(err, "audit event", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.auditEventJSON(r, e))
	return nil
}
