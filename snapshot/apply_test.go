package snapshot

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestApplyEqualsRebuild: a snapshot kept up to date by Apply, delta after
// delta, holds what a snapshot indexed afresh from the same Data holds, and
// its second-key lookups (fingerprint, domain, address, restrictions by
// account) agree; the base snapshots are never modified.
func TestApplyEqualsRebuild(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for round := range 50 {
		cur := randomData(r, 1)
		snap, err := New(cur)
		if err != nil {
			t.Fatal(err)
		}
		for step := range 20 {
			next := randomData(r, cur.Revision+1+uint64(r.IntN(3)))
			before := canon(t, *snap.Data())
			d := Diff(&cur, &next)
			applied, err := snap.Apply(d)
			if err != nil {
				t.Fatalf("round %d step %d: %v", round, step, err)
			}
			if got := canon(t, *snap.Data()); got != before {
				t.Fatalf("round %d step %d: Apply modified its base", round, step)
			}
			fresh, err := New(next)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := canon(t, *applied.Data()), canon(t, *fresh.Data()); got != want {
				t.Fatalf("round %d step %d: applied\n%s\nwant\n%s", round, step, got, want)
			}
			sameLookups(t, applied, fresh, &next)
			if applied.Delta() != d || applied.Revision() != next.Revision {
				t.Fatal("the applied snapshot does not name its delta and revision")
			}
			cur, snap = next, applied
		}
	}
}

// sameLookups compares every index of a and b, for the keys of d and for
// keys that are absent.
func sameLookups(t *testing.T, a, b *Snapshot, d *Data) {
	t.Helper()
	for i := range 8 {
		fp := "SHA256:" + string(rune('0'+i))
		x, okx := a.SSHCredentialByFingerprint(fp)
		y, oky := b.SSHCredentialByFingerprint(fp)
		if okx != oky || (okx && x.ID != y.ID) {
			t.Fatalf("fingerprint %s: %v %v", fp, x, y)
		}
	}
	for _, rd := range d.ReservedDomains {
		if x, ok := a.ReservedDomain(rd.Domain); !ok || x.ID != rd.ID {
			t.Fatalf("domain %s: got %v", rd.Domain, x)
		}
	}
	for _, ra := range d.ReservedAddrs {
		if x, ok := a.ReservedAddr(ra.Addr); !ok || x.ID != ra.ID {
			t.Fatalf("address %s: got %v", ra.Addr, x)
		}
	}
	if a.Len() != b.Len() {
		t.Fatalf("Len %d, fresh %d", a.Len(), b.Len())
	}
	for _, acct := range []string{"acct_0", "acct_1", "acct_2"} {
		x, y := a.IPRestrictions(acct), b.IPRestrictions(acct)
		if len(x) != len(y) {
			t.Fatalf("restrictions of %s: %d, fresh %d", acct, len(x), len(y))
		}
		for i := range x {
			if x[i].ID != y[i].ID || x[i].Enforced != y[i].Enforced || x[i].Type != y[i].Type {
				t.Fatalf("restrictions of %s: %+v, fresh %+v", acct, x[i], y[i])
			}
		}
	}
}

// TestMerge: applying Merge(a, b) equals applying a then b.
func TestMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		x := randomData(r, uint64(i*3))
		y := randomData(r, x.Revision+1)
		z := randomData(r, y.Revision+1)
		sx, _ := New(x)
		m, err := Merge(Diff(&x, &y), Diff(&y, &z))
		if err != nil {
			t.Fatal(err)
		}
		got, err := sx.Apply(m)
		if err != nil {
			t.Fatal(err)
		}
		if canon(t, *got.Data()) != canon(t, z) {
			t.Fatalf("round %d: merged delta differs", i)
		}
	}
	if _, err := Merge(&Delta{From: 1, Revision: 2}, &Delta{From: 3, Revision: 4}); err == nil {
		t.Fatal("merged deltas with a gap between them")
	}
}

// TestApplyRefusesConflicts: a delta that would give one domain to two
// reservations is refused rather than applied.
func TestApplyRefusesConflicts(t *testing.T) {
	s, _ := New(Data{Revision: 1, ReservedDomains: []ReservedDomain{{ID: "rd_1", Domain: "a.example"}}})
	_, err := s.Apply(&Delta{From: 1, Revision: 2, ReservedDomains: &CollectionDelta[ReservedDomain]{
		Upsert: []ReservedDomain{{ID: "rd_2", Domain: "a.example"}}}})
	if err == nil {
		t.Fatal("a domain held twice after a delta")
	}
	// Moving the name within one delta is fine.
	got, err := s.Apply(&Delta{From: 1, Revision: 2, ReservedDomains: &CollectionDelta[ReservedDomain]{
		Upsert: []ReservedDomain{{ID: "rd_2", Domain: "a.example"}}, Delete: []string{"rd_1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if rd, ok := got.ReservedDomain("a.example"); !ok || rd.ID != "rd_2" {
		t.Fatalf("a.example is %v", rd)
	}
}

// TestDecodeFeedMessageForwardCompatible: a message from a newer control
// plane, with fields this version does not know at every level, decodes,
// and the revocation in it applies.
func TestDecodeFeedMessageForwardCompatible(t *testing.T) {
	msg, err := DecodeFeedMessage(strings.NewReader(`{"version":99,"future":{"x":1},
		"delta":{"from":1,"revision":2,"compression":"none",
		"authtokens":{"delete":["cr_1"],"tombstones":[{"id":"cr_1","at":"later"}]},
		"edge_routes":{"upsert":[{"id":"rt_1"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := New(Data{Revision: 1, Authtokens: []Authtoken{{ID: "cr_1"}, {ID: "cr_2"}}})
	next, err := s.Apply(msg.Delta)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := next.Authtoken("cr_1"); ok {
		t.Fatal("the revocation did not apply")
	}
	if _, err := DecodeFeedMessage(strings.NewReader(`{"version":2}`)); err == nil {
		t.Fatal("a message with neither snapshot nor delta decoded")
	}
}

// TestDeltaLogTornTail: a log whose last record is cut short or corrupted
// yields the records before it and the offset where the good part ends.
func TestDeltaLogTornTail(t *testing.T) {
	var buf bytes.Buffer
	var ends []int64
	for rev := uint64(1); rev <= 3; rev++ {
		d := &Delta{From: rev, Revision: rev + 1, Authtokens: &CollectionDelta[Authtoken]{Delete: []string{"cr_x"}}}
		if err := AppendDeltaRecord(&buf, d); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, int64(buf.Len()))
	}
	full := buf.Bytes()
	read := func(b []byte) (int, int64) {
		n := 0
		good, err := ReadDeltaLog(bytes.NewReader(b), func(*Delta) error { n++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		return n, good
	}
	if n, good := read(full); n != 3 || good != ends[2] {
		t.Fatalf("whole log: %d records, good to %d", n, good)
	}
	for cut := ends[1] + 1; cut < ends[2]; cut++ {
		if n, good := read(full[:cut]); n != 2 || good != ends[1] {
			t.Fatalf("cut at %d: %d records, good to %d", cut, n, good)
		}
	}
	bad := bytes.Clone(full)
	bad[ends[1]+12] ^= 0xff // a payload byte of the third record
	if n, good := read(bad); n != 2 || good != ends[1] {
		t.Fatalf("corrupt third record: %d records, good to %d", n, good)
	}
}

func FuzzReadDeltaLog(f *testing.F) {
	var buf bytes.Buffer
	_ = AppendDeltaRecord(&buf, &Delta{From: 1, Revision: 2})
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 0, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		good, err := ReadDeltaLog(bytes.NewReader(b), func(d *Delta) error {
			if _, err := json.Marshal(d); err != nil {
				t.Fatal(err)
			}
			return nil
		})
		if err != nil || good < 0 || good > int64(len(b)) {
			t.Fatalf("good %d of %d, err %v", good, len(b), err)
		}
	})
}
