package store

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

// canonSnapshot renders a snapshot's content in a canonical order, without
// its creation time, for comparing two snapshots.
func canonSnapshot(t testing.TB, s *snapshot.Snapshot) string {
	t.Helper()
	d := s.Data()
	d.CreatedAt = time.Time{}
	slices.SortFunc(d.Accounts, func(a, b snapshot.Account) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.Principals, func(a, b snapshot.Principal) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.Authtokens, func(a, b snapshot.Authtoken) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.SSHCredentials, func(a, b snapshot.SSHCredential) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.ReservedDomains, func(a, b snapshot.ReservedDomain) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.ReservedAddrs, func(a, b snapshot.ReservedAddr) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.IPPolicies, func(a, b snapshot.IPPolicy) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(d.IPRestrictions, func(a, b snapshot.IPRestriction) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// follower keeps a snapshot up to date from Changes alone, as the control
// plane's feed does, and checks it against a fresh BuildSnapshot.
type follower struct {
	t    *testing.T
	s    *Store
	snap *snapshot.Snapshot
}

func newFollower(t *testing.T, s *Store) *follower {
	snap, err := s.BuildSnapshot(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return &follower{t: t, s: s, snap: snap}
}

// step applies the changes since the follower's revision and compares.
// It returns the delta.
func (f *follower) step(what string) *snapshot.Delta {
	f.t.Helper()
	ctx := testCtx(f.t)
	d, err := f.s.Changes(ctx, f.snap.Revision())
	if err != nil {
		f.t.Fatalf("%s: Changes: %v", what, err)
	}
	next, err := f.snap.Apply(d)
	if err != nil {
		f.t.Fatalf("%s: applying the delta: %v", what, err)
	}
	fresh, err := f.s.BuildSnapshot(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if next.Revision() != fresh.Revision() {
		f.t.Fatalf("%s: delta to revision %d, store at %d", what, next.Revision(), fresh.Revision())
	}
	if got, want := canonSnapshot(f.t, next), canonSnapshot(f.t, fresh); got != want {
		f.t.Fatalf("%s: snapshot from deltas differs from a rebuild:\n got %s\nwant %s", what, got, want)
	}
	f.snap = next
	return d
}

// names returns "kind:id" for every object the delta upserts or deletes.
func names(d *snapshot.Delta) []string {
	var out []string
	add := func(kind string, up []string, del []string) {
		for _, id := range up {
			out = append(out, kind+"+"+id)
		}
		for _, id := range del {
			out = append(out, kind+"-"+id)
		}
	}
	if c := d.Accounts; c != nil {
		add("account", idsOf(c.Upsert, func(v snapshot.Account) string { return v.ID }), c.Delete)
	}
	if c := d.Principals; c != nil {
		add("principal", idsOf(c.Upsert, func(v snapshot.Principal) string { return v.ID }), c.Delete)
	}
	if c := d.Authtokens; c != nil {
		add("authtoken", idsOf(c.Upsert, func(v snapshot.Authtoken) string { return v.ID }), c.Delete)
	}
	if c := d.SSHCredentials; c != nil {
		add("ssh", idsOf(c.Upsert, func(v snapshot.SSHCredential) string { return v.ID }), c.Delete)
	}
	if c := d.ReservedDomains; c != nil {
		add("domain", idsOf(c.Upsert, func(v snapshot.ReservedDomain) string { return v.ID }), c.Delete)
	}
	if c := d.ReservedAddrs; c != nil {
		add("addr", idsOf(c.Upsert, func(v snapshot.ReservedAddr) string { return v.ID }), c.Delete)
	}
	if c := d.IPPolicies; c != nil {
		add("policy", idsOf(c.Upsert, func(v snapshot.IPPolicy) string { return v.ID }), c.Delete)
	}
	if c := d.IPRestrictions; c != nil {
		add("restriction", idsOf(c.Upsert, func(v snapshot.IPRestriction) string { return v.ID }), c.Delete)
	}
	slices.Sort(out)
	return out
}

func idsOf[T any](vs []T, id func(T) string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, id(v))
	}
	return out
}

// TestChangesEveryMutationKind: each kind of mutation of a snapshot object
// yields a delta that names exactly the objects it changed (cascades
// included), and applying it gives what a rebuild gives.
func TestChangesEveryMutationKind(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		fx := newFixture(t, s)
		acct, actor := fx.account.ID, fx.actor
		fl := newFollower(t, s)
		check := func(what string, want ...string) {
			t.Helper()
			d := fl.step(what)
			slices.Sort(want)
			if got := names(d); !slices.Equal(got, want) {
				t.Fatalf("%s: delta names %v, want %v", what, got, want)
			}
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		bot, err := s.CreateBotUser(ctx, actor, acct, BotUserCreate{Name: "ci", Active: true})
		must(err)
		check("create bot user", "principal+"+bot.ID)
		tok, _, err := s.CreateAuthtoken(ctx, actor, acct, AuthtokenCreate{OwnerID: bot.ID})
		must(err)
		check("create authtoken", "authtoken+"+tok.ID)
		_, err = s.UpdateAuthtoken(ctx, actor, acct, tok.ID, AuthtokenUpdate{ACL: &[]string{"bind:a.example.com"}})
		must(err)
		check("narrow an authtoken's ACL", "authtoken+"+tok.ID)
		pub, _, _ := ed25519.GenerateKey(nil)
		ssh, err := s.CreateSSHCredential(ctx, actor, acct, SSHCredentialCreate{OwnerID: bot.ID, PublicKey: authorizedKey(t, pub)})
		must(err)
		check("create SSH credential", "ssh+"+ssh.ID)
		_, err = s.UpdateBotUser(ctx, actor, acct, bot.ID, BotUserUpdate{Active: ptr(false)})
		must(err)
		check("deactivate bot user", "principal+"+bot.ID)
		rd, err := s.CreateReservedDomain(ctx, actor, acct, ReservedDomainCreate{Domain: "app.example.com", Region: "us"})
		must(err)
		check("reserve domain", "domain+"+rd.ID)
		_, err = s.UpdateReservedDomain(ctx, actor, acct, rd.ID, ReservedDomainUpdate{MinTLSVersion: ptr("1.3")})
		must(err)
		check("raise a domain's minimum TLS version", "domain+"+rd.ID)
		_, err = s.UpdateReservedDomain(ctx, actor, acct, rd.ID, ReservedDomainUpdate{HSTS: ptr("max-age=600")})
		must(err)
		check("set a domain's HSTS", "domain+"+rd.ID)
		ra, err := s.CreateReservedAddr(ctx, actor, acct, ReservedAddrCreate{Addr: "1.tcp.example.com:20001", Region: "us"})
		must(err)
		check("reserve address", "addr+"+ra.ID)
		pol, err := s.CreateIPPolicy(ctx, actor, acct, IPPolicyCreate{Description: "office"})
		must(err)
		check("create IP policy", "policy+"+pol.ID)
		rule, err := s.CreateIPPolicyRule(ctx, actor, acct, IPPolicyRuleCreate{IPPolicyID: pol.ID, CIDR: "10.0.0.0/8", Action: "allow"})
		must(err)
		check("add a rule", "policy+"+pol.ID)
		_, err = s.UpdateIPPolicyRule(ctx, actor, acct, rule.ID, IPPolicyRuleUpdate{Action: ptr("deny")})
		must(err)
		check("change a rule", "policy+"+pol.ID)
		rx, err := s.CreateIPRestriction(ctx, actor, acct, IPRestrictionCreate{Type: "agent", Enforced: true, IPPolicyIDs: []string{pol.ID}})
		must(err)
		check("create IP restriction", "restriction+"+rx.ID)
		pol2, err := s.CreateIPPolicy(ctx, actor, acct, IPPolicyCreate{})
		must(err)
		_, err = s.UpdateIPRestriction(ctx, actor, acct, rx.ID, IPRestrictionUpdate{IPPolicyIDs: &[]string{pol2.ID}})
		must(err)
		check("a new policy, then the restriction switched to it", "policy+"+pol2.ID, "restriction+"+rx.ID)
		must(s.DeleteIPRestriction(ctx, actor, acct, rx.ID))
		check("delete IP restriction", "restriction-"+rx.ID)
		must(s.DeleteIPPolicyRule(ctx, actor, acct, rule.ID))
		check("delete a rule", "policy+"+pol.ID)
		must(s.DeleteIPPolicy(ctx, actor, acct, pol.ID))
		check("delete IP policy", "policy-"+pol.ID)
		must(s.DeleteReservedAddr(ctx, actor, acct, ra.ID))
		check("release address", "addr-"+ra.ID)
		must(s.DeleteReservedDomain(ctx, actor, acct, rd.ID))
		check("release domain", "domain-"+rd.ID)
		must(s.DeleteAuthtoken(ctx, actor, acct, tok.ID))
		check("delete authtoken", "authtoken-"+tok.ID)
		tok2, _, err := s.CreateAuthtoken(ctx, actor, acct, AuthtokenCreate{OwnerID: bot.ID})
		must(err)
		check("another authtoken", "authtoken+"+tok2.ID)
		must(s.DeleteBotUser(ctx, actor, acct, bot.ID))
		check("delete bot user: its credentials go with it", "principal-"+bot.ID, "authtoken-"+tok2.ID, "ssh-"+ssh.ID)
		must(s.SetAccountActive(ctx, SystemActor, acct, false))
		check("suspend account", "account+"+acct)
		u, err := s.CreateUser(ctx, SystemActor, ids.New("x")+"@example.com", "Bo")
		must(err)
		check("create user", "principal+"+u.ID)
		must(s.PutMembership(ctx, SystemActor, Membership{AccountID: acct, UserID: u.ID, Developer: DeveloperRW, Team: TeamManager}))
		check("join account", "principal+"+u.ID)
		utok, _, err := s.CreateAuthtoken(ctx, actor, acct, AuthtokenCreate{OwnerID: u.ID})
		must(err)
		check("user's authtoken", "authtoken+"+utok.ID)
		must(s.SetUserActive(ctx, SystemActor, u.ID, false))
		check("deactivate user", "principal+"+u.ID)
		must(s.DeleteUser(ctx, SystemActor, u.ID))
		check("delete user", "principal-"+u.ID, "authtoken-"+utok.ID)
		// Changes over several revisions at once: one delta from the start.
		d, err := s.Changes(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := snapshot.New(snapshot.Data{})
		all, err := first.Apply(d)
		if err != nil {
			t.Fatal(err)
		}
		if canonSnapshot(t, all) != canonSnapshot(t, fl.snap) {
			t.Fatal("one delta from revision 0 differs from the deltas step by step")
		}
	})
}

// TestChangesRolledBackRecordsNothing: a unit of work that fails, or that
// changes nothing, leaves no row in the change log.
func TestChangesRolledBackRecordsNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		fx := newFixture(t, s)
		before := rev(t, s)
		count := func() int {
			var n int
			if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM snapshot_changes`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		n := count()
		boom := errors.New("crash mid-write")
		_, err := s.update(ctx, fx.actor, func(ctx context.Context, tx *tx) error {
			if _, err := tx.exec(ctx, `UPDATE accounts SET active = false WHERE id = $1`, fx.account.ID); err != nil {
				return err
			}
			tx.audit("account_updated.v0", fx.account.ID, fx.account.ID, nil)
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		// A validation failure inside a store method rolls back too.
		if _, _, err := s.CreateAuthtoken(ctx, fx.actor, fx.account.ID, AuthtokenCreate{OwnerID: "bot_nobody"}); err == nil {
			t.Fatal("an authtoken for no owner was created")
		}
		if got := count(); got != n || rev(t, s) != before {
			t.Fatalf("rolled-back units of work left %d change rows (had %d), revision %d (was %d)", got, n, rev(t, s), before)
		}
		d, err := s.Changes(ctx, before)
		if err != nil {
			t.Fatal(err)
		}
		if d.Size() != 0 || d.Revision != before {
			t.Fatalf("changes after the current revision: %+v", d)
		}
	})
}

// TestChangesPruned: the log keeps ChangeHistory revisions; asking for
// changes after a pruned revision says so (the edge gets a whole snapshot).
func TestChangesPruned(t *testing.T) {
	s := openTest(t, t.TempDir()+"/cp.db")
	s.history = 70
	ctx := testCtx(t)
	fx := newFixture(t, s)
	start := rev(t, s)
	for i := range 140 {
		if _, err := s.CreateBotUser(ctx, fx.actor, fx.account.ID, BotUserCreate{Name: fmt.Sprint("b", i), Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	now := rev(t, s)
	if _, err := s.Changes(ctx, start); !errors.Is(err, ErrChangesPruned) {
		t.Fatalf("changes after pruned revision %d: %v", start, err)
	}
	if _, err := s.Changes(ctx, now+1); !errors.Is(err, ErrChangesPruned) {
		t.Fatalf("changes after a future revision: %v", err)
	}
	d, err := s.Changes(ctx, now-60)
	if err != nil {
		t.Fatal(err)
	}
	if d.Principals == nil || len(d.Principals.Upsert) != 60 {
		t.Fatalf("the last 60 revisions: %v", names(d))
	}
	var rows int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM snapshot_changes WHERE revision <= $1`, int64(now-140)).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("%d change rows older than the history", rows)
	}
}

// TestChangesRandomMutations is the property test: random mutations of
// every kind, each followed (or several at once) by a delta from the change
// log, keep a followed snapshot equal to a fresh BuildSnapshot.
func TestChangesRandomMutations(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		fx := newFixture(t, s)
		acct, actor := fx.account.ID, fx.actor
		r := rand.New(rand.NewPCG(5, 6))
		var bots, toks, pols, rxs, rds []string
		bots = append(bots, fx.admin.ID)
		pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
		drop := func(xs *[]string, x string) { *xs = slices.DeleteFunc(*xs, func(v string) bool { return v == x }) }
		fl := newFollower(t, s)
		ops := []func() error{
			func() error {
				b, err := s.CreateBotUser(ctx, actor, acct, BotUserCreate{Name: "b", Active: true})
				if err == nil {
					bots = append(bots, b.ID)
				}
				return err
			},
			func() error {
				a, _, err := s.CreateAuthtoken(ctx, actor, acct, AuthtokenCreate{OwnerID: pick(bots)})
				if err == nil {
					toks = append(toks, a.ID)
				}
				return err
			},
			func() error {
				if len(toks) == 0 {
					return nil
				}
				id := pick(toks)
				drop(&toks, id)
				return s.DeleteAuthtoken(ctx, actor, acct, id)
			},
			func() error {
				if len(toks) == 0 {
					return nil
				}
				_, err := s.UpdateAuthtoken(ctx, actor, acct, pick(toks), AuthtokenUpdate{ACL: &[]string{fmt.Sprintf("bind:%d.example.com", r.IntN(9))}})
				return err
			},
			func() error {
				if len(bots) < 2 {
					return nil
				}
				id := bots[1+r.IntN(len(bots)-1)]
				if r.IntN(2) == 0 {
					_, err := s.UpdateBotUser(ctx, actor, acct, id, BotUserUpdate{Active: ptr(r.IntN(2) == 0)})
					return err
				}
				drop(&bots, id)
				// Its authtokens go with it: forget them.
				toks = slices.DeleteFunc(toks, func(tid string) bool {
					a, err := s.GetAuthtoken(ctx, acct, tid)
					return err == nil && a.OwnerID == id
				})
				return s.DeleteBotUser(ctx, actor, acct, id)
			},
			func() error {
				p, err := s.CreateIPPolicy(ctx, actor, acct, IPPolicyCreate{})
				if err == nil {
					pols = append(pols, p.ID)
					_, err = s.CreateIPPolicyRule(ctx, actor, acct, IPPolicyRuleCreate{IPPolicyID: p.ID,
						CIDR: fmt.Sprintf("10.%d.0.0/16", r.IntN(200)), Action: "allow"})
				}
				return err
			},
			func() error {
				if len(pols) == 0 {
					return nil
				}
				x, err := s.CreateIPRestriction(ctx, actor, acct, IPRestrictionCreate{Type: "endpoints", IPPolicyIDs: []string{pick(pols)}})
				if err == nil {
					rxs = append(rxs, x.ID)
				}
				return err
			},
			func() error {
				if len(rxs) == 0 {
					return nil
				}
				id := pick(rxs)
				drop(&rxs, id)
				return s.DeleteIPRestriction(ctx, actor, acct, id)
			},
			func() error {
				d, err := s.CreateReservedDomain(ctx, actor, acct, ReservedDomainCreate{Domain: ids.New("d")[2:12] + ".example.com", Region: "us"})
				if err == nil {
					rds = append(rds, d.ID)
				}
				return err
			},
			func() error {
				if len(rds) == 0 {
					return nil
				}
				id := pick(rds)
				drop(&rds, id)
				return s.DeleteReservedDomain(ctx, actor, acct, id)
			},
		}
		for i := range 120 {
			if err := ops[r.IntN(len(ops))](); err != nil {
				t.Fatalf("mutation %d: %v", i, err)
			}
			if r.IntN(3) == 0 { // sometimes several revisions in one delta
				fl.step(fmt.Sprint("after mutation ", i))
			}
		}
		fl.step("at the end")
	})
}
