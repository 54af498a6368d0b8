package controlplane

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// newSSHKey returns a fresh authorized_keys line (with comment) and its
// SHA256 fingerprint.
func newSSHKey(t testing.TB, kind string) (string, string) {
	t.Helper()
	var pub any
	switch kind {
	case "ed25519":
		p, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = p
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
	case "rsa1024":
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		pub = &k.PublicKey
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " ci@example"
	return line, ssh.FingerprintSHA256(sp)
}

// memberKey adds a user with the given roles to the dev account and
// returns the user's ID and an API key token for them.
func (e *env) memberKey(email string, m store.Membership) (string, string) {
	e.t.Helper()
	ctx := testCtx(e.t)
	u, err := e.store.CreateUser(ctx, store.SystemActor, email, email)
	if err != nil {
		e.t.Fatal(err)
	}
	m.AccountID, m.UserID = e.dev.AccountID, u.ID
	if err := e.store.PutMembership(ctx, store.SystemActor, m); err != nil {
		e.t.Fatal(err)
	}
	return u.ID, str(e.must(201, e.call("POST", "/api_keys", e.admin, map[string]any{"owner_id": u.ID})), "token")
}

func TestSSHCredentialsCRUD(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		key, fp := newSSHKey(t, "ed25519")
		before := e.revision()
		created := e.must(201, e.call("POST", "/ssh_credentials", e.admin, map[string]any{
			"public_key": key, "description": "deploy box", "metadata": `{"host":"ci"}`,
			"acl": []string{"bind:1.TCP.example.com:20002", "bind:*.Example.org"}}))
		id := str(created, "id")
		if !strings.HasPrefix(id, ids.PrefixSSHCredential+"_") || str(created, "public_key") != key ||
			str(created, "fingerprint") != fp || str(created, "owner_id") != e.dev.UserID ||
			fmt.Sprint(created["acl"]) != "[bind:1.tcp.example.com:20002 bind:*.example.org]" ||
			str(created, "uri") != e.http.URL+"/ssh_credentials/"+id || str(created, "created_at") == "" {
			t.Fatalf("created = %v", created)
		}
		if _, hasToken := created["token"]; hasToken {
			t.Fatal("an SSH credential has no token to show")
		}
		if e.revision() != before+1 {
			t.Fatal("creating did not take exactly one revision")
		}
		// The edges' snapshot finds it by fingerprint.
		snap, err := e.srv.Snapshot(testCtx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		if sc, ok := snap.SSHCredentialByFingerprint(fp); !ok || sc.ID != id || len(sc.ACL) != 2 {
			t.Fatalf("snapshot SSH credential = %+v, %v", sc, ok)
		}

		got := e.must(200, e.call("GET", "/ssh_credentials/"+id, e.admin, nil))
		if str(got, "fingerprint") != fp || str(got, "description") != "deploy box" {
			t.Fatalf("got = %v", got)
		}
		upd := e.must(200, e.call("PATCH", "/ssh_credentials/"+id, e.admin, map[string]any{"description": "renamed", "acl": []string{"*"}}))
		if str(upd, "description") != "renamed" || fmt.Sprint(upd["acl"]) != "[*]" || str(upd, "metadata") != `{"host":"ci"}` || str(upd, "public_key") != key {
			t.Fatalf("updated = %v", upd)
		}
		rev := e.revision()
		e.must(200, e.call("PATCH", "/ssh_credentials/"+id, e.admin, map[string]any{"description": "renamed"}))
		if e.revision() != rev {
			t.Fatal("a no-op update took a revision")
		}
		// The key itself cannot change.
		wantError(t, e.call("PATCH", "/ssh_credentials/"+id, e.admin, map[string]any{"public_key": key}), 400, string(codes.APIUnknownParam))

		key2, _ := newSSHKey(t, "ecdsa")
		e.must(201, e.call("POST", "/ssh_credentials", e.admin, map[string]any{"public_key": key2}))
		page := e.must(200, e.call("GET", "/ssh_credentials?limit=1", e.admin, nil))
		items, _ := page["ssh_credentials"].([]any)
		if len(items) != 1 || page["next_page_uri"] == nil {
			t.Fatalf("first page = %v", page)
		}
		all := e.must(200, e.call("GET", "/ssh_credentials", e.admin, nil))
		if items, _ := all["ssh_credentials"].([]any); len(items) != 2 || all["next_page_uri"] != nil {
			t.Fatalf("list = %v", all)
		}

		e.must(204, e.call("DELETE", "/ssh_credentials/"+id, e.admin, nil))
		wantError(t, e.call("GET", "/ssh_credentials/"+id, e.admin, nil), 404, string(codes.APINotFound))
		wantError(t, e.call("DELETE", "/ssh_credentials/"+id, e.admin, nil), 404, string(codes.APINotFound))
		snap, err = e.srv.Snapshot(testCtx(t), snap.Revision())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.SSHCredentialByFingerprint(fp); ok {
			t.Fatal("a deleted SSH credential is still in the snapshot")
		}
		// Deleted, the key may be registered again.
		e.must(201, e.call("POST", "/ssh_credentials", e.admin, map[string]any{"public_key": key}))
	})
}

func TestSSHCredentialsRefuseBadInput(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		key, _ := newSSHKey(t, "ed25519")
		weak, _ := newSSHKey(t, "rsa1024")
		e.must(201, e.call("POST", "/ssh_credentials", e.admin, map[string]any{"public_key": key}))
		before := e.revision()
		cases := []struct {
			name   string
			body   map[string]any
			status int
			code   codes.Code
		}{
			{"no key", map[string]any{}, 400, codes.SSHKeyInvalid},
			{"garbage", map[string]any{"public_key": "ssh-ed25519 bm90IGEga2V5"}, 400, codes.SSHKeyInvalid},
			{"private key", map[string]any{"public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"}, 400, codes.SSHKeyInvalid},
			{"two lines", map[string]any{"public_key": key + "\n" + key}, 400, codes.SSHKeyInvalid},
			{"weak RSA", map[string]any{"public_key": weak}, 400, codes.SSHKeyInvalid},
			{"bad ACL", map[string]any{"public_key": weak, "acl": []string{"connect:x"}}, 400, codes.ACLInvalid},
			{"registered", map[string]any{"public_key": key}, 409, codes.SSHKeyRegistered},
			{"same key, other comment", map[string]any{"public_key": strings.TrimSuffix(key, "ci@example") + "other"}, 409, codes.SSHKeyRegistered},
			{"long description", map[string]any{"public_key": key, "description": strings.Repeat("d", 256)}, 400, codes.APIDescriptionLength},
			{"owner elsewhere", map[string]any{"public_key": key, "owner_id": ids.New(ids.PrefixUser)}, 400, codes.APIInvalidParam},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.call("POST", "/ssh_credentials", e.admin, tc.body)
				wantError(t, r, tc.status, string(tc.code))
			})
		}
		if e.revision() != before {
			t.Fatal("refused input changed the store")
		}
	})
}

func TestSSHCredentialsOwnership(t *testing.T) {
	eachDialect(t, func(t *testing.T, e *env) {
		devID, devKey := e.memberKey("dev@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
		_, roKey := e.memberKey("ro@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		bot := e.must(201, e.call("POST", "/bot_users", e.admin, map[string]any{"name": "deployer"}))

		k1, _ := newSSHKey(t, "ed25519")
		k2, _ := newSSHKey(t, "ed25519")
		k3, _ := newSSHKey(t, "ed25519")
		// An admin may name another principal of the account as owner.
		botCred := e.must(201, e.call("POST", "/ssh_credentials", e.admin, map[string]any{"public_key": k1, "owner_id": str(bot, "id")}))
		if str(botCred, "owner_id") != str(bot, "id") {
			t.Fatalf("owner = %v", botCred["owner_id"])
		}
		// A developer owns what they create and may not name anyone else.
		mine := e.must(201, e.call("POST", "/ssh_credentials", devKey, map[string]any{"public_key": k2}))
		if str(mine, "owner_id") != devID {
			t.Fatalf("owner = %v", mine["owner_id"])
		}
		wantError(t, e.call("POST", "/ssh_credentials", devKey, map[string]any{"public_key": k3, "owner_id": e.dev.UserID}), 403, string(codes.APIForbidden))
		wantError(t, e.call("PATCH", "/ssh_credentials/"+str(botCred, "id"), devKey, map[string]any{"description": "x"}), 403, string(codes.APIForbidden))
		wantError(t, e.call("DELETE", "/ssh_credentials/"+str(botCred, "id"), devKey, nil), 403, string(codes.APIForbidden))
		e.must(200, e.call("PATCH", "/ssh_credentials/"+str(mine, "id"), devKey, map[string]any{"description": "mine"}))
		// Read-only developers read but do not write.
		e.must(200, e.call("GET", "/ssh_credentials/"+str(mine, "id"), roKey, nil))
		wantError(t, e.call("POST", "/ssh_credentials", roKey, map[string]any{"public_key": k3}), 403, string(codes.APIForbidden))
		// Deleting the bot deletes its SSH credential.
		e.must(204, e.call("DELETE", "/bot_users/"+str(bot, "id"), e.admin, nil))
		wantError(t, e.call("GET", "/ssh_credentials/"+str(botCred, "id"), e.admin, nil), 404, string(codes.APINotFound))
		e.must(204, e.call("DELETE", "/ssh_credentials/"+str(mine, "id"), devKey, nil))
	})
}
