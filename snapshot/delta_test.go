package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// canon sorts every collection by ID so two Data compare equal
// regardless of order.
func canon(t *testing.T, d Data) string {
	t.Helper()
	slices.SortFunc(d.Accounts, func(a, b Account) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.Principals, func(a, b Principal) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.Authtokens, func(a, b Authtoken) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.IPPolicies, func(a, b IPPolicy) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.SSHCredentials, func(a, b SSHCredential) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.ReservedDomains, func(a, b ReservedDomain) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.ReservedAddrs, func(a, b ReservedAddr) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.IPRestrictions, func(a, b IPRestriction) int { return strings.Compare(a.ID, b.ID) })
	d.Accounts, d.Principals = nilIfEmpty(d.Accounts), nilIfEmpty(d.Principals)
	d.Authtokens, d.IPPolicies = nilIfEmpty(d.Authtokens), nilIfEmpty(d.IPPolicies)
	d.SSHCredentials, d.ReservedDomains = nilIfEmpty(d.SSHCredentials), nilIfEmpty(d.ReservedDomains)
	d.ReservedAddrs, d.IPRestrictions = nilIfEmpty(d.ReservedAddrs), nilIfEmpty(d.IPRestrictions)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func randomData(r *rand.Rand, rev uint64) Data {
	d := Data{Revision: rev, CreatedAt: time.Unix(int64(rev), 0).UTC()}
	for i := range r.IntN(5) {
		d.Accounts = append(d.Accounts, Account{ID: fmt.Sprintf("acct_%d", i*2+r.IntN(2)), Name: "a", Active: r.IntN(2) == 0})
	}
	d.Accounts = slices.CompactFunc(d.Accounts, func(a, b Account) bool { return a.ID == b.ID })
	for i := range r.IntN(8) {
		d.Principals = append(d.Principals, Principal{ID: fmt.Sprintf("bot_%d", i), Kind: PrincipalBot, Active: r.IntN(3) > 0, AccountIDs: []string{"acct_0"}})
	}
	for i := range r.IntN(30) {
		if r.IntN(3) == 0 {
			continue
		}
		var acl []string
		if r.IntN(2) == 0 {
			acl = []string{fmt.Sprintf("bind:%d.example.com", r.IntN(3))}
		}
		d.Authtokens = append(d.Authtokens, Authtoken{ID: fmt.Sprintf("cr_%d", i), AccountID: "acct_0", OwnerID: "bot_0", SecretHash: fmt.Sprint(r.IntN(2)), ACL: acl})
	}
	for i := range r.IntN(4) {
		p := IPPolicy{ID: fmt.Sprintf("ipp_%d", i), AccountID: "acct_0"}
		for j := range r.IntN(3) {
			p.Rules = append(p.Rules, IPPolicyRule{ID: fmt.Sprintf("ipr_%d_%d", i, j), CIDR: "10.0.0.0/8", Action: "allow"})
		}
		d.IPPolicies = append(d.IPPolicies, p)
	}
	// Second keys (fingerprint, domain, address) move between IDs across
	// revisions, as when one reservation is released and another takes
	// the name.
	fps := r.Perm(8)
	for i := range r.IntN(6) {
		d.SSHCredentials = append(d.SSHCredentials, SSHCredential{ID: fmt.Sprintf("sshcr_%d", i), AccountID: "acct_0",
			OwnerID: "bot_0", Fingerprint: fmt.Sprintf("SHA256:%d", fps[i])})
	}
	names := r.Perm(8)
	for i := range r.IntN(6) {
		d.ReservedDomains = append(d.ReservedDomains, ReservedDomain{ID: fmt.Sprintf("rd_%d", i), AccountID: "acct_0",
			Domain: fmt.Sprintf("%d.example.com", names[i]), Region: []string{"us", "eu"}[r.IntN(2)]})
		d.ReservedAddrs = append(d.ReservedAddrs, ReservedAddr{ID: fmt.Sprintf("ra_%d", i), AccountID: "acct_0",
			Addr: fmt.Sprintf("1.tcp.example.com:%d", 20000+names[(i+1)%8]), Region: "us"})
	}
	for i := range r.IntN(5) {
		d.IPRestrictions = append(d.IPRestrictions, IPRestriction{ID: fmt.Sprintf("ipx_%d", i),
			AccountID: fmt.Sprintf("acct_%d", r.IntN(3)), Type: []string{"agent", "endpoints"}[r.IntN(2)],
			Enforced: r.IntN(2) == 0, IPPolicyIDs: []string{"ipp_0"}})
	}
	return d
}

func TestDeltaRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 500 {
		from, to := randomData(r, uint64(i)), randomData(r, uint64(i)+1+uint64(r.IntN(3)))
		d := Diff(&from, &to)
		// Over the wire, as the feed sends it.
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(d); err != nil {
			t.Fatal(err)
		}
		var got Delta
		if err := json.NewDecoder(&buf).Decode(&got); err != nil {
			t.Fatal(err)
		}
		out, err := got.Apply(&from)
		if err != nil {
			t.Fatal(err)
		}
		if canon(t, out) != canon(t, to) {
			t.Fatalf("round %d: Apply(Diff) differs:\n got %s\nwant %s", i, canon(t, out), canon(t, to))
		}
		if _, err := New(out); err != nil {
			t.Fatalf("round %d: applied delta does not index: %v", i, err)
		}
	}
}

func TestDeltaOnlyChanges(t *testing.T) {
	from := Data{Revision: 4,
		Accounts:   []Account{{ID: "acct_1", Active: true}},
		Authtokens: []Authtoken{{ID: "cr_1", SecretHash: "h1"}, {ID: "cr_2", SecretHash: "h2"}, {ID: "cr_3", SecretHash: "h3"}},
	}
	to := Data{Revision: 6,
		Accounts:   []Account{{ID: "acct_1", Active: true}},
		Authtokens: []Authtoken{{ID: "cr_1", SecretHash: "h1"}, {ID: "cr_2", SecretHash: "h2", ACL: []string{"bind:x.example.com"}}, {ID: "cr_4"}},
	}
	d := Diff(&from, &to)
	if d.Accounts != nil || d.Principals != nil {
		t.Errorf("unchanged collections in the delta: %+v", d)
	}
	if d.Size() != 3 || len(d.Authtokens.Upsert) != 2 || !slices.Equal(d.Authtokens.Delete, []string{"cr_3"}) {
		t.Errorf("authtokens delta = %+v, want upsert cr_2 cr_4, delete cr_3", d.Authtokens)
	}
	if _, err := d.Apply(&to); err == nil {
		t.Error("a delta applied to the wrong revision")
	}
	back := &Delta{From: 6, Revision: 5}
	if _, err := back.Apply(&to); err == nil {
		t.Error("a delta going back in revisions applied")
	}
}
