package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/policy"
)

// IP policies, their rules and IP restrictions
// (docs/api-compatibility.md#ip-policy-resources, docs/access-control.md#ip-policies).
//
// Invariants kept here:
//   - a rule's CIDR is stored in canonical form (ParseCIDR): the network
//     address, IPv4-mapped IPv6 folded to IPv4, IPv6 abbreviated in lower
//     case; so the UNIQUE (ip_policy_id, cidr) constraint refuses the same
//     range however it was written;
//   - a rule, and every policy an IP restriction names, belongs to the same
//     account as its policy or restriction;
//   - a policy named by an IP restriction cannot be deleted (codes.IPPolicyInUse);
//     deleting a policy deletes its rules, each with its own audit event.

// Rule actions (docs/api-compatibility.md#ip-policy-rules).
const (
	IPActionAllow = "allow"
	IPActionDeny  = "deny"
)

// ipRestrictionTypes are the surfaces an IP restriction guards
// (docs/api-compatibility.md#ip-restrictions, docs/access-control.md#ip-restriction-surfaces).
var ipRestrictionTypes = []string{"dashboard", "api", "agent", "endpoints"}

// MaxRestrictionPolicies is the most IP policies one IP restriction may name.
const MaxRestrictionPolicies = 100

// maxCIDRInput bounds the CIDR text parsed (the longest IPv6 prefix with an
// embedded IPv4 is 49 characters).
const maxCIDRInput = 64

// IPPolicy is a named set of allow/deny CIDR rules (ipp_...).
type IPPolicy struct {
	ID          string
	AccountID   string
	Description string
	Metadata    string
	CreatedAt   time.Time
}

// IPPolicyRule is one CIDR of an IP policy with its action (ipr_...).
type IPPolicyRule struct {
	ID          string
	AccountID   string
	IPPolicyID  string
	CIDR        string // canonical (ParseCIDR)
	Action      string // IPActionAllow or IPActionDeny
	Description string
	Metadata    string
	CreatedAt   time.Time
}

// IPRestriction applies IP policies to one surface of an account (ipx_...).
type IPRestriction struct {
	ID          string
	AccountID   string
	Type        string // "dashboard", "api", "agent" or "endpoints"; fixed at creation
	Enforced    bool   // false: denials are only reported (dry run)
	IPPolicyIDs []string
	Description string
	Metadata    string
	CreatedAt   time.Time
}

// IPPolicyCreate is the input of CreateIPPolicy.
type IPPolicyCreate struct {
	Description string
	Metadata    string
}

// IPPolicyUpdate is the input of UpdateIPPolicy; nil fields stay as they are.
type IPPolicyUpdate struct {
	Description *string
	Metadata    *string
}

// IPPolicyRuleCreate is the input of CreateIPPolicyRule.
type IPPolicyRuleCreate struct {
	IPPolicyID  string
	CIDR        string // any form ParseCIDR accepts
	Action      string
	Description string
	Metadata    string
}

// IPPolicyRuleUpdate is the input of UpdateIPPolicyRule; nil fields stay as
// they are. A rule cannot move to another policy.
type IPPolicyRuleUpdate struct {
	CIDR        *string
	Action      *string
	Description *string
	Metadata    *string
}

// IPRestrictionCreate is the input of CreateIPRestriction.
type IPRestrictionCreate struct {
	Type        string
	Enforced    bool
	IPPolicyIDs []string
	Description string
	Metadata    string
}

// IPRestrictionUpdate is the input of UpdateIPRestriction; nil fields stay
// as they are. The type cannot change.
type IPRestrictionUpdate struct {
	Enforced    *bool
	IPPolicyIDs *[]string // replaces the list; must not be empty
	Description *string
	Metadata    *string
}

// ParseCIDR parses an IP policy rule's CIDR and returns it in canonical
// form. It accepts an IPv4 or IPv6 prefix ("10.0.0.0/8", "2001:db8::/32")
// or a single address, which means /32 or /128. An IPv4-mapped IPv6 prefix
// of at least /96 ("::ffff:10.0.0.0/104") is folded to the IPv4 prefix
// ("10.0.0.0/8"), since edges decide on the peer address folded the same
// way (DESIGN.md, security invariants). Zones are refused.
//
// Errors are *codes.Error: codes.IPRuleCIDRInvalid when s does not parse, and
// codes.IPRuleCIDRNotNetwork when s is not the lowest address of its range, with
// a message naming the right one ("use 10.0.0.0/8"), as the hosted platform
// refuses it (ERR 1409, docs/api-compatibility.md#ip-policy-rules).
func ParseCIDR(s string) (netip.Prefix, error) {
	invalid := func(cause error) error {
		return codes.NewError(codes.IPRuleCIDRInvalid,
			"%q is not a valid CIDR: give an IPv4 or IPv6 range such as 10.0.0.0/8 or 2001:db8::/32, or a single address.",
			truncate(s, maxCIDRInput)).WithCause(cause)
	}
	if s == "" {
		return netip.Prefix{}, codes.NewError(codes.IPRuleCIDRInvalid,
			"cidr is required: give an IPv4 or IPv6 range such as 10.0.0.0/8 or 2001:db8::/32, or a single address.")
	}
	if len(s) > maxCIDRInput {
		return netip.Prefix{}, invalid(errors.New("too long"))
	}
	p, err := policy.ParseCIDR(s)
	switch {
	case errors.Is(err, policy.ErrCIDRNotNetwork):
		return netip.Prefix{}, codes.NewError(codes.IPRuleCIDRNotNetwork,
			"%s is not written with the lowest address of its range: use %s.", truncate(s, maxCIDRInput), p)
	case err != nil || s != strings.TrimSpace(s):
		return netip.Prefix{}, invalid(err)
	}
	return p, nil
}

// canonicalCIDR is ParseCIDR as the stored string.
func canonicalCIDR(s string) (string, error) {
	p, err := ParseCIDR(s)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// validateAction checks a rule action: "allow" or "deny", exactly.
func validateAction(a string) error {
	if a != IPActionAllow && a != IPActionDeny {
		return codes.NewError(codes.IPRuleAction, "The action of an IP policy rule must be allow or deny, not %q.", truncate(a, 40))
	}
	return nil
}

// normalizePolicyIDs checks the ip_policy_ids of an IP restriction: 1 to
// MaxRestrictionPolicies well-formed ipp_ IDs. Repeats are dropped, order is
// kept.
func normalizePolicyIDs(policyIDs []string) ([]string, error) {
	if len(policyIDs) == 0 {
		return nil, codes.NewError(codes.IPPolicyIDs, "ip_policy_ids must name at least one IP policy.")
	}
	if len(policyIDs) > MaxRestrictionPolicies {
		return nil, codes.NewError(codes.IPPolicyIDs, "ip_policy_ids may name at most %d IP policies; it names %d.",
			MaxRestrictionPolicies, len(policyIDs))
	}
	out := make([]string, 0, len(policyIDs))
	for _, id := range policyIDs {
		if err := checkID(id, ids.PrefixIPPolicy); err != nil {
			return nil, err
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// ---- IP policies ----

const ipPolicyColumns = `SELECT id, account_id, description, metadata, created_at FROM ip_policies`

func scanIPPolicy(r scanner) (IPPolicy, error) {
	var p IPPolicy
	var created int64
	err := r.Scan(&p.ID, &p.AccountID, &p.Description, &p.Metadata, &created)
	p.CreatedAt = fromMicros(created)
	return p, err
}

// CreateIPPolicy creates an empty IP policy in the account. An IP policy
// without rules matches no address (docs/access-control.md#ip-policy-evaluation).
// Errors: *codes.Error for a description over 255 bytes or metadata over
// 4096 bytes; ErrNotFound when the account does not exist.
func (s *Store) CreateIPPolicy(ctx context.Context, actor Actor, accountID string, in IPPolicyCreate) (*IPPolicy, error) {
	if err := validateOptional(&in.Description, &in.Metadata); err != nil {
		return nil, err
	}
	var p *IPPolicy
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
			return err
		}
		p = &IPPolicy{ID: ids.New(ids.PrefixIPPolicy), AccountID: accountID, Description: in.Description,
			Metadata: in.Metadata, CreatedAt: fromMicros(t.stamp())}
		if _, err := t.exec(ctx, `INSERT INTO ip_policies (id, account_id, description, metadata, created_at)
			VALUES ($1, $2, $3, $4, $5)`, p.ID, accountID, p.Description, p.Metadata, t.stamp()); err != nil {
			return fmt.Errorf("creating IP policy: %w", err)
		}
		t.audit("ip_policy_created.v0", accountID, p.ID, map[string]any{"description": p.Description, "metadata": p.Metadata})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// GetIPPolicy returns an IP policy of the account, or ErrNotFound.
func (s *Store) GetIPPolicy(ctx context.Context, accountID, id string) (*IPPolicy, error) {
	return getByID(ctx, s.rdb, ipPolicyColumns, "IP policy", id, accountID, scanIPPolicy)
}

// ListIPPolicies returns one page of the account's IP policies, newest
// first, and whether more remain.
func (s *Store) ListIPPolicies(ctx context.Context, accountID string, page Page) ([]IPPolicy, bool, error) {
	return listPage(ctx, s.rdb, ipPolicyColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanIPPolicy)
}

// UpdateIPPolicy changes an IP policy's description or metadata. A change
// that changes nothing commits nothing. Errors: *codes.Error for invalid
// text, ErrNotFound.
func (s *Store) UpdateIPPolicy(ctx context.Context, actor Actor, accountID, id string, in IPPolicyUpdate) (*IPPolicy, error) {
	if err := validateOptional(in.Description, in.Metadata); err != nil {
		return nil, err
	}
	var p *IPPolicy
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if p, err = getByID(ctx, t.sql, ipPolicyColumns, "IP policy", id, accountID, scanIPPolicy); err != nil {
			return err
		}
		changes := map[string]any{}
		setField(&p.Description, in.Description, "description", changes)
		setField(&p.Metadata, in.Metadata, "metadata", changes)
		if len(changes) == 0 {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE ip_policies SET description = $1, metadata = $2 WHERE id = $3`,
			p.Description, p.Metadata, id); err != nil {
			return fmt.Errorf("updating IP policy %s: %w", id, err)
		}
		t.audit("ip_policy_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// DeleteIPPolicy deletes an IP policy and its rules in one unit of work,
// with an ip_policy_rule_deleted.v0 event per rule. A policy that an IP
// restriction names is refused with a *ConflictError (codes.IPPolicyInUse)
// naming the restrictions: detach it first, so that deleting a policy never
// silently widens or narrows what a restriction admits. Errors also:
// ErrNotFound.
func (s *Store) DeleteIPPolicy(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.policyInAccount(ctx, accountID, id); err != nil {
			return err
		}
		users, err := t.strings(ctx, `SELECT ip_restriction_id FROM ip_restriction_policies WHERE ip_policy_id = $1
			ORDER BY ip_restriction_id`, id)
		if err != nil {
			return fmt.Errorf("reading IP restrictions of policy %s: %w", id, err)
		}
		if len(users) > 0 {
			return conflict(codes.IPPolicyInUse,
				"The IP policy %s is used by the IP restriction(s) %s: remove it from their ip_policy_ids, or delete them, first.",
				id, strings.Join(users, ", "))
		}
		rules, err := t.deleteReturningIDs(ctx, `DELETE FROM ip_policy_rules WHERE ip_policy_id = $1 RETURNING id`, id)
		if err != nil {
			return fmt.Errorf("deleting rules of IP policy %s: %w", id, err)
		}
		slices.Sort(rules)
		for _, r := range rules {
			t.audit("ip_policy_rule_deleted.v0", accountID, r, map[string]any{"ip_policy_id": id, "reason": "ip_policy_deleted"})
		}
		if err := t.deleteOne(ctx, "ip_policies", "IP policy", accountID, id); err != nil {
			return err
		}
		t.audit("ip_policy_deleted.v0", accountID, id, map[string]any{"deleted_rules": nonNil(rules)})
		return nil
	})
	return err
}

// ---- IP policy rules ----

const ipPolicyRuleColumns = `SELECT id, account_id, ip_policy_id, cidr, action, description, metadata, created_at FROM ip_policy_rules`

func scanIPPolicyRule(r scanner) (IPPolicyRule, error) {
	var x IPPolicyRule
	var created int64
	err := r.Scan(&x.ID, &x.AccountID, &x.IPPolicyID, &x.CIDR, &x.Action, &x.Description, &x.Metadata, &created)
	x.CreatedAt = fromMicros(created)
	return x, err
}

// duplicateRule turns the UNIQUE (ip_policy_id, cidr) violation into the
// caller's conflict (ERR 1408, docs/api-compatibility.md#ip-policy-rules).
func duplicateRule(err error, policyID, cidr string) error {
	if isUniqueViolation(err) {
		return conflict(codes.IPRuleDuplicate, "The IP policy %s already has a rule for %s.", policyID, cidr)
	}
	return err
}

// CreateIPPolicyRule adds a rule to an IP policy of the account. The CIDR is
// stored in canonical form (ParseCIDR). Errors: *codes.Error for a bad CIDR
// (codes.IPRuleCIDRInvalid, codes.IPRuleCIDRNotNetwork), action
// (codes.IPRuleAction), description or metadata, or an ip_policy_id that names
// no IP policy of the account (codes.IPRulePolicy); a *ConflictError with
// codes.IPRuleDuplicate when the policy has a rule for the same range already.
func (s *Store) CreateIPPolicyRule(ctx context.Context, actor Actor, accountID string, in IPPolicyRuleCreate) (*IPPolicyRule, error) {
	if in.IPPolicyID == "" {
		return nil, codes.NewError(codes.IPRulePolicy, "ip_policy_id is required: name the IP policy the rule belongs to.")
	}
	if err := checkID(in.IPPolicyID, ids.PrefixIPPolicy); err != nil {
		return nil, err
	}
	cidr, err := canonicalCIDR(in.CIDR)
	if err != nil {
		return nil, err
	}
	if err := validateAction(in.Action); err != nil {
		return nil, err
	}
	if err := validateOptional(&in.Description, &in.Metadata); err != nil {
		return nil, err
	}
	var x *IPPolicyRule
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.policyInAccount(ctx, accountID, in.IPPolicyID); err != nil {
			if !errors.Is(err, ErrNotFound) {
				return err
			}
			// No cause: it would make the error an ErrNotFound (404), and this is a 400.
			return codes.NewError(codes.IPRulePolicy, "ip_policy_id %s names no IP policy of this account.", in.IPPolicyID)
		}
		x = &IPPolicyRule{ID: ids.New(ids.PrefixIPPolicyRule), AccountID: accountID, IPPolicyID: in.IPPolicyID,
			CIDR: cidr, Action: in.Action, Description: in.Description, Metadata: in.Metadata, CreatedAt: fromMicros(t.stamp())}
		if _, err := t.exec(ctx, `INSERT INTO ip_policy_rules (id, account_id, ip_policy_id, cidr, action, description, metadata, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, x.ID, accountID, x.IPPolicyID, x.CIDR, x.Action, x.Description,
			x.Metadata, t.stamp()); err != nil {
			return duplicateRule(fmt.Errorf("creating IP policy rule: %w", err), x.IPPolicyID, x.CIDR)
		}
		t.audit("ip_policy_rule_created.v0", accountID, x.ID, map[string]any{"ip_policy_id": x.IPPolicyID,
			"cidr": x.CIDR, "action": x.Action, "description": x.Description, "metadata": x.Metadata})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// GetIPPolicyRule returns an IP policy rule of the account, or ErrNotFound.
func (s *Store) GetIPPolicyRule(ctx context.Context, accountID, id string) (*IPPolicyRule, error) {
	return getByID(ctx, s.rdb, ipPolicyRuleColumns, "IP policy rule", id, accountID, scanIPPolicyRule)
}

// ListIPPolicyRules returns one page of the account's IP policy rules (of
// every policy), newest first, and whether more remain.
func (s *Store) ListIPPolicyRules(ctx context.Context, accountID string, page Page) ([]IPPolicyRule, bool, error) {
	return listPage(ctx, s.rdb, ipPolicyRuleColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanIPPolicyRule)
}

// UpdateIPPolicyRule changes a rule's CIDR, action, description or metadata.
// Errors as CreateIPPolicyRule, and ErrNotFound.
func (s *Store) UpdateIPPolicyRule(ctx context.Context, actor Actor, accountID, id string, in IPPolicyRuleUpdate) (*IPPolicyRule, error) {
	var cidr string
	if in.CIDR != nil {
		var err error
		if cidr, err = canonicalCIDR(*in.CIDR); err != nil {
			return nil, err
		}
	}
	if in.Action != nil {
		if err := validateAction(*in.Action); err != nil {
			return nil, err
		}
	}
	if err := validateOptional(in.Description, in.Metadata); err != nil {
		return nil, err
	}
	var x *IPPolicyRule
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if x, err = getByID(ctx, t.sql, ipPolicyRuleColumns, "IP policy rule", id, accountID, scanIPPolicyRule); err != nil {
			return err
		}
		changes := map[string]any{}
		if in.CIDR != nil {
			setField(&x.CIDR, &cidr, "cidr", changes)
		}
		setField(&x.Action, in.Action, "action", changes)
		setField(&x.Description, in.Description, "description", changes)
		setField(&x.Metadata, in.Metadata, "metadata", changes)
		if len(changes) == 0 {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE ip_policy_rules SET cidr = $1, action = $2, description = $3, metadata = $4 WHERE id = $5`,
			x.CIDR, x.Action, x.Description, x.Metadata, id); err != nil {
			return duplicateRule(fmt.Errorf("updating IP policy rule %s: %w", id, err), x.IPPolicyID, x.CIDR)
		}
		changes["ip_policy_id"] = x.IPPolicyID
		t.audit("ip_policy_rule_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// DeleteIPPolicyRule deletes a rule of the account, or returns ErrNotFound.
func (s *Store) DeleteIPPolicyRule(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		x, err := getByID(ctx, t.sql, ipPolicyRuleColumns, "IP policy rule", id, accountID, scanIPPolicyRule)
		if err != nil {
			return err
		}
		if err := t.deleteOne(ctx, "ip_policy_rules", "IP policy rule", accountID, id); err != nil {
			return err
		}
		t.audit("ip_policy_rule_deleted.v0", accountID, id, map[string]any{"ip_policy_id": x.IPPolicyID, "cidr": x.CIDR})
		return nil
	})
	return err
}

// ---- IP restrictions ----

// ipRestrictionColumns reads a restriction with its policy IDs in order, as
// one comma-separated string (IDs never hold a comma). Both SQLite (3.44+)
// and PostgreSQL have string_agg with ORDER BY.
const ipRestrictionColumns = `SELECT r.id, r.account_id, r.type, r.enforced, r.description, r.metadata, r.created_at,
	(SELECT string_agg(x.ip_policy_id, ',' ORDER BY x.position) FROM ip_restriction_policies x WHERE x.ip_restriction_id = r.id)
	FROM ip_restrictions r`

func scanIPRestriction(r scanner) (IPRestriction, error) {
	var x IPRestriction
	var created int64
	var joined sql.NullString
	err := r.Scan(&x.ID, &x.AccountID, &x.Type, &x.Enforced, &x.Description, &x.Metadata, &created, &joined)
	x.CreatedAt = fromMicros(created)
	if joined.String != "" {
		x.IPPolicyIDs = strings.Split(joined.String, ",")
	}
	return x, err
}

// getIPRestriction reads restriction id of the account through q.
func getIPRestriction(ctx context.Context, q queryer, accountID, id string) (*IPRestriction, error) {
	return getRow(q.QueryRowContext(ctx, ipRestrictionColumns+` WHERE r.id = $1 AND r.account_id = $2`, id, accountID),
		"IP restriction", id, scanIPRestriction)
}

// CreateIPRestriction creates an IP restriction of the account. Type is
// dashboard, api, agent or endpoints; IPPolicyIDs names 1–MaxRestrictionPolicies IP
// policies of the same account (repeats dropped, order kept). Enforced false
// means denials are only reported (docs/api-compatibility.md#ip-restrictions).
// Errors: *codes.Error with codes.IPRestrictionType, codes.APIInvalidID (a
// malformed policy ID), codes.IPPolicyIDs (empty, too many, or a policy not in
// the account), or for invalid text.
func (s *Store) CreateIPRestriction(ctx context.Context, actor Actor, accountID string, in IPRestrictionCreate) (*IPRestriction, error) {
	if !slices.Contains(ipRestrictionTypes, in.Type) {
		return nil, codes.NewError(codes.IPRestrictionType, "The type of an IP restriction must be one of %s, not %q.",
			strings.Join(ipRestrictionTypes, ", "), truncate(in.Type, 40))
	}
	policyIDs, err := normalizePolicyIDs(in.IPPolicyIDs)
	if err != nil {
		return nil, err
	}
	if err := validateOptional(&in.Description, &in.Metadata); err != nil {
		return nil, err
	}
	var x *IPRestriction
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
			return err
		}
		x = &IPRestriction{ID: ids.New(ids.PrefixIPRestriction), AccountID: accountID, Type: in.Type,
			Enforced: in.Enforced, IPPolicyIDs: policyIDs, Description: in.Description, Metadata: in.Metadata,
			CreatedAt: fromMicros(t.stamp())}
		if _, err := t.exec(ctx, `INSERT INTO ip_restrictions (id, account_id, type, enforced, description, metadata, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, x.ID, accountID, x.Type, x.Enforced, x.Description, x.Metadata,
			t.stamp()); err != nil {
			return fmt.Errorf("creating IP restriction: %w", err)
		}
		if err := t.setRestrictionPolicies(ctx, accountID, x.ID, policyIDs); err != nil {
			return err
		}
		t.audit("ip_restriction_created.v0", accountID, x.ID, map[string]any{"type": x.Type, "enforced": x.Enforced,
			"ip_policy_ids": x.IPPolicyIDs, "description": x.Description, "metadata": x.Metadata})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// GetIPRestriction returns an IP restriction of the account, or ErrNotFound.
func (s *Store) GetIPRestriction(ctx context.Context, accountID, id string) (*IPRestriction, error) {
	return getIPRestriction(ctx, s.rdb, accountID, id)
}

// ListIPRestrictions returns one page of the account's IP restrictions,
// newest first, and whether more remain.
func (s *Store) ListIPRestrictions(ctx context.Context, accountID string, page Page) ([]IPRestriction, bool, error) {
	return listPage(ctx, s.rdb, ipRestrictionColumns+` WHERE r.account_id = $1`, "r.id", []any{accountID}, page, scanIPRestriction)
}

// UpdateIPRestriction changes whether a restriction is enforced, the
// policies it names (the list is replaced), its description or metadata.
// Errors as CreateIPRestriction, and ErrNotFound.
func (s *Store) UpdateIPRestriction(ctx context.Context, actor Actor, accountID, id string, in IPRestrictionUpdate) (*IPRestriction, error) {
	var policyIDs []string
	if in.IPPolicyIDs != nil {
		var err error
		if policyIDs, err = normalizePolicyIDs(*in.IPPolicyIDs); err != nil {
			return nil, err
		}
	}
	if err := validateOptional(in.Description, in.Metadata); err != nil {
		return nil, err
	}
	var x *IPRestriction
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if x, err = getIPRestriction(ctx, t.sql, accountID, id); err != nil {
			return err
		}
		changes := map[string]any{}
		setField(&x.Enforced, in.Enforced, "enforced", changes)
		setField(&x.Description, in.Description, "description", changes)
		setField(&x.Metadata, in.Metadata, "metadata", changes)
		if in.IPPolicyIDs != nil && !slices.Equal(policyIDs, x.IPPolicyIDs) {
			if _, err := t.exec(ctx, `DELETE FROM ip_restriction_policies WHERE ip_restriction_id = $1`, id); err != nil {
				return fmt.Errorf("updating IP restriction %s: %w", id, err)
			}
			if err := t.setRestrictionPolicies(ctx, accountID, id, policyIDs); err != nil {
				return err
			}
			x.IPPolicyIDs = policyIDs
			changes["ip_policy_ids"] = policyIDs
		}
		if len(changes) == 0 {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE ip_restrictions SET enforced = $1, description = $2, metadata = $3 WHERE id = $4`,
			x.Enforced, x.Description, x.Metadata, id); err != nil {
			return fmt.Errorf("updating IP restriction %s: %w", id, err)
		}
		t.audit("ip_restriction_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// DeleteIPRestriction deletes an IP restriction of the account (its
// policies stay), or returns ErrNotFound.
func (s *Store) DeleteIPRestriction(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.deleteOne(ctx, "ip_restrictions", "IP restriction", accountID, id); err != nil {
			return err
		}
		t.audit("ip_restriction_deleted.v0", accountID, id, map[string]any{})
		return nil
	})
	return err
}

// setRestrictionPolicies links a restriction to ids, in order, after
// checking that each is a policy of the account.
func (t *tx) setRestrictionPolicies(ctx context.Context, accountID, restrictionID string, policyIDs []string) error {
	for i, pid := range policyIDs {
		if err := t.policyInAccount(ctx, accountID, pid); err != nil {
			if !errors.Is(err, ErrNotFound) {
				return err
			}
			return codes.NewError(codes.IPPolicyIDs, "ip_policy_ids names %s, which is not an IP policy of this account.", pid)
		}
		if _, err := t.exec(ctx, `INSERT INTO ip_restriction_policies (ip_restriction_id, ip_policy_id, position) VALUES ($1, $2, $3)`,
			restrictionID, pid, i); err != nil {
			return fmt.Errorf("linking IP restriction %s to policy %s: %w", restrictionID, pid, err)
		}
	}
	return nil
}

// policyInAccount returns ErrNotFound unless id is an IP policy of the
// account.
func (t *tx) policyInAccount(ctx context.Context, accountID, id string) error {
	var one int
	err := t.queryRow(ctx, `SELECT 1 FROM ip_policies WHERE id = $1 AND account_id = $2`, id, accountID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("IP policy %s in account %s: %w", id, accountID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reading IP policy %s: %w", id, err)
	}
	return nil
}
