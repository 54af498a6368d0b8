package store

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/codes"
	"golang.org/x/crypto/ssh"
)

func authorizedKey(t testing.TB, pub any) string {
	t.Helper()
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

func TestParseSSHPublicKey(t *testing.T) {
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ed := authorizedKey(t, edPub)
	signer, err := ssh.NewSignerFromKey(edPriv)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: signer.PublicKey(), CertType: ssh.UserCert, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	certLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))

	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"ed25519", ed, true},
		{"with comment and spaces", "  " + ed + " me@host  ", true},
		{"with options", `no-pty,from="10.0.0.0/8" ` + ed + " me@host", true},
		{"empty", "  ", false},
		{"not base64", "ssh-ed25519 !!!", false},
		{"two lines", ed + "\n" + ed, false},
		{"carriage return", ed + "\r", true}, // trailing whitespace is trimmed
		{"weak RSA", authorizedKey(t, &weak.PublicKey), false},
		{"certificate", certLine, false},
		{"too long", ed + " " + strings.Repeat("c", MaxSSHKeyLineBytes), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, key, err := ParseSSHPublicKey(tc.in)
			if !tc.ok {
				wantCode(t, err, codes.SSHKeyInvalid)
				return
			}
			if err != nil || key == nil || line != strings.TrimSpace(tc.in) {
				t.Fatalf("ParseSSHPublicKey = %q, %v, %v", line, key, err)
			}
		})
	}
}

func TestUpdateSSHCredential(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		f := newFixture(t, s)
		c, err := s.CreateSSHCredential(ctx, f.actor, f.account.ID, SSHCredentialCreate{OwnerID: f.admin.ID, PublicKey: testSSHKey, Description: "a"})
		if err != nil {
			t.Fatal(err)
		}
		before := rev(t, s)
		got, err := s.UpdateSSHCredential(ctx, f.actor, f.account.ID, c.ID, SSHCredentialUpdate{
			Description: ptr("b"), ACL: &[]string{"bind:*.Example.com", "bind:*.example.com"}})
		if err != nil || got.Description != "b" || len(got.ACL) != 1 || got.ACL[0] != "bind:*.example.com" || got.Fingerprint != c.Fingerprint {
			t.Fatalf("update = %+v, %v", got, err)
		}
		if rev(t, s) != before+1 {
			t.Fatal("an update did not take one revision")
		}
		evs, _, err := s.ListAuditEvents(ctx, f.account.ID, Page{Limit: 1})
		if err != nil || len(evs) != 1 || evs[0].Type != "ssh_credential_updated.v0" || evs[0].ObjectID != c.ID ||
			!strings.Contains(string(evs[0].Payload), `"description":"b"`) {
			t.Fatalf("audit = %+v, %v", evs, err)
		}
		// Re-read: stored, and the snapshot has the new ACL.
		again, err := s.GetSSHCredential(ctx, f.account.ID, c.ID)
		if err != nil || again.Description != "b" || len(again.ACL) != 1 {
			t.Fatalf("GetSSHCredential = %+v, %v", again, err)
		}
		snap, err := s.BuildSnapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if sc, ok := snap.SSHCredentialByFingerprint(c.Fingerprint); !ok || len(sc.ACL) != 1 || sc.ACL[0] != "bind:*.example.com" {
			t.Fatalf("snapshot = %+v", sc)
		}
		// No change: no revision. Bad input: nothing either.
		before = rev(t, s)
		if _, err := s.UpdateSSHCredential(ctx, f.actor, f.account.ID, c.ID, SSHCredentialUpdate{Description: ptr("b")}); err != nil {
			t.Fatal(err)
		}
		_, err = s.UpdateSSHCredential(ctx, f.actor, f.account.ID, c.ID, SSHCredentialUpdate{ACL: &[]string{"nope"}})
		wantCode(t, err, codes.ACLInvalid)
		_, err = s.UpdateSSHCredential(ctx, f.actor, f.account.ID, c.ID, SSHCredentialUpdate{Metadata: ptr(strings.Repeat("m", MaxMetadataBytes+1))})
		wantCode(t, err, codes.APIMetadataLength)
		if rev(t, s) != before {
			t.Fatal("a no-op or refused update took a revision")
		}
		// Another account cannot touch it.
		other, err := s.CreateAccount(ctx, SystemActor, "other")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateSSHCredential(ctx, f.actor, other.ID, c.ID, SSHCredentialUpdate{Description: ptr("x")}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("update from another account: %v", err)
		}
	})
}
