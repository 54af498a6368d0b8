package restapi_test

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
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
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

func TestSSHCredentialsCRUD(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		key, fp := newSSHKey(t, "ed25519")
		before := e.Revision()
		created := e.Must(201, e.Call("POST", "/ssh_credentials", e.Admin, map[string]any{
			"public_key": key, "description": "deploy box", "metadata": `{"host":"ci"}`,
			"acl": []string{"bind:1.TCP.example.com:20002", "bind:*.Example.org"}}))
		id := cptest.Str(created, "id")
		if !strings.HasPrefix(id, ids.PrefixSSHCredential+"_") || cptest.Str(created, "public_key") != key ||
			cptest.Str(created, "fingerprint") != fp || cptest.Str(created, "owner_id") != e.Dev.UserID ||
			fmt.Sprint(created["acl"]) != "[bind:1.tcp.example.com:20002 bind:*.example.org]" ||
			cptest.Str(created, "uri") != e.HTTP.URL+"/ssh_credentials/"+id || cptest.Str(created, "created_at") == "" {
			t.Fatalf("created = %v", created)
		}
		if _, hasToken := created["token"]; hasToken {
			t.Fatal("an SSH credential has no token to show")
		}
		if e.Revision() != before+1 {
			t.Fatal("creating did not take exactly one revision")
		}
		// The edges' snapshot finds it by fingerprint.
		snap, err := e.Core.Snapshot(cptest.Ctx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		if sc, ok := snap.SSHCredentialByFingerprint(fp); !ok || sc.ID != id || len(sc.ACL) != 2 {
			t.Fatalf("snapshot SSH credential = %+v, %v", sc, ok)
		}

		got := e.Must(200, e.Call("GET", "/ssh_credentials/"+id, e.Admin, nil))
		if cptest.Str(got, "fingerprint") != fp || cptest.Str(got, "description") != "deploy box" {
			t.Fatalf("got = %v", got)
		}
		upd := e.Must(200, e.Call("PATCH", "/ssh_credentials/"+id, e.Admin, map[string]any{"description": "renamed", "acl": []string{"*"}}))
		if cptest.Str(upd, "description") != "renamed" || fmt.Sprint(upd["acl"]) != "[*]" || cptest.Str(upd, "metadata") != `{"host":"ci"}` || cptest.Str(upd, "public_key") != key {
			t.Fatalf("updated = %v", upd)
		}
		rev := e.Revision()
		e.Must(200, e.Call("PATCH", "/ssh_credentials/"+id, e.Admin, map[string]any{"description": "renamed"}))
		if e.Revision() != rev {
			t.Fatal("a no-op update took a revision")
		}
		// The key itself cannot change.
		cptest.WantError(t, e.Call("PATCH", "/ssh_credentials/"+id, e.Admin, map[string]any{"public_key": key}), 400, string(codes.APIUnknownParam))

		key2, _ := newSSHKey(t, "ecdsa")
		e.Must(201, e.Call("POST", "/ssh_credentials", e.Admin, map[string]any{"public_key": key2}))
		page := e.Must(200, e.Call("GET", "/ssh_credentials?limit=1", e.Admin, nil))
		items, _ := page["ssh_credentials"].([]any)
		if len(items) != 1 || page["next_page_uri"] == nil {
			t.Fatalf("first page = %v", page)
		}
		all := e.Must(200, e.Call("GET", "/ssh_credentials", e.Admin, nil))
		if items, _ := all["ssh_credentials"].([]any); len(items) != 2 || all["next_page_uri"] != nil {
			t.Fatalf("list = %v", all)
		}

		e.Must(204, e.Call("DELETE", "/ssh_credentials/"+id, e.Admin, nil))
		cptest.WantError(t, e.Call("GET", "/ssh_credentials/"+id, e.Admin, nil), 404, string(codes.APINotFound))
		cptest.WantError(t, e.Call("DELETE", "/ssh_credentials/"+id, e.Admin, nil), 404, string(codes.APINotFound))
		snap, err = e.Core.Snapshot(cptest.Ctx(t), snap.Revision())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.SSHCredentialByFingerprint(fp); ok {
			t.Fatal("a deleted SSH credential is still in the snapshot")
		}
		// Deleted, the key may be registered again.
		e.Must(201, e.Call("POST", "/ssh_credentials", e.Admin, map[string]any{"public_key": key}))
	})
}

func TestSSHCredentialsRefuseBadInput(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		key, _ := newSSHKey(t, "ed25519")
		weak, _ := newSSHKey(t, "rsa1024")
		e.Must(201, e.Call("POST", "/ssh_credentials", e.Admin, map[string]any{"public_key": key}))
		before := e.Revision()
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
				r := e.Call("POST", "/ssh_credentials", e.Admin, tc.body)
				cptest.WantError(t, r, tc.status, string(tc.code))
			})
		}
		if e.Revision() != before {
			t.Fatal("refused input changed the store")
		}
	})
}

func TestSSHCredentialsOwnership(t *testing.T) {
	cptest.EachDialect(t, func(t *testing.T, e *cptest.Env) {
		devID, devKey := e.MemberKey("dev@example.com", store.Membership{Developer: store.DeveloperRW, Team: store.TeamRO})
		_, roKey := e.MemberKey("ro@example.com", store.Membership{Developer: store.DeveloperRO, Team: store.TeamRO})
		bot := e.Must(201, e.Call("POST", "/bot_users", e.Admin, map[string]any{"name": "deployer"}))

		k1, _ := newSSHKey(t, "ed25519")
		k2, _ := newSSHKey(t, "ed25519")
		k3, _ := newSSHKey(t, "ed25519")
		// An admin may name another principal of the account as owner.
		botCred := e.Must(201, e.Call("POST", "/ssh_credentials", e.Admin, map[string]any{"public_key": k1, "owner_id": cptest.Str(bot, "id")}))
		if cptest.Str(botCred, "owner_id") != cptest.Str(bot, "id") {
			t.Fatalf("owner = %v", botCred["owner_id"])
		}
		// A developer owns what they create and may not name anyone else.
		mine := e.Must(201, e.Call("POST", "/ssh_credentials", devKey, map[string]any{"public_key": k2}))
		if cptest.Str(mine, "owner_id") != devID {
			t.Fatalf("owner = %v", mine["owner_id"])
		}
		cptest.WantError(t, e.Call("POST", "/ssh_credentials", devKey, map[string]any{"public_key": k3, "owner_id": e.Dev.UserID}), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("PATCH", "/ssh_credentials/"+cptest.Str(botCred, "id"), devKey, map[string]any{"description": "x"}), 403, string(codes.APIForbidden))
		cptest.WantError(t, e.Call("DELETE", "/ssh_credentials/"+cptest.Str(botCred, "id"), devKey, nil), 403, string(codes.APIForbidden))
		e.Must(200, e.Call("PATCH", "/ssh_credentials/"+cptest.Str(mine, "id"), devKey, map[string]any{"description": "mine"}))
		// Read-only developers read but do not write.
		e.Must(200, e.Call("GET", "/ssh_credentials/"+cptest.Str(mine, "id"), roKey, nil))
		cptest.WantError(t, e.Call("POST", "/ssh_credentials", roKey, map[string]any{"public_key": k3}), 403, string(codes.APIForbidden))
		// Deleting the bot deletes its SSH credential.
		e.Must(204, e.Call("DELETE", "/bot_users/"+cptest.Str(bot, "id"), e.Admin, nil))
		cptest.WantError(t, e.Call("GET", "/ssh_credentials/"+cptest.Str(botCred, "id"), e.Admin, nil), 404, string(codes.APINotFound))
		e.Must(204, e.Call("DELETE", "/ssh_credentials/"+cptest.Str(mine, "id"), devKey, nil))
	})
}
