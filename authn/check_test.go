package authn

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

// TestCheckAuthtokenKnown: CheckAuthtoken says whether the snapshot holds
// the credential, so that a caller can wait for a newer snapshot without
// parsing the token again.
func TestCheckAuthtokenKnown(t *testing.T) {
	snap, toks := snapshotWith(t, 1)
	good := toks[0].Reveal()
	kid, _, _ := ParseToken(good)
	_, unknown, _ := NewCredential(ids.PrefixAuthtoken)
	cases := []struct {
		name  string
		token string
		known bool
		want  error
	}{
		{"valid", good, true, nil},
		{"wrong secret", kid + "_" + strings.Repeat("A", 32), true, ErrAuthtokenInvalid},
		{"unknown credential", unknown.Reveal(), false, ErrAuthtokenInvalid},
		{"malformed", "nope", false, ErrAuthtokenMalformed},
		{"missing", "", false, ErrAuthtokenMissing},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ident, known, err := CheckAuthtoken(snap, tc.token)
			if known != tc.known || !errors.Is(err, tc.want) {
				t.Fatalf("known %v, err %v; want %v, %v", known, err, tc.known, tc.want)
			}
			if tc.want == nil && (ident.Authtoken == nil || ident.Authtoken.ID != ident.CredentialID) {
				t.Fatalf("identity lacks its credential: %+v", ident)
			}
		})
	}
}

func TestReverifyAuthtoken(t *testing.T) {
	snap, toks := snapshotWith(t, 1)
	ident, err := VerifyAuthtoken(snap, toks[0].Reveal())
	if err != nil {
		t.Fatal(err)
	}
	hash := ident.Authtoken.SecretHash
	if _, err := ReverifyAuthtoken(snap, ident.CredentialID, hash); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	if _, err := ReverifyAuthtoken(snap, ident.CredentialID, HashSecret("rotated")); !errors.Is(err, ErrAuthtokenInvalid) {
		t.Fatalf("rotated: %v", err)
	}
	d := *snap.Data()
	d.Principals = []snapshot.Principal{{ID: "usr_1", Kind: snapshot.PrincipalUser, Active: false}}
	off, err := snapshot.New(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReverifyAuthtoken(off, ident.CredentialID, hash); !errors.Is(err, ErrCredentialRevoked) {
		t.Fatalf("owner deactivated: %v", err)
	}
}

func TestVerifySSHKey(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	sp, _ := ssh.NewPublicKey(pub)
	op, _ := ssh.NewPublicKey(other)
	fp := ssh.FingerprintSHA256(sp)
	d := snapshot.Data{
		Accounts:   []snapshot.Account{{ID: "acct_1", Active: true}, {ID: "acct_off"}},
		Principals: []snapshot.Principal{{ID: "usr_1", Active: true}},
		SSHCredentials: []snapshot.SSHCredential{{ID: "sshcr_1", AccountID: "acct_1", OwnerID: "usr_1", Fingerprint: fp,
			PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), ACL: []string{"bind:a.example.com"}}},
	}
	snap, err := snapshot.New(d)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := VerifySSHKey(snap, fp, sp.Marshal())
	if err != nil || ident.CredentialID != "sshcr_1" || ident.SSHCredential == nil || ident.ACL[0] != "bind:a.example.com" {
		t.Fatalf("registered key: %+v, %v", ident, err)
	}
	if _, err := VerifySSHKey(snap, fp, nil); err != nil {
		t.Fatalf("by fingerprint only: %v", err)
	}
	if _, err := VerifySSHKey(snap, fp, op.Marshal()); !errors.Is(err, ErrSSHKeyUnknown) {
		t.Fatalf("another key under the fingerprint: %v", err)
	}
	if _, err := VerifySSHKey(snap, ssh.FingerprintSHA256(op), nil); !errors.Is(err, ErrSSHKeyUnknown) {
		t.Fatalf("unknown key: %v", err)
	}
	d.SSHCredentials[0].AccountID = "acct_off"
	if snap, err = snapshot.New(d); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifySSHKey(snap, fp, nil); !errors.Is(err, ErrSSHKeyRevoked) {
		t.Fatalf("inactive account: %v", err)
	}
}

func TestAPIKeyChecks(t *testing.T) {
	id, tok, hash := NewCredential(ids.PrefixAPIKey)
	keyID, secret, err := ParseAPIKey(tok.Reveal())
	if err != nil || keyID != id {
		t.Fatalf("ParseAPIKey = %q, %v; want %q", keyID, err, id)
	}
	if _, _, err := ParseAPIKey(id); !errors.Is(err, ErrAPIKeyID) {
		t.Errorf("ParseAPIKey(ID) = %v, want ErrAPIKeyID", err)
	}
	if _, _, err := ParseAPIKey("nope"); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseAPIKey(junk) = %v, want ErrMalformed", err)
	}
	good := APIKeyState{SecretHash: hash, AccountActive: true, OwnerActive: true, Member: true}
	for _, tt := range []struct {
		name   string
		secret string
		edit   func(*APIKeyState)
		want   error
	}{
		{"valid", secret, func(*APIKeyState) {}, nil},
		{"wrong secret", secret + "x", func(*APIKeyState) {}, ErrAPIKeyInvalid},
		{"account suspended", secret, func(s *APIKeyState) { s.AccountActive = false }, ErrAccountInactive},
		{"owner deactivated", secret, func(s *APIKeyState) { s.OwnerActive = false }, ErrOwnerInactive},
		{"not a member", secret, func(s *APIKeyState) { s.Member = false }, ErrNotMember},
		{"suspended account before inactive owner", secret, func(s *APIKeyState) { s.AccountActive, s.OwnerActive = false, false }, ErrAccountInactive},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := good
			tt.edit(&st)
			if err := CheckAPIKey(tt.secret, st); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("CheckAPIKey = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestDeactivatedMembership: a user deactivated in one account (SCIM
// active: false) loses the credentials they hold there, and only there.
func TestDeactivatedMembership(t *testing.T) {
	snap, toks := snapshotWith(t, 1)
	d := *snap.Data()
	d.Accounts = append(append([]snapshot.Account{}, d.Accounts...), snapshot.Account{ID: "acct_2", Name: "two", Active: true})
	otherID, otherTok, h := NewCredential(ids.PrefixAuthtoken)
	d.Authtokens = append(append([]snapshot.Authtoken{}, d.Authtokens...),
		snapshot.Authtoken{ID: otherID, AccountID: "acct_2", OwnerID: "usr_1", SecretHash: h})
	d.Principals = []snapshot.Principal{{ID: "usr_1", Kind: snapshot.PrincipalUser, Active: true,
		AccountIDs: []string{"acct_1", "acct_2"}, DeactivatedIn: []string{"acct_1"}}}
	off, err := snapshot.New(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAuthtoken(off, toks[0].Reveal()); !errors.Is(err, ErrCredentialRevoked) {
		t.Fatalf("authtoken of the deactivated membership: %v, want ErrCredentialRevoked", err)
	}
	kid, secret, _ := ParseToken(toks[0].Reveal())
	if _, err := ReverifyAuthtoken(off, ids.PrefixAuthtoken+"_"+kid, HashSecret(secret)); !errors.Is(err, ErrCredentialRevoked) {
		t.Fatalf("reverify in the deactivated membership: %v", err)
	}
	if _, err := VerifyAuthtoken(off, otherTok.Reveal()); err != nil {
		t.Fatalf("authtoken of the same user in another account: %v", err)
	}
}
