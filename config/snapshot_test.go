package config

import (
	"bytes"
	"strings"
	"testing"
)

func TestSnapshotRoundTripAndIndexes(t *testing.T) {
	d := SnapshotData{
		Revision:        7,
		Accounts:        []Account{{ID: "acct_1", Name: "a", Active: true}},
		Principals:      []Principal{{ID: "usr_1", Kind: PrincipalUser, Active: true, AccountIDs: []string{"acct_1"}}},
		Authtokens:      []Authtoken{{ID: "cr_1", AccountID: "acct_1", OwnerID: "usr_1", SecretHash: "ab"}},
		ReservedDomains: []ReservedDomain{{ID: "rd_1", AccountID: "acct_1", Domain: "app.example.com", Region: "eu"}},
	}
	s, err := NewSnapshot(d)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	s2, err := DecodeSnapshot(&buf)
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
	if _, err := NewSnapshot(SnapshotData{Authtokens: []Authtoken{{ID: "cr_1"}, {ID: "cr_1"}}}); err == nil {
		t.Fatal("duplicate IDs accepted")
	}
	if _, err := DecodeSnapshot(strings.NewReader(`{"revision":1,"surprise":true}`)); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestIDs(t *testing.T) {
	id := NewID(PrefixAPIKey)
	if p, _, err := SplitID(id, PrefixAPIKey); err != nil || p != "ak" {
		t.Fatal(id, err)
	}
	for _, bad := range []string{"", "ak_", "ak_short", "cr_2cSjwFetnZnRcG0B7U5fEYBX2V3", "2cSjwFetnZnRcG0B7U5fEYBX2V3"} {
		if _, _, err := SplitID(bad, PrefixAPIKey); err == nil {
			t.Errorf("SplitID(%q) accepted", bad)
		}
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add([]byte(`{"revision":1,"accounts":[{"id":"acct_1","active":true}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSnapshot(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := s.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeSnapshot(&buf); err != nil {
			t.Fatalf("re-decoding an encoded snapshot: %v", err)
		}
	})
}
