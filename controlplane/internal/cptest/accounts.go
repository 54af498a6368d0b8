package cptest

import (
	"github.com/tollgate/tollgate/controlplane/store"
)

// OtherAccount creates a second account with an administrator and returns
// the account ID and an API key token of that administrator.
func (e *Env) OtherAccount(name string) (accountID, key string) {
	e.T.Helper()
	ctx := Ctx(e.T)
	a, err := e.Store.CreateAccount(ctx, store.SystemActor, name)
	if err != nil {
		e.T.Fatal(err)
	}
	u, err := e.Store.CreateUser(ctx, store.SystemActor, name+"-admin@example.com", "Admin")
	if err != nil {
		e.T.Fatal(err)
	}
	if err := e.Store.PutMembership(ctx, store.SystemActor, store.Membership{AccountID: a.ID, UserID: u.ID,
		Developer: store.DeveloperRW, Team: store.TeamManager, Admin: true}); err != nil {
		e.T.Fatal(err)
	}
	_, tok, err := e.Store.CreateAPIKey(ctx, store.SystemActor, a.ID, store.APIKeyCreate{OwnerID: u.ID})
	if err != nil {
		e.T.Fatal(err)
	}
	return a.ID, tok.Reveal()
}

// WantAuditBy checks that exactly one audit event of typ names objectID and
// the dev admin's API key as its actor.
func (e *Env) WantAuditBy(typ, objectID string) store.AuditEvent {
	e.T.Helper()
	evs, _, err := e.Store.ListAuditEvents(Ctx(e.T), e.Dev.AccountID, store.Page{})
	if err != nil {
		e.T.Fatal(err)
	}
	var found []store.AuditEvent
	for _, ev := range evs {
		if ev.Type == typ && ev.ObjectID == objectID {
			found = append(found, ev)
		}
	}
	if len(found) != 1 || found[0].ActorID != e.Dev.UserID || found[0].ActorCredentialID != e.Dev.APIKeyID {
		e.T.Fatalf("%s events for %s: %+v", typ, objectID, found)
	}
	return found[0]
}

// MemberKey adds a user with the given roles to the dev account and
// returns the user's ID and an API key token for them.
func (e *Env) MemberKey(email string, m store.Membership) (string, string) {
	e.T.Helper()
	ctx := Ctx(e.T)
	u, err := e.Store.CreateUser(ctx, store.SystemActor, email, email)
	if err != nil {
		e.T.Fatal(err)
	}
	m.AccountID, m.UserID = e.Dev.AccountID, u.ID
	if err := e.Store.PutMembership(ctx, store.SystemActor, m); err != nil {
		e.T.Fatal(err)
	}
	return u.ID, Str(e.Must(201, e.Call("POST", "/api_keys", e.Admin, map[string]any{"owner_id": u.ID})), "token")
}

// AddUser creates a user who is a member of accountID with roles, and an
// API key the user created themselves (so it proves who they are across
// accounts). It returns the user's ID and the key's token.
func (e *Env) AddUser(accountID, email string, roles store.Membership) (string, string) {
	e.T.Helper()
	ctx := Ctx(e.T)
	u, err := e.Store.CreateUser(ctx, store.SystemActor, email, "User "+email)
	if err != nil {
		e.T.Fatal(err)
	}
	roles.AccountID, roles.UserID = accountID, u.ID
	if err := e.Store.PutMembership(ctx, store.SystemActor, roles); err != nil {
		e.T.Fatal(err)
	}
	return u.ID, e.KeyFor(accountID, u.ID)
}

// KeyFor makes an API key that userID creates themselves in accountID.
func (e *Env) KeyFor(accountID, userID string) string {
	e.T.Helper()
	_, tok, err := e.Store.CreateAPIKey(Ctx(e.T), store.Actor{AccountID: accountID, PrincipalID: userID},
		accountID, store.APIKeyCreate{OwnerID: userID})
	if err != nil {
		e.T.Fatal(err)
	}
	return tok.Reveal()
}

// LastEvent returns the newest audit event of the account.
func (e *Env) LastEvent(accountID string) store.AuditEvent {
	e.T.Helper()
	evs, _, err := e.Store.ListAuditEvents(Ctx(e.T), accountID, store.Page{Limit: 1})
	if err != nil || len(evs) != 1 {
		e.T.Fatalf("audit events: %v, %v", evs, err)
	}
	return evs[0]
}
