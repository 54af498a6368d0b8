package authn

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
)

func snapshotWith(t testing.TB, n int) (*snapshot.Snapshot, []Token) {
	t.Helper()
	d := snapshot.Data{
		Revision:   1,
		Accounts:   []snapshot.Account{{ID: "acct_1", Name: "one", Active: true}, {ID: "acct_off", Name: "off", Active: false}},
		Principals: []snapshot.Principal{{ID: "usr_1", Kind: snapshot.PrincipalUser, Active: true}, {ID: "bot_off", Kind: snapshot.PrincipalBot, Active: false}},
	}
	toks := make([]Token, n)
	for i := 0; i < n; i++ {
		id, tok, hash := NewCredential(ids.PrefixAuthtoken)
		toks[i] = tok
		d.Authtokens = append(d.Authtokens, snapshot.Authtoken{ID: id, AccountID: "acct_1", OwnerID: "usr_1", SecretHash: hash})
	}
	s, err := snapshot.New(d)
	if err != nil {
		t.Fatal(err)
	}
	return s, toks
}

func TestVerifyAuthtoken(t *testing.T) {
	snap, toks := snapshotWith(t, 3)
	good := toks[0].Reveal()
	kid, _, _ := ParseToken(good)

	// Credentials whose owner or account is inactive.
	d := *snap.Data()
	offOwnerID, offOwnerTok, h1 := NewCredential(ids.PrefixAuthtoken)
	offAcctID, offAcctTok, h2 := NewCredential(ids.PrefixAuthtoken)
	d.Authtokens = append(append([]snapshot.Authtoken{}, d.Authtokens...),
		snapshot.Authtoken{ID: offOwnerID, AccountID: "acct_1", OwnerID: "bot_off", SecretHash: h1},
		snapshot.Authtoken{ID: offAcctID, AccountID: "acct_off", OwnerID: "usr_1", SecretHash: h2})
	snap2, err := snapshot.New(d)
	if err != nil {
		t.Fatal(err)
	}
	_, unknown, _ := NewCredential(ids.PrefixAuthtoken)

	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", good, nil},
		{"missing", "", ErrAuthtokenMissing},
		{"malformed", "not-a-token", ErrAuthtokenMalformed},
		{"short secret", kid + "_abc", ErrAuthtokenMalformed},
		{"wrong secret", kid + "_" + strings.Repeat("A", 32), ErrAuthtokenInvalid},
		{"unknown credential", unknown.Reveal(), ErrAuthtokenInvalid},
		{"inactive owner", offOwnerTok.Reveal(), ErrCredentialRevoked},
		{"inactive account", offAcctTok.Reveal(), ErrCredentialRevoked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := VerifyAuthtoken(snap2, tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && (id == nil || id.Account.ID != "acct_1" || id.Principal.ID != "usr_1") {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

func TestTokenNeverPrints(t *testing.T) {
	_, tok, _ := NewCredential(ids.PrefixAPIKey)
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %s %q %#v %+v", tok, tok, tok, tok, tok), tok.String()} {
		if strings.Contains(s, tok.Reveal()[28:]) {
			t.Fatalf("token printed: %s", s)
		}
	}
}

func TestNewCredentialShape(t *testing.T) {
	id, tok, hash := NewCredential(ids.PrefixAuthtoken)
	kid, secret, err := ParseToken(tok.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if id != "cr_"+kid || len(secret) != secretLen || !SecretMatches(secret, hash) || SecretMatches(secret+"x", hash) {
		t.Fatalf("id %s kid %s secret %d", id, kid, len(secret))
	}
	if _, _, err := ids.Split(id, ids.PrefixAuthtoken); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseToken(f *testing.F) {
	_, tok, _ := NewCredential("cr")
	f.Add(tok.Reveal())
	f.Add("")
	f.Add("_")
	f.Add("2cSjwFetnZnRcG0B7U5fEYBX2V3_6Jxvym7aMW1jc41HTLpAc")
	f.Fuzz(func(t *testing.T, s string) {
		kid, secret, err := ParseToken(s)
		if err != nil {
			return
		}
		if len(kid) != 27 || len(secret) < 16 || !strings.Contains(s, kid+"_"+secret) {
			t.Fatalf("accepted %q as %q/%q", s, kid, secret)
		}
	})
}

// BenchmarkVerifyAuthtoken1M checks an authtoken against a snapshot holding
// 1,000,000 credentials (DESIGN target: ≤ 2 µs per check).
func BenchmarkVerifyAuthtoken1M(b *testing.B) {
	snap, toks := snapshotWith(b, 1_000_000)
	tok := toks[len(toks)/2].Reveal()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := VerifyAuthtoken(snap, tok); err != nil {
			b.Fatal(err)
		}
	}
}
