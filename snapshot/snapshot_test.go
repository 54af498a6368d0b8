package snapshot

import (
	"bytes"
	"strings"
	"testing"
)

func TestSnapshotRoundTripAndIndexes(t *testing.T) {
	d := Data{
		Revision:        7,
		Accounts:        []Account{{ID: "acct_1", Name: "a", Active: true}},
		Principals:      []Principal{{ID: "usr_1", Kind: PrincipalUser, Active: true, AccountIDs: []string{"acct_1"}}},
		Authtokens:      []Authtoken{{ID: "cr_1", AccountID: "acct_1", OwnerID: "usr_1", SecretHash: "ab"}},
		ReservedDomains: []ReservedDomain{{ID: "rd_1", AccountID: "acct_1", Domain: "app.example.com", Region: "eu"}},
	}
	s, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	s2, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Revision() != 7 {
		t.Fatalf("revision %d", s2.Revision())
	}
	if a, ok := s2.Authtoken("cr_1"); !ok || a.OwnerID != "usr_1" {
		t.Fatal("authtoken index")
	}
	if r, ok := s2.ReservedDomain("app.example.com"); !ok || r.Region != "eu" {
		t.Fatal("domain index")
	}
	if _, ok := s2.Principal("usr_2"); ok {
		t.Fatal("found a principal that does not exist")
	}
}

func TestSnapshotRejectsDuplicatesAndUnknownFields(t *testing.T) {
	if _, err := New(Data{Authtokens: []Authtoken{{ID: "cr_1"}, {ID: "cr_1"}}}); err == nil {
		t.Fatal("duplicate IDs accepted")
	}
	if _, err := Decode(strings.NewReader(`{"revision":1,"surprise":true}`)); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add([]byte(`{"revision":1,"accounts":[{"id":"acct_1","active":true}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := s.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(&buf); err != nil {
			t.Fatalf("re-decoding an encoded snapshot: %v", err)
		}
	})
}
