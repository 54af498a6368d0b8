package store

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

func TestParseCIDR(t *testing.T) {
	cases := []struct {
		in, want string
		code     codes.Code
		msg      string // a substring of the error message
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "203.0.113.7", want: "203.0.113.7/32"},
		{in: "203.0.113.7/32", want: "203.0.113.7/32"},
		{in: "::/0", want: "::/0"},
		{in: "::0/0", want: "::/0"},
		{in: "2001:DB8::/32", want: "2001:db8::/32"},
		{in: "2001:0db8:0000::/48", want: "2001:db8::/48"},
		{in: "2001:db8::1", want: "2001:db8::1/128"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::ffff:192.0.2.1", want: "192.0.2.1/32"},
		{in: "::ffff:0:0/96", want: "0.0.0.0/0"},
		{in: "10.0.0.5/8", code: codes.IPRuleCIDRNotNetwork, msg: "use 10.0.0.0/8"},
		{in: "10.0.0.5/24", code: codes.IPRuleCIDRNotNetwork, msg: "use 10.0.0.0/24"},
		{in: "2001:db8::1/32", code: codes.IPRuleCIDRNotNetwork, msg: "use 2001:db8::/32"},
		{in: "::ffff:10.1.2.3/104", code: codes.IPRuleCIDRNotNetwork, msg: "use 10.0.0.0/8"},
		{in: "", code: codes.IPRuleCIDRInvalid, msg: "required"},
		{in: "10.0.0.0/33", code: codes.IPRuleCIDRInvalid},
		{in: "10.0.0/8", code: codes.IPRuleCIDRInvalid},
		{in: "010.0.0.0/8", code: codes.IPRuleCIDRInvalid},
		{in: " 10.0.0.0/8", code: codes.IPRuleCIDRInvalid},
		{in: "10.0.0.0/", code: codes.IPRuleCIDRInvalid},
		{in: "10.0.0.0/-1", code: codes.IPRuleCIDRInvalid},
		{in: "fe80::1%eth0", code: codes.IPRuleCIDRInvalid},
		{in: "fe80::%eth0/64", code: codes.IPRuleCIDRInvalid},
		{in: "example.com", code: codes.IPRuleCIDRInvalid},
		{in: strings.Repeat("1", 100), code: codes.IPRuleCIDRInvalid},
	}
	for _, tc := range cases {
		p, err := ParseCIDR(tc.in)
		if tc.code == "" {
			if err != nil || p.String() != tc.want {
				t.Errorf("ParseCIDR(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
			}
			continue
		}
		var ce *codes.Error
		if !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(ce.Message, tc.msg) {
			t.Errorf("ParseCIDR(%q) = %v, %v; want code %s with %q", tc.in, p, err, tc.code, tc.msg)
		}
	}
}

// FuzzParseCIDR checks that whatever ParseCIDR accepts is canonical: a
// network address, never IPv4-mapped, and a fixed point of ParseCIDR.
func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.0.0.5/8", "::ffff:10.0.0.0/104", "2001:db8::1", "fe80::1%eth0", "::/0", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCIDR(s)
		if err != nil {
			var ce *codes.Error
			if !errors.As(err, &ce) || (ce.Code != codes.IPRuleCIDRInvalid && ce.Code != codes.IPRuleCIDRNotNetwork) {
				t.Fatalf("ParseCIDR(%q): uncoded error %v", s, err)
			}
			return
		}
		if p != p.Masked() || (p.Addr().Is4In6() && p.Bits() >= 96) || p.Addr().Zone() != "" {
			t.Fatalf("ParseCIDR(%q) = %v is not canonical", s, p)
		}
		again, err := ParseCIDR(p.String())
		if err != nil || again != p {
			t.Fatalf("ParseCIDR(%q) = %v, but ParseCIDR(%v) = %v, %v", s, p, p, again, err)
		}
		if q, err := netip.ParsePrefix(s); err == nil && q == q.Masked() && !q.Addr().Is4In6() && q != p {
			t.Fatalf("ParseCIDR(%q) = %v, netip says %v", s, p, q)
		}
	})
}

// wantAudit checks that exactly one event of the type names the object, the
// actor, and the revision the store is at now (so it was written by the
// unit of work that bumped it).
func wantAudit(t *testing.T, s *Store, actor Actor, typ, objectID string) AuditEvent {
	t.Helper()
	evs := auditOf(t, s, actor.AccountID, typ, objectID)
	if len(evs) != 1 {
		t.Fatalf("%d %s events for %s, want 1", len(evs), typ, objectID)
	}
	ev := evs[0]
	if ev.ActorID != actor.PrincipalID || ev.ActorCredentialID != actor.CredentialID || ev.Revision != rev(t, s) {
		t.Fatalf("%s event = %+v, want actor %s/%s at revision %d", typ, ev, actor.PrincipalID, actor.CredentialID, rev(t, s))
	}
	return ev
}

func TestIPPolicyRulesStore(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		actor := f.actor
		actor.CredentialID = "ak_test"
		acct := f.account.ID

		p, err := s.CreateIPPolicy(ctx, actor, acct, IPPolicyCreate{Description: "office"})
		if err != nil || !strings.HasPrefix(p.ID, "ipp_") || p.Description != "office" {
			t.Fatalf("CreateIPPolicy = %+v, %v", p, err)
		}
		wantAudit(t, s, actor, "ip_policy_created.v0", p.ID)
		p2, err := s.CreateIPPolicy(ctx, actor, acct, IPPolicyCreate{})
		if err != nil {
			t.Fatal(err)
		}

		r1, err := s.CreateIPPolicyRule(ctx, actor, acct, IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "::ffff:10.0.0.0/104", Action: "allow"})
		if err != nil || r1.CIDR != "10.0.0.0/8" || r1.IPPolicyID != p.ID {
			t.Fatalf("CreateIPPolicyRule = %+v, %v", r1, err)
		}
		ev := wantAudit(t, s, actor, "ip_policy_rule_created.v0", r1.ID)
		var payload map[string]any
		if err := json.Unmarshal(ev.Payload, &payload); err != nil || payload["cidr"] != "10.0.0.0/8" || payload["ip_policy_id"] != p.ID {
			t.Fatalf("rule created payload = %s", ev.Payload)
		}

		// Refusals leave the revision where it was.
		before := rev(t, s)
		refused := []struct {
			name string
			in   IPPolicyRuleCreate
			code codes.Code
		}{
			{"duplicate, same text", IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "10.0.0.0/8", Action: "deny"}, codes.IPRuleDuplicate},
			{"duplicate, other spelling", IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "::ffff:a00:0/104", Action: "allow"}, codes.IPRuleDuplicate},
			{"not the network", IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "10.0.0.5/8", Action: "allow"}, codes.IPRuleCIDRNotNetwork},
			{"bad action", IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "10.1.0.0/16", Action: "Allow"}, codes.IPRuleAction},
			{"no action", IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "10.1.0.0/16"}, codes.IPRuleAction},
			{"no policy", IPPolicyRuleCreate{CIDR: "10.1.0.0/16", Action: "allow"}, codes.IPRulePolicy},
			{"unknown policy", IPPolicyRuleCreate{IPPolicyID: ids.New("ipp"), CIDR: "10.1.0.0/16", Action: "allow"}, codes.IPRulePolicy},
			{"malformed policy", IPPolicyRuleCreate{IPPolicyID: "ipp_1", CIDR: "10.1.0.0/16", Action: "allow"}, codes.APIInvalidID},
			{"description", IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "10.1.0.0/16", Action: "allow", Description: strings.Repeat("d", 256)}, codes.APIDescriptionLength},
			{"metadata", IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "10.1.0.0/16", Action: "allow", Metadata: strings.Repeat("m", 4097)}, codes.APIMetadataLength},
		}
		for _, tc := range refused {
			_, err := s.CreateIPPolicyRule(ctx, actor, acct, tc.in)
			var ce *codes.Error
			var cfe *ConflictError
			switch {
			case errors.As(err, &cfe):
				if cfe.Code != tc.code || !errors.Is(err, ErrConflict) {
					t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
				}
			case errors.As(err, &ce):
				if ce.Code != tc.code {
					t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
				}
			default:
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
		}
		if after := rev(t, s); after != before {
			t.Fatalf("refused rules moved the revision %d -> %d", before, after)
		}

		// The same range in another policy is fine; so is another range here.
		if _, err := s.CreateIPPolicyRule(ctx, actor, acct, IPPolicyRuleCreate{IPPolicyID: p2.ID, CIDR: "10.0.0.0/8", Action: "deny"}); err != nil {
			t.Fatal(err)
		}
		r2, err := s.CreateIPPolicyRule(ctx, actor, acct, IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "2001:db8::/32", Action: "deny"})
		if err != nil {
			t.Fatal(err)
		}
		// Updating onto an existing range is a duplicate too.
		if _, err := s.UpdateIPPolicyRule(ctx, actor, acct, r2.ID, IPPolicyRuleUpdate{CIDR: ptr("10.0.0.0/8")}); !isConflict(err, codes.IPRuleDuplicate) {
			t.Fatalf("update onto a duplicate: %v", err)
		}
		up, err := s.UpdateIPPolicyRule(ctx, actor, acct, r2.ID, IPPolicyRuleUpdate{CIDR: ptr("2001:DB8:1::/48"), Action: ptr("allow")})
		if err != nil || up.CIDR != "2001:db8:1::/48" || up.Action != "allow" {
			t.Fatalf("UpdateIPPolicyRule = %+v, %v", up, err)
		}
		wantAudit(t, s, actor, "ip_policy_rule_updated.v0", r2.ID)
		// An update that changes nothing commits nothing.
		before = rev(t, s)
		if _, err := s.UpdateIPPolicyRule(ctx, actor, acct, r2.ID, IPPolicyRuleUpdate{CIDR: ptr("2001:db8:1::/48")}); err != nil {
			t.Fatal(err)
		}
		if rev(t, s) != before {
			t.Fatal("a no-op update bumped the revision")
		}
		got, err := s.GetIPPolicyRule(ctx, acct, r2.ID)
		if err != nil || got.CIDR != "2001:db8:1::/48" {
			t.Fatalf("GetIPPolicyRule = %+v, %v", got, err)
		}

		// Another account sees none of it and cannot use it.
		other, err := s.CreateAccount(ctx, SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetIPPolicy(ctx, other.ID, p.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other account's GetIPPolicy: %v", err)
		}
		if _, err := s.GetIPPolicyRule(ctx, other.ID, r1.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other account's GetIPPolicyRule: %v", err)
		}
		otherActor := Actor{AccountID: other.ID, PrincipalID: "system"}
		if _, err := s.CreateIPPolicyRule(ctx, otherActor, other.ID, IPPolicyRuleCreate{IPPolicyID: p.ID, CIDR: "1.2.3.4", Action: "allow"}); !hasCode(err, codes.IPRulePolicy) {
			t.Fatalf("rule in another account's policy: %v", err)
		}
		if err := s.DeleteIPPolicyRule(ctx, otherActor, other.ID, r1.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other account's DeleteIPPolicyRule: %v", err)
		}
		if list, _, err := s.ListIPPolicyRules(ctx, other.ID, Page{}); err != nil || len(list) != 0 {
			t.Fatalf("other account lists %d rules, %v", len(list), err)
		}
		list, more, err := s.ListIPPolicyRules(ctx, acct, Page{Limit: 2})
		if err != nil || len(list) != 2 || !more {
			t.Fatalf("ListIPPolicyRules = %d items, more %v, %v", len(list), more, err)
		}

		if err := s.DeleteIPPolicyRule(ctx, actor, acct, r1.ID); err != nil {
			t.Fatal(err)
		}
		wantAudit(t, s, actor, "ip_policy_rule_deleted.v0", r1.ID)
		if _, err := s.GetIPPolicyRule(ctx, acct, r1.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted rule: %v", err)
		}
	})
}

func TestIPRestrictionsStore(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		actor, acct := f.actor, f.account.ID
		pa, err := s.CreateIPPolicy(ctx, actor, acct, IPPolicyCreate{Description: "a"})
		if err != nil {
			t.Fatal(err)
		}
		pb, err := s.CreateIPPolicy(ctx, actor, acct, IPPolicyCreate{Description: "b"})
		if err != nil {
			t.Fatal(err)
		}
		ra, err := s.CreateIPPolicyRule(ctx, actor, acct, IPPolicyRuleCreate{IPPolicyID: pa.ID, CIDR: "192.0.2.0/24", Action: "allow"})
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.CreateAccount(ctx, SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		foreign, err := s.CreateIPPolicy(ctx, SystemActor, other.ID, IPPolicyCreate{})
		if err != nil {
			t.Fatal(err)
		}

		before := rev(t, s)
		for _, tc := range []struct {
			name string
			in   IPRestrictionCreate
			code codes.Code
		}{
			{"bad type", IPRestrictionCreate{Type: "ssh", IPPolicyIDs: []string{pa.ID}}, codes.IPRestrictionType},
			{"no type", IPRestrictionCreate{IPPolicyIDs: []string{pa.ID}}, codes.IPRestrictionType},
			{"no policies", IPRestrictionCreate{Type: "api"}, codes.IPPolicyIDs},
			{"foreign policy", IPRestrictionCreate{Type: "api", IPPolicyIDs: []string{pa.ID, foreign.ID}}, codes.IPPolicyIDs},
			{"malformed policy", IPRestrictionCreate{Type: "api", IPPolicyIDs: []string{"ipr_x"}}, codes.APIInvalidID},
		} {
			if _, err := s.CreateIPRestriction(ctx, actor, acct, tc.in); !hasCode(err, tc.code) {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
		}
		if rev(t, s) != before {
			t.Fatal("refused restrictions moved the revision")
		}

		x, err := s.CreateIPRestriction(ctx, actor, acct, IPRestrictionCreate{Type: "agent", Enforced: true,
			IPPolicyIDs: []string{pb.ID, pa.ID, pb.ID}, Description: "agents"})
		if err != nil || !strings.HasPrefix(x.ID, "ipx_") || !slices.Equal(x.IPPolicyIDs, []string{pb.ID, pa.ID}) {
			t.Fatalf("CreateIPRestriction = %+v, %v", x, err)
		}
		wantAudit(t, s, actor, "ip_restriction_created.v0", x.ID)
		got, err := s.GetIPRestriction(ctx, acct, x.ID)
		if err != nil || !slices.Equal(got.IPPolicyIDs, []string{pb.ID, pa.ID}) || !got.Enforced || got.Type != "agent" {
			t.Fatalf("GetIPRestriction = %+v, %v", got, err)
		}
		if _, err := s.GetIPRestriction(ctx, other.ID, x.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("other account's GetIPRestriction: %v", err)
		}

		// The snapshot carries policies with rules and the restriction.
		snap, err := s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sp, ok := snap.IPPolicy(pa.ID)
		if !ok || sp.AccountID != acct || len(sp.Rules) != 1 || sp.Rules[0] != (snapshot.IPPolicyRule{ID: ra.ID, CIDR: "192.0.2.0/24", Action: "allow"}) {
			t.Fatalf("snapshot policy = %+v", sp)
		}
		if sp, ok := snap.IPPolicy(pb.ID); !ok || len(sp.Rules) != 0 {
			t.Fatalf("snapshot empty policy = %+v, %v", sp, ok)
		}
		rs := snap.IPRestrictions(acct)
		if len(rs) != 1 || rs[0].ID != x.ID || rs[0].Type != "agent" || !rs[0].Enforced || !slices.Equal(rs[0].IPPolicyIDs, []string{pb.ID, pa.ID}) {
			t.Fatalf("snapshot restrictions = %+v", rs)
		}

		// A policy in use cannot be deleted; nothing changes.
		before = rev(t, s)
		err = s.DeleteIPPolicy(ctx, actor, acct, pa.ID)
		var cfe *ConflictError
		if !errors.As(err, &cfe) || cfe.Code != codes.IPPolicyInUse || !strings.Contains(cfe.Message, x.ID) {
			t.Fatalf("deleting a policy in use: %v", err)
		}
		if rev(t, s) != before {
			t.Fatal("refused delete moved the revision")
		}
		if _, err := s.GetIPPolicyRule(ctx, acct, ra.ID); err != nil {
			t.Fatalf("refused delete lost a rule: %v", err)
		}

		// Replace the list, then the policy is free to go with its rules.
		up, err := s.UpdateIPRestriction(ctx, actor, acct, x.ID, IPRestrictionUpdate{IPPolicyIDs: &[]string{pb.ID}, Enforced: ptr(false)})
		if err != nil || !slices.Equal(up.IPPolicyIDs, []string{pb.ID}) || up.Enforced {
			t.Fatalf("UpdateIPRestriction = %+v, %v", up, err)
		}
		wantAudit(t, s, actor, "ip_restriction_updated.v0", x.ID)
		if _, err := s.UpdateIPRestriction(ctx, actor, acct, x.ID, IPRestrictionUpdate{IPPolicyIDs: &[]string{}}); !hasCode(err, codes.IPPolicyIDs) {
			t.Fatalf("emptying ip_policy_ids: %v", err)
		}
		if err := s.DeleteIPPolicy(ctx, actor, acct, pa.ID); err != nil {
			t.Fatal(err)
		}
		wantAudit(t, s, actor, "ip_policy_deleted.v0", pa.ID)
		ruleEv := wantAudit(t, s, actor, "ip_policy_rule_deleted.v0", ra.ID)
		if !strings.Contains(string(ruleEv.Payload), "ip_policy_deleted") {
			t.Fatalf("rule deletion payload %s", ruleEv.Payload)
		}
		if _, err := s.GetIPPolicyRule(ctx, acct, ra.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("rule of a deleted policy: %v", err)
		}

		if err := s.DeleteIPRestriction(ctx, actor, acct, x.ID); err != nil {
			t.Fatal(err)
		}
		wantAudit(t, s, actor, "ip_restriction_deleted.v0", x.ID)
		if err := s.DeleteIPRestriction(ctx, actor, acct, x.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		// The restriction's policies outlive it.
		if _, err := s.GetIPPolicy(ctx, acct, pb.ID); err != nil {
			t.Fatal(err)
		}
		snap, err = s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.IPPolicy(pa.ID); ok || len(snap.IPRestrictions(acct)) != 0 {
			t.Fatal("the snapshot still has the deleted policy or restriction")
		}
	})
}

func hasCode(err error, code codes.Code) bool {
	var ce *codes.Error
	return errors.As(err, &ce) && ce.Code == code
}

func isConflict(err error, code codes.Code) bool {
	var cfe *ConflictError
	return errors.As(err, &cfe) && cfe.Code == code && errors.Is(err, ErrConflict)
}
