package restapi

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// The /ip_policies, /ip_policy_rules and /ip_restrictions resources
// (docs/api-compatibility.md#ip-policy-resources). Every member of the account
// may read them; creating, changing and deleting needs the read/write
// developer role or the administrator flag. Validation lives in the store
// (store.ParseCIDR and friends), so its errors carry the codes.
//
// Deviations from the hosted platform, all additions: a rule's action may be
// changed with PATCH; a host address without a prefix length is accepted as
// /32 or /128; ip_policy_ids repeats are dropped. An IP restriction's type
// cannot change (PATCH with "type" is an unknown field, TG_214).

// ipPolicyJSON is the ip_policies object.
type ipPolicyJSON struct {
	ID          string `json:"id"`
	URI         string `json:"uri"`
	CreatedAt   string `json:"created_at"`
	Description string `json:"description"`
	Metadata    string `json:"metadata"`
}

type ipPolicyCreateBody struct {
	Description string `json:"description"`
	Metadata    string `json:"metadata"`
}

type ipPolicyUpdateBody struct {
	Description *string `json:"description"`
	Metadata    *string `json:"metadata"`
}

// ipPolicyRuleJSON is the ip_policy_rules object; ip_policy is a reference.
type ipPolicyRuleJSON struct {
	ID          string  `json:"id"`
	URI         string  `json:"uri"`
	CreatedAt   string  `json:"created_at"`
	Description string  `json:"description"`
	Metadata    string  `json:"metadata"`
	CIDR        string  `json:"cidr"`
	IPPolicy    refJSON `json:"ip_policy"`
	Action      string  `json:"action"`
}

type ipPolicyRuleCreateBody struct {
	Description string `json:"description"`
	Metadata    string `json:"metadata"`
	CIDR        string `json:"cidr"`
	IPPolicyID  string `json:"ip_policy_id"`
	Action      string `json:"action"`
}

type ipPolicyRuleUpdateBody struct {
	Description *string `json:"description"`
	Metadata    *string `json:"metadata"`
	CIDR        *string `json:"cidr"`
	Action      *string `json:"action"`
}

// ipRestrictionJSON is the ip_restrictions object; ip_policies are
// references, in the order given.
type ipRestrictionJSON struct {
	ID          string    `json:"id"`
	URI         string    `json:"uri"`
	CreatedAt   string    `json:"created_at"`
	Description string    `json:"description"`
	Metadata    string    `json:"metadata"`
	Enforced    bool      `json:"enforced"`
	Type        string    `json:"type"`
	IPPolicies  []refJSON `json:"ip_policies"`
}

type ipRestrictionCreateBody struct {
	Description string   `json:"description"`
	Metadata    string   `json:"metadata"`
	Enforced    bool     `json:"enforced"` // default false: report only
	Type        string   `json:"type"`
	IPPolicyIDs []string `json:"ip_policy_ids"`
}

type ipRestrictionUpdateBody struct {
	Description *string   `json:"description"`
	Metadata    *string   `json:"metadata"`
	Enforced    *bool     `json:"enforced"`
	IPPolicyIDs *[]string `json:"ip_policy_ids"`
}

// ipPolicyAPI serves /ip_policies, /ip_policy_rules and /ip_restrictions.
type ipPolicyAPI struct{ *Server }

// routes registers /ip_policies, /ip_policy_rules and /ip_restrictions.
func (s *ipPolicyAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/ip_policies", methods{http.MethodGet: s.listIPPolicies, http.MethodPost: s.createIPPolicy})
	s.route(mux, "/ip_policies/{id}", methods{http.MethodGet: s.getIPPolicy,
		http.MethodPatch: s.updateIPPolicy, http.MethodDelete: s.deleteIPPolicy})
	s.route(mux, "/ip_policy_rules", methods{http.MethodGet: s.listIPPolicyRules, http.MethodPost: s.createIPPolicyRule})
	s.route(mux, "/ip_policy_rules/{id}", methods{http.MethodGet: s.getIPPolicyRule,
		http.MethodPatch: s.updateIPPolicyRule, http.MethodDelete: s.deleteIPPolicyRule})
	s.route(mux, "/ip_restrictions", methods{http.MethodGet: s.listIPRestrictions, http.MethodPost: s.createIPRestriction})
	s.route(mux, "/ip_restrictions/{id}", methods{http.MethodGet: s.getIPRestriction,
		http.MethodPatch: s.updateIPRestriction, http.MethodDelete: s.deleteIPRestriction})
}

func (s *ipPolicyAPI) ipPolicyRef(r *http.Request, id string) refJSON {
	return refJSON{ID: id, URI: s.baseURL(r) + "/ip_policies/" + id}
}

func (s *ipPolicyAPI) ipPolicyJSON(r *http.Request, p *store.IPPolicy) ipPolicyJSON {
	return ipPolicyJSON{ID: p.ID, URI: s.baseURL(r) + "/ip_policies/" + p.ID, CreatedAt: timestamp(p.CreatedAt),
		Description: p.Description, Metadata: p.Metadata}
}

func (s *ipPolicyAPI) ipPolicyRuleJSON(r *http.Request, x *store.IPPolicyRule) ipPolicyRuleJSON {
	return ipPolicyRuleJSON{ID: x.ID, URI: s.baseURL(r) + "/ip_policy_rules/" + x.ID, CreatedAt: timestamp(x.CreatedAt),
		Description: x.Description, Metadata: x.Metadata, CIDR: x.CIDR, IPPolicy: s.ipPolicyRef(r, x.IPPolicyID), Action: x.Action}
}

func (s *ipPolicyAPI) ipRestrictionJSON(r *http.Request, x *store.IPRestriction) ipRestrictionJSON {
	refs := make([]refJSON, len(x.IPPolicyIDs))
	for i, id := range x.IPPolicyIDs {
		refs[i] = s.ipPolicyRef(r, id)
	}
	return ipRestrictionJSON{ID: x.ID, URI: s.baseURL(r) + "/ip_restrictions/" + x.ID, CreatedAt: timestamp(x.CreatedAt),
		Description: x.Description, Metadata: x.Metadata, Enforced: x.Enforced, Type: x.Type, IPPolicies: refs}
}

// ---- /ip_policies ----

func (s *ipPolicyAPI) createIPPolicy(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body ipPolicyCreateBody
	if _, err := s.beginWrite(w, r, "", c.RequireWrite, &body); err != nil {
		return err
	}
	p, err := s.store.CreateIPPolicy(r.Context(), c.Actor, c.AccountID(), store.IPPolicyCreate{
		Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.ipPolicyJSON(r, p))
	return nil
}

// getIPPolicy is GET /ip_policies/{id}.
func (s *ipPolicyAPI) getIPPolicy(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixIPPolicy, "IP policy", s.store.GetIPPolicy, s.ipPolicyJSON)(w, r, c)
}

// listIPPolicies is GET /ip_policies.
func (s *ipPolicyAPI) listIPPolicies(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "ip_policies", ids.PrefixIPPolicy, s.store.ListIPPolicies, s.ipPolicyJSON,
		func(v *store.IPPolicy) string { return v.ID })(w, r, c)
}

func (s *ipPolicyAPI) updateIPPolicy(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body ipPolicyUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixIPPolicy, c.RequireWrite, &body)
	if err != nil {
		return err
	}
	p, err := s.store.UpdateIPPolicy(r.Context(), c.Actor, c.AccountID(), id, store.IPPolicyUpdate{
		Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return controlplane.NotFound(err, "IP policy", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.ipPolicyJSON(r, p))
	return nil
}

// deleteIPPolicy deletes a policy with its rules; 409 TG_2615 while an IP
// restriction names it.
func (s *ipPolicyAPI) deleteIPPolicy(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixIPPolicy, "IP policy", controlplane.WriterAccess, s.store.DeleteIPPolicy)(w, r, c)
}

// ---- /ip_policy_rules ----

func (s *ipPolicyAPI) createIPPolicyRule(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body ipPolicyRuleCreateBody
	if _, err := s.beginWrite(w, r, "", c.RequireWrite, &body); err != nil {
		return err
	}
	x, err := s.store.CreateIPPolicyRule(r.Context(), c.Actor, c.AccountID(), store.IPPolicyRuleCreate{
		IPPolicyID: body.IPPolicyID, CIDR: body.CIDR, Action: body.Action, Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.ipPolicyRuleJSON(r, x))
	return nil
}

// getIPPolicyRule is GET /ip_policy_rules/{id}.
func (s *ipPolicyAPI) getIPPolicyRule(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixIPPolicyRule, "IP policy rule", s.store.GetIPPolicyRule, s.ipPolicyRuleJSON)(w, r, c)
}

// listIPPolicyRules is GET /ip_policy_rules.
func (s *ipPolicyAPI) listIPPolicyRules(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "ip_policy_rules", ids.PrefixIPPolicyRule, s.store.ListIPPolicyRules, s.ipPolicyRuleJSON,
		func(v *store.IPPolicyRule) string { return v.ID })(w, r, c)
}

func (s *ipPolicyAPI) updateIPPolicyRule(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body ipPolicyRuleUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixIPPolicyRule, c.RequireWrite, &body)
	if err != nil {
		return err
	}
	x, err := s.store.UpdateIPPolicyRule(r.Context(), c.Actor, c.AccountID(), id, store.IPPolicyRuleUpdate{
		CIDR: body.CIDR, Action: body.Action, Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return controlplane.NotFound(err, "IP policy rule", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.ipPolicyRuleJSON(r, x))
	return nil
}

// deleteIPPolicyRule is DELETE /ip_policy_rules/{id}.
func (s *ipPolicyAPI) deleteIPPolicyRule(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixIPPolicyRule, "IP policy rule", controlplane.WriterAccess, s.store.DeleteIPPolicyRule)(w, r, c)
}

// ---- /ip_restrictions ----

func (s *ipPolicyAPI) createIPRestriction(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body ipRestrictionCreateBody
	if _, err := s.beginWrite(w, r, "", c.RequireWrite, &body); err != nil {
		return err
	}
	x, err := s.store.CreateIPRestriction(r.Context(), c.Actor, c.AccountID(), store.IPRestrictionCreate{
		Type: body.Type, Enforced: body.Enforced, IPPolicyIDs: body.IPPolicyIDs, Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.ipRestrictionJSON(r, x))
	return nil
}

// getIPRestriction is GET /ip_restrictions/{id}.
func (s *ipPolicyAPI) getIPRestriction(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixIPRestriction, "IP restriction", s.store.GetIPRestriction, s.ipRestrictionJSON)(w, r, c)
}

// listIPRestrictions is GET /ip_restrictions.
func (s *ipPolicyAPI) listIPRestrictions(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "ip_restrictions", ids.PrefixIPRestriction, s.store.ListIPRestrictions, s.ipRestrictionJSON,
		func(v *store.IPRestriction) string { return v.ID })(w, r, c)
}

func (s *ipPolicyAPI) updateIPRestriction(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body ipRestrictionUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixIPRestriction, c.RequireWrite, &body)
	if err != nil {
		return err
	}
	x, err := s.store.UpdateIPRestriction(r.Context(), c.Actor, c.AccountID(), id, store.IPRestrictionUpdate{
		Enforced: body.Enforced, IPPolicyIDs: body.IPPolicyIDs, Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return controlplane.NotFound(err, "IP restriction", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.ipRestrictionJSON(r, x))
	return nil
}

// deleteIPRestriction is DELETE /ip_restrictions/{id}.
func (s *ipPolicyAPI) deleteIPRestriction(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixIPRestriction, "IP restriction", controlplane.WriterAccess, s.store.DeleteIPRestriction)(w, r, c)
}
