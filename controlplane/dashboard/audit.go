package dashboard

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// auditPageSize is how many events the audit log page shows at a time.
const auditPageSize = 50

// auditObjectKinds are the kinds of object the audit log filters on, by ID
// prefix, in the order the filter offers them.
var auditObjectKinds = []option{
	{ids.PrefixUser, "Users"},
	{ids.PrefixBotUser, "Bot users"},
	{ids.PrefixInvitation, "Invitations"},
	{ids.PrefixAuthtoken, "Authtokens"},
	{ids.PrefixAPIKey, "API keys"},
	{ids.PrefixSSHCredential, "SSH keys"},
	{ids.PrefixIPPolicy, "IP policies"},
	{ids.PrefixIPPolicyRule, "IP policy rules"},
	{ids.PrefixIPRestriction, "IP restrictions"},
	{ids.PrefixReservedDomain, "Reserved domains"},
	{ids.PrefixReservedAddr, "Reserved TCP addresses"},
	{ids.PrefixAgentSession, "Agent sessions"},
	{ids.PrefixEventDest, "Event destinations"},
	{ids.PrefixEventSub, "Event subscriptions"},
	{ids.PrefixAccount, "Account"},
}

// option is one choice of a select.
type option struct{ Value, Label string }

// auditRow is one event with the names of its principal and its payload
// as "field: value" lines.
type auditRow struct {
	store.AuditEvent
	Who     string // the principal's e-mail or bot name, when known
	Details []string
}

// auditDetails renders an event's payload as "field: value" lines, in
// field order, empty values left out; a payload that is not an object is
// shown as it is. Values are cut at 120 characters.
func auditDetails(payload []byte) []string {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		if p := strings.TrimSpace(string(payload)); p != "" && p != "null" {
			return []string{controlplane.Truncate(p, 120)}
		}
		return nil
	}
	keys := slices.Sorted(maps.Keys(fields))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		v := string(fields[k])
		var str string
		if json.Unmarshal(fields[k], &str) == nil {
			v = str
		}
		if v == "" || v == "null" || v == "[]" || v == "{}" {
			continue
		}
		out = append(out, k+": "+controlplane.Truncate(v, 120))
	}
	return out
}

// auditView is the audit log page: the filter as given, one page of
// events, and the links to the newer and older pages.
type auditView struct {
	Principal, Object, Since, Until string
	Principals                      []option
	Objects                         []option
	Events                          []auditRow
	Older                           string // the next page's URL, "" on the last
	Paged                           bool   // not the first page
}

// auditTimeLayouts are the forms a time filter takes: the browser's
// datetime-local and date inputs, and RFC 3339. Times without a zone are
// UTC.
var auditTimeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, "2006-01-02"}

// parseAuditTime reads a time filter; a bare date as until means the end
// of that day.
func parseAuditTime(name, v string, endOfDay bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range auditTimeLayouts {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			if layout == "2006-01-02" && endOfDay {
				t = t.Add(24 * time.Hour)
			}
			return t, nil
		}
	}
	return time.Time{}, controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput,
		"%s %q is not a time: use 2026-03-01 or 2026-03-01T14:30 (UTC).", name, controlplane.Truncate(v, 40))
}

// auditFilter reads the page's query: principal, object, since, until and
// before (the last event of the previous page).
func auditFilter(q url.Values) (store.AuditFilter, store.Page, error) {
	f := store.AuditFilter{PrincipalID: q.Get("principal"), ObjectPrefix: q.Get("object")}
	page := store.Page{Limit: auditPageSize, BeforeID: q.Get("before")}
	if f.PrincipalID != "" && f.PrincipalID != "system" {
		if err := controlplane.CheckID(f.PrincipalID, ids.PrefixUser, ids.PrefixBotUser); err != nil {
			return f, page, controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "principal must be a user (usr_...), a bot user (bot_...) or system.")
		}
	}
	known := f.ObjectPrefix == ""
	for _, k := range auditObjectKinds {
		known = known || k.Value == f.ObjectPrefix
	}
	if !known {
		return f, page, controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "object %q is not a kind of object the audit log knows.", controlplane.Truncate(f.ObjectPrefix, 20))
	}
	if page.BeforeID != "" {
		if err := controlplane.CheckID(page.BeforeID, ids.PrefixAuditEvent); err != nil {
			return f, page, controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "before must be an audit event ID (ev_...).")
		}
	}
	var err error
	if f.Since, err = parseAuditTime("since", q.Get("since"), false); err != nil {
		return f, page, err
	}
	if f.Until, err = parseAuditTime("until", q.Get("until"), true); err != nil {
		return f, page, err
	}
	return f, page, nil
}

// dashAudit is GET /audit: the account's audit log, newest first, filtered
// by principal, kind of object and time, 50 events a page. Administrators
// and team managers only (Caller.RequireAuditReader, as GET
// /audit_events). A filter it cannot read is shown with its error and no
// events.
func (s *managePages) dashAudit(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireAuditReader(); err != nil {
		return dashForbidden(err)
	}
	q := r.URL.Query()
	v := &auditView{Principal: q.Get("principal"), Object: q.Get("object"), Since: q.Get("since"), Until: q.Get("until"),
		Objects: auditObjectKinds, Paged: q.Get("before") != ""}
	names, err := s.principalNames(r, c)
	if err != nil {
		return err
	}
	v.Principals = append([]option{{"system", "Tollgate (system)"}}, names...)
	f, page, err := auditFilter(q)
	if err != nil {
		return s.page(w, r, c, http.StatusBadRequest, "audit", "Audit log", v, controlplane.AsError(err))
	}
	events, more, err := s.store.ListAuditEventsWhere(r.Context(), c.AccountID(), f, page)
	if err != nil {
		return err
	}
	who := make(map[string]string, len(names))
	for _, n := range names {
		who[n.Value] = n.Label
	}
	for _, e := range events {
		v.Events = append(v.Events, auditRow{AuditEvent: e, Who: who[e.ActorID], Details: auditDetails(e.Payload)})
	}
	if more && len(events) > 0 {
		next := url.Values{}
		for _, k := range []string{"principal", "object", "since", "until"} {
			if q.Get(k) != "" {
				next.Set(k, q.Get(k))
			}
		}
		next.Set("before", events[len(events)-1].ID)
		v.Older = "/audit?" + next.Encode()
	}
	return s.page(w, r, c, http.StatusOK, "audit", "Audit log", v, nil)
}

// principalNames lists the account's members and bot users (the first
// page of each) as filter choices: ID and e-mail or name.
func (s *managePages) principalNames(r *http.Request, c *dashCaller) ([]option, error) {
	members, _, err := s.store.ListMembers(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return nil, err
	}
	bots, _, err := s.store.ListBotUsers(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return nil, err
	}
	out := make([]option, 0, len(members)+len(bots))
	for _, m := range members {
		out = append(out, option{m.User.ID, m.User.Email})
	}
	for _, b := range bots {
		out = append(out, option{b.ID, b.Name + " (bot)"})
	}
	return out, nil
}
