package dashboard

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// The IP policies page's actions: IP policies, their rules and IP
// restrictions created, edited and deleted, and a restriction switched
// between dry run and enforcing, with the REST API's rules: the read/write
// roles (controlplane.WriterAccess), and the store's validation (a CIDR,
// an action, a restriction's type and policies), whose errors carry their
// codes.

// ipPoliciesDone renders the page again after a refused action, or
// redirects after a successful one.
func (s *managePages) ipPoliciesDone(w http.ResponseWriter, r *http.Request, c *dashCaller, err error, key, id string) error {
	return redirectAfter(s.Server, w, r, c, "ip-policies", "IP policies", s.ipPoliciesView, err, "/ip-policies", key, id)
}

// ipWrite checks the path's ID and the caller's write role.
func ipWrite(r *http.Request, c *dashCaller, what, prefix string) (string, error) {
	id, err := formID(r, what, prefix)
	if err != nil {
		return "", err
	}
	return id, dashForbidden(controlplane.WriterAccess(r.Context(), &c.Caller, id))
}

// dashCreateIPPolicy is POST /ip-policies {description}.
func (s *managePages) dashCreateIPPolicy(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	p, err := s.store.CreateIPPolicy(r.Context(), c.Actor, c.AccountID(), store.IPPolicyCreate{Description: formText(r, "description")})
	return s.ipPoliciesDone(w, r, c, err, "policy-created", idOf(p, err, func(p *store.IPPolicy) string { return p.ID }))
}

// dashUpdateIPPolicy is POST /ip-policies/{id} {description}.
func (s *managePages) dashUpdateIPPolicy(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := ipWrite(r, c, "an IP policy (ipp_...)", ids.PrefixIPPolicy)
	if err != nil {
		return err
	}
	desc := formText(r, "description")
	_, err = s.store.UpdateIPPolicy(r.Context(), c.Actor, c.AccountID(), id, store.IPPolicyUpdate{Description: &desc})
	return s.ipPoliciesDone(w, r, c, controlplane.NotFound(err, "IP policy", id), "policy-updated", id)
}

// dashDeleteIPPolicy is POST /ip-policies/{id}/delete: the policy with its
// rules; refused (409) while an IP restriction names it.
func (s *managePages) dashDeleteIPPolicy(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := ipWrite(r, c, "an IP policy (ipp_...)", ids.PrefixIPPolicy)
	if err != nil {
		return err
	}
	err = s.store.DeleteIPPolicy(r.Context(), c.Actor, c.AccountID(), id)
	return s.ipPoliciesDone(w, r, c, controlplane.NotFound(err, "IP policy", id), "policy-deleted", id)
}

// dashCreateIPPolicyRule is POST /ip-policies/{id}/rules {action, cidr,
// description}.
func (s *managePages) dashCreateIPPolicyRule(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := ipWrite(r, c, "an IP policy (ipp_...)", ids.PrefixIPPolicy)
	if err != nil {
		return err
	}
	x, err := s.store.CreateIPPolicyRule(r.Context(), c.Actor, c.AccountID(), store.IPPolicyRuleCreate{IPPolicyID: id,
		Action: formText(r, "action"), CIDR: formText(r, "cidr"), Description: formText(r, "description")})
	return s.ipPoliciesDone(w, r, c, err, "rule-created", idOf(x, err, func(x *store.IPPolicyRule) string { return x.ID }))
}

// dashUpdateIPPolicyRule is POST /ip-policy-rules/{id} {action, cidr,
// description}: all three are set.
func (s *managePages) dashUpdateIPPolicyRule(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := ipWrite(r, c, "an IP policy rule (ipr_...)", ids.PrefixIPPolicyRule)
	if err != nil {
		return err
	}
	action, cidr, desc := formText(r, "action"), formText(r, "cidr"), formText(r, "description")
	_, err = s.store.UpdateIPPolicyRule(r.Context(), c.Actor, c.AccountID(), id,
		store.IPPolicyRuleUpdate{Action: &action, CIDR: &cidr, Description: &desc})
	return s.ipPoliciesDone(w, r, c, controlplane.NotFound(err, "IP policy rule", id), "rule-updated", id)
}

// dashDeleteIPPolicyRule is POST /ip-policy-rules/{id}/delete.
func (s *managePages) dashDeleteIPPolicyRule(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := ipWrite(r, c, "an IP policy rule (ipr_...)", ids.PrefixIPPolicyRule)
	if err != nil {
		return err
	}
	err = s.store.DeleteIPPolicyRule(r.Context(), c.Actor, c.AccountID(), id)
	return s.ipPoliciesDone(w, r, c, controlplane.NotFound(err, "IP policy rule", id), "rule-deleted", id)
}

// dashCreateIPRestriction is POST /ip-restrictions {type, ip_policy_ids
// (repeated), enforced ("on" when checked), description}. Without
// enforced it starts in dry run, as with the API.
func (s *managePages) dashCreateIPRestriction(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	x, err := s.store.CreateIPRestriction(r.Context(), c.Actor, c.AccountID(), store.IPRestrictionCreate{
		Type: formText(r, "type"), Enforced: r.PostForm.Get("enforced") == "on", IPPolicyIDs: r.PostForm["ip_policy_ids"],
		Description: formText(r, "description")})
	return s.ipPoliciesDone(w, r, c, err, "restriction-created", idOf(x, err, func(x *store.IPRestriction) string { return x.ID }))
}

// dashUpdateIPRestriction is POST /ip-restrictions/{id} {ip_policy_ids
// (repeated), description}: the policies it applies and its description.
func (s *managePages) dashUpdateIPRestriction(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := ipWrite(r, c, "an IP restriction (ipx_...)", ids.PrefixIPRestriction)
	if err != nil {
		return err
	}
	pols, desc := r.PostForm["ip_policy_ids"], formText(r, "description")
	_, err = s.store.UpdateIPRestriction(r.Context(), c.Actor, c.AccountID(), id,
		store.IPRestrictionUpdate{IPPolicyIDs: &pols, Description: &desc})
	return s.ipPoliciesDone(w, r, c, controlplane.NotFound(err, "IP restriction", id), "restriction-updated", id)
}

// dashSetIPRestrictionEnforced is POST /ip-restrictions/{id}/enforced
// {enforced: "true" | "false"}: enforce, or dry run (refusals logged only).
func (s *managePages) dashSetIPRestrictionEnforced(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := formID(r, "an IP restriction (ipx_...)", ids.PrefixIPRestriction)
	if err != nil {
		return err
	}
	enforced, err := formBool(r, "enforced")
	if err != nil {
		return err
	}
	if err := controlplane.WriterAccess(r.Context(), &c.Caller, id); err != nil {
		return dashForbidden(err)
	}
	_, err = s.store.UpdateIPRestriction(r.Context(), c.Actor, c.AccountID(), id, store.IPRestrictionUpdate{Enforced: &enforced})
	key := "restriction-dry-run"
	if enforced {
		key = "restriction-enforced"
	}
	return s.ipPoliciesDone(w, r, c, controlplane.NotFound(err, "IP restriction", id), key, id)
}

// dashDeleteIPRestriction is POST /ip-restrictions/{id}/delete.
func (s *managePages) dashDeleteIPRestriction(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := ipWrite(r, c, "an IP restriction (ipx_...)", ids.PrefixIPRestriction)
	if err != nil {
		return err
	}
	err = s.store.DeleteIPRestriction(r.Context(), c.Actor, c.AccountID(), id)
	return s.ipPoliciesDone(w, r, c, controlplane.NotFound(err, "IP restriction", id), "restriction-deleted", id)
}

// idOf is the ID of an object just created, or "" when creating failed.
func idOf[T any](v *T, err error, id func(*T) string) string {
	if err != nil || v == nil {
		return ""
	}
	return id(v)
}
