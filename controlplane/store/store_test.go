package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

func TestOpenIsIdempotent(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			s1 := openTest(t, dsn)
			a, err := s1.CreateAccount(testCtx(t), SystemActor, "first")
			if err != nil {
				t.Fatal(err)
			}
			if err := s1.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := openTest(t, dsn) // migrations already applied: a no-op
			got, err := s2.GetAccount(testCtx(t), a.ID)
			if err != nil || got.Name != "first" || !got.Active {
				t.Fatalf("GetAccount after reopen = %+v, %v", got, err)
			}
			if r := rev(t, s2); r != 1 {
				t.Fatalf("revision after reopen = %d, want 1", r)
			}
		})
	}
}

func TestOpenSQLitePathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir#1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "tg%41.db")
	s := openTest(t, p)
	if _, err := s.CreateAccount(testCtx(t), SystemActor, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the database is not at the path given: %v", err)
	}
}

func TestOpenRejectsBadDSN(t *testing.T) {
	for _, dsn := range []string{"", ":memory:", "file::memory:?cache=shared"} {
		if _, err := Open(testCtx(t), dsn, Options{}); !errors.Is(err, ErrUnsupportedDSN) {
			t.Errorf("Open(%q) = %v, want ErrUnsupportedDSN", dsn, err)
		}
	}
}

func TestEveryMutationBumpsRevisionAndAudits(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		base := rev(t, s)
		actor := Actor{AccountID: f.account.ID, PrincipalID: f.admin.ID, CredentialID: "ak_test"}

		bot, err := s.CreateBotUser(ctx, actor, f.account.ID, BotUserCreate{Name: "ci", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		k, tok, err := s.CreateAPIKey(ctx, actor, f.account.ID, APIKeyCreate{OwnerID: bot.ID, Description: "d"})
		if err != nil {
			t.Fatal(err)
		}
		if tok == "" || strings.Contains(fmt.Sprint(tok), tok.Reveal()) {
			t.Fatal("token empty or printed in clear")
		}
		steps := []struct {
			name string
			fn   func() error
		}{
			{"update bot", func() error {
				_, err := s.UpdateBotUser(ctx, actor, f.account.ID, bot.ID, BotUserUpdate{Name: ptr("ci2")})
				return err
			}},
			{"update key", func() error {
				_, err := s.UpdateAPIKey(ctx, actor, f.account.ID, k.ID, APIKeyUpdate{Metadata: ptr("m")})
				return err
			}},
			{"create authtoken", func() error {
				_, _, err := s.CreateAuthtoken(ctx, actor, f.account.ID, AuthtokenCreate{OwnerID: bot.ID, ACL: []string{"bind:*.Example.com"}})
				return err
			}},
			{"delete key", func() error { return s.DeleteAPIKey(ctx, actor, f.account.ID, k.ID) }},
		}
		want := base + 2
		if r := rev(t, s); r != want {
			t.Fatalf("revision = %d, want %d", r, want)
		}
		for _, st := range steps {
			if err := st.fn(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			want++
			if r := rev(t, s); r != want {
				t.Fatalf("after %s: revision = %d, want %d", st.name, r, want)
			}
		}
		// A no-op update changes nothing: no revision, no event.
		if _, err := s.UpdateBotUser(ctx, actor, f.account.ID, bot.ID, BotUserUpdate{Name: ptr("ci2")}); err != nil {
			t.Fatal(err)
		}
		if r := rev(t, s); r != want {
			t.Fatalf("no-op update bumped revision to %d", r)
		}
		evs, _, err := s.ListAuditEvents(ctx, f.account.ID, Page{})
		if err != nil {
			t.Fatal(err)
		}
		types := map[string]AuditEvent{}
		for _, e := range evs {
			types[e.Type] = e
		}
		for _, typ := range []string{"bot_user_created.v0", "api_key_created.v0", "bot_user_updated.v0",
			"api_key_updated.v0", "credential_created.v0", "api_key_deleted.v0"} {
			e, ok := types[typ]
			if !ok {
				t.Errorf("no %s audit event", typ)
				continue
			}
			if e.ActorID != f.admin.ID || e.ActorCredentialID != "ak_test" || e.Revision <= base || !json.Valid(e.Payload) {
				t.Errorf("%s: %+v", typ, e)
			}
		}
		if strings.Contains(string(types["api_key_created.v0"].Payload), tok.Reveal()) {
			t.Fatal("the audit log holds the token")
		}
	})
}

func TestUnitOfWorkRollsBackOnError(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		before := rev(t, s)
		boom := errors.New("crash mid-write")
		var id string
		_, err := s.update(ctx, SystemActor, func(ctx context.Context, tx *tx) error {
			id = ids.New(ids.PrefixAccount)
			if _, err := tx.exec(ctx, `INSERT INTO accounts (id, name, active, created_at) VALUES ($1, 'x', true, 0)`, id); err != nil {
				return err
			}
			tx.audit("account_created.v0", id, id, nil)
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("update = %v", err)
		}
		if _, err := s.GetAccount(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("half-written account is visible: %v", err)
		}
		if r := rev(t, s); r != before {
			t.Fatalf("revision moved to %d", r)
		}

		// A context cancelled mid-transaction also leaves nothing.
		cctx, cancel := context.WithCancel(ctx)
		_, err = s.update(cctx, SystemActor, func(ctx context.Context, tx *tx) error {
			id = ids.New(ids.PrefixAccount)
			if _, err := tx.exec(ctx, `INSERT INTO accounts (id, name, active, created_at) VALUES ($1, 'y', true, 0)`, id); err != nil {
				return err
			}
			tx.audit("account_created.v0", id, id, nil)
			cancel()
			return nil
		})
		if err == nil {
			t.Fatal("update with a cancelled context committed")
		}
		if _, err := s.GetAccount(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("account of a cancelled unit of work is visible: %v", err)
		}
		if r := rev(t, s); r != before {
			t.Fatalf("revision moved to %d", r)
		}
		// A unit of work with no audit event commits nothing.
		_, err = s.update(ctx, SystemActor, func(ctx context.Context, tx *tx) error {
			_, err := tx.exec(ctx, `INSERT INTO accounts (id, name, active, created_at) VALUES ($1, 'z', true, 0)`, ids.New(ids.PrefixAccount))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if r := rev(t, s); r != before {
			t.Fatalf("unaudited unit of work committed: revision %d", r)
		}
		if _, err := s.update(ctx, Actor{}, func(context.Context, *tx) error { return nil }); err == nil {
			t.Fatal("a mutation without an actor was accepted")
		}
	})
}

func TestDeletingPrincipalDeletesCredentials(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		bot, err := s.CreateBotUser(ctx, f.actor, f.account.ID, BotUserCreate{Name: "b", Active: true})
		if err != nil {
			t.Fatal(err)
		}
		k, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: bot.ID})
		if err != nil {
			t.Fatal(err)
		}
		at, _, err := s.CreateAuthtoken(ctx, f.actor, f.account.ID, AuthtokenCreate{OwnerID: bot.ID})
		if err != nil {
			t.Fatal(err)
		}
		ssh, err := s.CreateSSHCredential(ctx, f.actor, f.account.ID, SSHCredentialCreate{OwnerID: bot.ID, PublicKey: testSSHKey})
		if err != nil {
			t.Fatal(err)
		}
		keep, _, err := s.CreateAuthtoken(ctx, f.actor, f.account.ID, AuthtokenCreate{OwnerID: f.admin.ID})
		if err != nil {
			t.Fatal(err)
		}
		before := rev(t, s)
		if err := s.DeleteBotUser(ctx, f.actor, f.account.ID, bot.ID); err != nil {
			t.Fatal(err)
		}
		if r := rev(t, s); r != before+1 {
			t.Fatalf("delete took revisions %d..%d, want one", before, r)
		}
		if _, err := s.GetBotUser(ctx, f.account.ID, bot.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("bot still there: %v", err)
		}
		if _, err := s.GetAPIKey(ctx, f.account.ID, k.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("API key survived its owner: %v", err)
		}
		if _, err := s.GetAuthtoken(ctx, f.account.ID, at.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("authtoken survived its owner: %v", err)
		}
		if _, err := s.GetSSHCredential(ctx, f.account.ID, ssh.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("SSH credential survived its owner: %v", err)
		}
		if _, err := s.GetAuthtoken(ctx, f.account.ID, keep.ID); err != nil {
			t.Fatalf("another principal's authtoken went too: %v", err)
		}
		evs, _, _ := s.ListAuditEvents(ctx, f.account.ID, Page{})
		seen := map[string]bool{}
		for _, e := range evs {
			if e.Revision == before+1 {
				seen[e.Type+" "+e.ObjectID] = true
			}
		}
		for _, w := range []string{"bot_user_deleted.v0 " + bot.ID, "api_key_deleted.v0 " + k.ID,
			"credential_deleted.v0 " + at.ID, "ssh_credential_deleted.v0 " + ssh.ID} {
			if !seen[w] {
				t.Errorf("missing audit event %s in revision %d: %v", w, before+1, seen)
			}
		}

		// Deleting a user takes their credentials and memberships with them.
		if err := s.DeleteUser(ctx, SystemActor, f.admin.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAuthtoken(ctx, f.account.ID, keep.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("authtoken survived its user: %v", err)
		}
		if _, err := s.GetMembership(ctx, f.account.ID, f.admin.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("membership survived its user: %v", err)
		}
		if err := s.DeleteBotUser(ctx, f.actor, f.account.ID, bot.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete = %v", err)
		}
	})
}

func TestRemoveMembershipDeletesCredentialsInThatAccount(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		other, err := s.CreateAccount(ctx, SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutMembership(ctx, SystemActor, Membership{AccountID: other.ID, UserID: f.admin.ID, Developer: DeveloperRO, Team: TeamRO}); err != nil {
			t.Fatal(err)
		}
		a1, _, err := s.CreateAuthtoken(ctx, f.actor, f.account.ID, AuthtokenCreate{OwnerID: f.admin.ID})
		if err != nil {
			t.Fatal(err)
		}
		a2, _, err := s.CreateAuthtoken(ctx, f.actor, other.ID, AuthtokenCreate{OwnerID: f.admin.ID})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveMembership(ctx, SystemActor, other.ID, f.admin.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetAuthtoken(ctx, other.ID, a2.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("authtoken in the left account survived: %v", err)
		}
		if _, err := s.GetAuthtoken(ctx, f.account.ID, a1.ID); err != nil {
			t.Fatalf("authtoken in the other account went too: %v", err)
		}
	})
}

func TestOwnerMustBelongToAccount(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		g := newFixture(t, s)
		before := rev(t, s)
		if _, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: g.admin.ID}); !errors.Is(err, ErrOwnerNotFound) {
			t.Fatalf("owner from another account: %v", err)
		}
		_, _, err := s.CreateAuthtoken(ctx, f.actor, f.account.ID, AuthtokenCreate{OwnerID: "acct_nope"})
		wantCode(t, err, codes.APIInvalidID)
		if r := rev(t, s); r != before {
			t.Fatalf("refused creates moved the revision to %d", r)
		}
	})
}

func TestValidationChangesNothing(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		before := rev(t, s)
		_, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: f.admin.ID, Description: strings.Repeat("d", 256)})
		wantCode(t, err, codes.APIDescriptionLength)
		_, _, err = s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: f.admin.ID, Metadata: strings.Repeat("m", 4097)})
		wantCode(t, err, codes.APIMetadataLength)
		_, _, err = s.CreateAuthtoken(ctx, f.actor, f.account.ID, AuthtokenCreate{OwnerID: f.admin.ID, ACL: []string{"connect:x"}})
		wantCode(t, err, codes.ACLInvalid)
		_, err = s.CreateBotUser(ctx, f.actor, f.account.ID, BotUserCreate{Name: "a\nb"})
		wantCode(t, err, codes.APIInvalidParam)
		_, err = s.CreateSSHCredential(ctx, f.actor, f.account.ID, SSHCredentialCreate{OwnerID: f.admin.ID, PublicKey: "ssh-rsa nope"})
		wantCode(t, err, codes.SSHKeyInvalid)
		if r := rev(t, s); r != before {
			t.Fatalf("invalid input moved the revision to %d", r)
		}
		// Exactly at the limits is fine.
		if _, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: f.admin.ID,
			Description: strings.Repeat("d", 255), Metadata: strings.Repeat("m", 4096)}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSSHKeyRegisteredOnce(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		c, err := s.CreateSSHCredential(ctx, f.actor, f.account.ID, SSHCredentialCreate{OwnerID: f.admin.ID, PublicKey: testSSHKey, ACL: []string{"bind:1.tcp.example.com:20002"}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(c.Fingerprint, "SHA256:") {
			t.Fatalf("fingerprint %q", c.Fingerprint)
		}
		before := rev(t, s)
		if _, err := s.CreateSSHCredential(ctx, f.actor, f.account.ID, SSHCredentialCreate{OwnerID: f.admin.ID, PublicKey: testSSHKey}); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate key: %v", err)
		}
		if r := rev(t, s); r != before {
			t.Fatalf("conflict moved the revision")
		}
	})
}

func TestPagingNewestFirst(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		const n = 250
		for i := 0; i < n; i++ {
			if _, err := s.CreateBotUser(ctx, f.actor, f.account.ID, BotUserCreate{Name: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		var all []BotUser
		page := Page{}
		for i := 0; i < 10; i++ {
			got, more, err := s.ListBotUsers(ctx, f.account.ID, page)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, got...)
			if !more {
				break
			}
			page.BeforeID = got[len(got)-1].ID
		}
		if len(all) != n {
			t.Fatalf("paged %d bot users, want %d", len(all), n)
		}
		for i := 1; i < len(all); i++ {
			if all[i-1].ID <= all[i].ID {
				t.Fatalf("not newest first at %d: %s then %s", i, all[i-1].ID, all[i].ID)
			}
		}
		got, more, err := s.ListBotUsers(ctx, f.account.ID, Page{Limit: 7})
		if err != nil || len(got) != 7 || !more {
			t.Fatalf("limit 7: %d, %v, %v", len(got), more, err)
		}
	})
}

func TestAPIKeyLookup(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		k, tok, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: f.admin.ID})
		if err != nil {
			t.Fatal(err)
		}
		kid, secret, err := authn.ParseToken(tok.Reveal())
		if err != nil || "ak_"+kid != k.ID {
			t.Fatalf("token does not name its key: %v", err)
		}
		a, err := s.LookupAPIKey(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !authn.SecretMatches(secret, a.SecretHash) || !a.AccountActive || !a.OwnerActive || !a.Member ||
			!a.Roles.Admin || a.Roles.Developer != DeveloperRW || a.OwnerKind != snapshot.PrincipalUser {
			t.Fatalf("lookup = %+v", a)
		}
		bot, _ := s.CreateBotUser(ctx, f.actor, f.account.ID, BotUserCreate{Name: "b", Active: true})
		bk, _, err := s.CreateAPIKey(ctx, f.actor, f.account.ID, APIKeyCreate{OwnerID: bot.ID})
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.LookupAPIKey(ctx, bk.ID)
		if err != nil || b.OwnerKind != snapshot.PrincipalBot || b.Roles.Admin || b.Roles.Developer != DeveloperRW || !b.Member {
			t.Fatalf("bot lookup = %+v, %v", b, err)
		}
		if _, err := s.LookupAPIKey(ctx, ids.New("ak")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown key: %v", err)
		}
	})
}

func TestBuildSnapshot(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		bot, _ := s.CreateBotUser(ctx, f.actor, f.account.ID, BotUserCreate{Name: "b", Active: true})
		at, tok, err := s.CreateAuthtoken(ctx, f.actor, f.account.ID, AuthtokenCreate{OwnerID: bot.ID, ACL: []string{"bind:App.Example.com", "bind:*.example.org"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateSSHCredential(ctx, f.actor, f.account.ID, SSHCredentialCreate{OwnerID: f.admin.ID, PublicKey: testSSHKey}); err != nil {
			t.Fatal(err)
		}
		snap, err := s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Revision() != rev(t, s) {
			t.Fatalf("snapshot revision %d, store %d", snap.Revision(), rev(t, s))
		}
		id, err := authn.VerifyAuthtoken(snap, tok.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		if id.CredentialID != at.ID || id.Principal.ID != bot.ID || id.Account.ID != f.account.ID ||
			strings.Join(id.ACL, ",") != "bind:app.example.com,bind:*.example.org" {
			t.Fatalf("identity = %+v", id)
		}
		p, _ := snap.Principal(f.admin.ID)
		if p == nil || p.Kind != snapshot.PrincipalUser || len(p.AccountIDs) != 1 || p.AccountIDs[0] != f.account.ID {
			t.Fatalf("admin principal = %+v", p)
		}
		if len(snap.Data().SSHCredentials) != 1 {
			t.Fatalf("ssh credentials = %+v", snap.Data().SSHCredentials)
		}

		// Deactivating the owner revokes the authtoken in the next snapshot.
		if _, err := s.UpdateBotUser(ctx, f.actor, f.account.ID, bot.ID, BotUserUpdate{Active: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		snap2, err := s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if snap2.Revision() != snap.Revision()+1 {
			t.Fatalf("revision %d after one change from %d", snap2.Revision(), snap.Revision())
		}
		if _, err := authn.VerifyAuthtoken(snap2, tok.Reveal()); !errors.Is(err, authn.ErrCredentialRevoked) {
			t.Fatalf("deactivated owner: %v", err)
		}
		if err := s.DeleteAuthtoken(ctx, f.actor, f.account.ID, at.ID); err != nil {
			t.Fatal(err)
		}
		snap3, _ := s.BuildSnapshot(ctx)
		if _, err := authn.VerifyAuthtoken(snap3, tok.Reveal()); !errors.Is(err, authn.ErrAuthtokenInvalid) {
			t.Fatalf("deleted authtoken: %v", err)
		}
	})
}

// TestSnapshotIsConsistent builds snapshots while writers create authtokens
// in pairs (one unit of work each): every snapshot must hold an even number,
// and exactly twice as many as its revision says were committed.
func TestSnapshotIsConsistent(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		base := rev(t, s)
		const writes = 40
		var wg sync.WaitGroup
		errc := make(chan error, writes)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < writes; i++ {
				_, err := s.update(ctx, f.actor, func(ctx context.Context, t *tx) error {
					for j := 0; j < 2; j++ {
						if _, _, err := t.createAuthtoken(ctx, f.account.ID, AuthtokenCreate{OwnerID: f.admin.ID}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					errc <- err
					return
				}
			}
		}()
		for i := 0; i < 200; i++ {
			snap, err := s.BuildSnapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n := uint64(len(snap.Data().Authtokens))
			if n != 2*(snap.Revision()-base) {
				t.Fatalf("snapshot at revision %d holds %d authtokens, want %d", snap.Revision(), n, 2*(snap.Revision()-base))
			}
			if snap.Revision() == base+writes {
				break
			}
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
	})
}

// TestConcurrentWritersFromTwoProcesses runs writers on two Stores sharing one
// database (as two control-plane processes would): every unit of work gets
// its own revision and none is lost.
func TestConcurrentWritersFromTwoProcesses(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			s1, s2 := openTest(t, dsn), openTest(t, dsn)
			ctx := testCtx(t)
			f := newFixture(t, s1)
			base := rev(t, s1)
			const perWriter = 15
			var wg sync.WaitGroup
			errc := make(chan error, 4*perWriter)
			for w := 0; w < 4; w++ {
				s := s1
				if w%2 == 1 {
					s = s2
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perWriter; i++ {
						if _, err := s.CreateBotUser(ctx, f.actor, f.account.ID, BotUserCreate{Name: "w"}); err != nil {
							errc <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			if r := rev(t, s2); r != base+4*perWriter {
				t.Fatalf("revision = %d, want %d", r, base+4*perWriter)
			}
			evs := map[uint64]bool{}
			page := Page{}
			for i := 0; i < 10; i++ {
				got, more, err := s1.ListAuditEvents(ctx, f.account.ID, page)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range got {
					if e.Type == "bot_user_created.v0" {
						if evs[e.Revision] {
							t.Fatalf("two units of work share revision %d", e.Revision)
						}
						evs[e.Revision] = true
					}
				}
				if !more {
					break
				}
				page.BeforeID = got[len(got)-1].ID
			}
			if len(evs) != 4*perWriter {
				t.Fatalf("%d audited creations, want %d", len(evs), 4*perWriter)
			}
		})
	}
}

func TestBootstrapIsIdempotent(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			dsn := storetest.DSN(t, d)
			s1, s2 := openTest(t, dsn), openTest(t, dsn)
			ctx := testCtx(t)
			spec := BootstrapSpec{AccountName: "dev", Email: "admin@tollgate.localhost", UserName: "Admin", Description: "dev bootstrap"}
			type result struct {
				res     *BootstrapResult
				created bool
				err     error
			}
			results := make(chan result, 4)
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				s := s1
				if i%2 == 1 {
					s = s2
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, c, err := s.Bootstrap(ctx, spec)
					results <- result{r, c, err}
				}()
			}
			wg.Wait()
			close(results)
			var first *BootstrapResult
			created := 0
			var all []*BootstrapResult
			for r := range results {
				if r.err != nil {
					t.Fatal(r.err)
				}
				if r.created {
					created++
					first = r.res
				}
				all = append(all, r.res)
			}
			if created != 1 {
				t.Fatalf("%d calls created, want 1", created)
			}
			if first.APIKey == "" || first.Authtoken == "" {
				t.Fatal("the creating call returned no tokens")
			}
			for _, r := range all {
				if r.AccountID != first.AccountID || r.UserID != first.UserID || r.APIKeyID != first.APIKeyID || r.AuthtokenID != first.AuthtokenID {
					t.Fatalf("results disagree: %+v vs %+v", r, first)
				}
				if r != first && (r.APIKey != "" || r.Authtoken != "") {
					t.Fatal("a later call returned tokens")
				}
			}
			before := rev(t, s1)
			if _, c, err := s1.Bootstrap(ctx, spec); err != nil || c {
				t.Fatalf("again: created=%v err=%v", c, err)
			}
			if r := rev(t, s1); r != before {
				t.Fatal("an idempotent Bootstrap moved the revision")
			}
			snap, err := s1.BuildSnapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := authn.VerifyAuthtoken(snap, first.Authtoken.Reveal()); err != nil {
				t.Fatalf("bootstrap authtoken: %v", err)
			}
			m, err := s1.GetMembership(ctx, first.AccountID, first.UserID)
			if err != nil || !m.Admin || m.Developer != DeveloperRW {
				t.Fatalf("membership = %+v, %v", m, err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// testSSHKey is a throwaway ed25519 public key.
const testSSHKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGP0AwA0dBvUmU6B2pXu1YpB6e9F3cHqB6s2WcZc4jYx test@example"
