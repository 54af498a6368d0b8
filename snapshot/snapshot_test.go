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

// TestSnapshotDuplicatesAndUnknownFields: a repeated ID or second key is
// refused; a field from a newer version is ignored (a snapshot persisted by
// a newer edge still loads after a downgrade).
func TestSnapshotDuplicatesAndUnknownFields(t *testing.T) {
	if _, err := New(Data{Authtokens: []Authtoken{{ID: "cr_1"}, {ID: "cr_1"}}}); err == nil {
		t.Fatal("duplicate IDs accepted")
	}
	if _, err := New(Data{ReservedDomains: []ReservedDomain{{ID: "rd_1", Domain: "a.example"}, {ID: "rd_2", Domain: "a.example"}}}); err == nil {
		t.Fatal("a domain reserved twice accepted")
	}
	s, err := Decode(strings.NewReader(`{"revision":1,"surprise":true,"authtokens":[{"id":"cr_1","new_field":[1]}]}`))
	if err != nil {
		t.Fatalf("unknown fields refused: %v", err)
	}
	if _, ok := s.Authtoken("cr_1"); !ok || s.Revision() != 1 {
		t.Fatal("the known fields were not read")
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
