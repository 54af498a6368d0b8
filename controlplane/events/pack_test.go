package events

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/traffic"
)

// packRecords packs recs with the given sequence numbers as IngestTraffic
// does.
func packRecords(t testing.TB, run [8]byte, seqs []uint64, recs []traffic.Record) store.TrafficEvent {
	p := &packer{accountID: "acct_1", typ: traffic.HTTPRequestComplete}
	for i := range recs {
		if err := p.add(seqs[i], recordEnd(&recs[i]), &recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return p.row(run)
}

// TestPackRoundTrip: a packed row unpacks to its run, sequence numbers
// and records (times in UTC), its ID is the first event's and its time
// the earliest end; a truncated or altered row is refused, and
// expandOutbox turns a row it cannot decode into one event without a
// payload at the row's last position.
func TestPackRoundTrip(t *testing.T) {
	run := runOf("edge_1", "boot")
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 5, time.FixedZone("x", 3600))
	recs := []traffic.Record{
		{Type: traffic.HTTPRequestComplete, Start: t0, Duration: 2, AccountID: "acct_1", Host: "a.example", Path: "/a",
			Status: 200, ClientIP: netip.MustParseAddr("192.0.2.1"), BytesOut: 12},
		{Type: traffic.HTTPRequestComplete, Start: t0.Add(time.Second), Duration: 0.5, AccountID: "acct_1", Host: "a.example", Path: "/b\xff",
			Status: 404, ClientIP: netip.MustParseAddr("2001:db8::1%eth0")},
		{Type: traffic.HTTPRequestComplete, Start: t0.Add(-time.Hour), AccountID: "acct_1"},
	}
	seqs := []uint64{3, 4, 900}
	row := packRecords(t, run, seqs, recs)
	if row.ID != TrafficEventID("edge_1", "boot", 3) || row.Count != 3 || !row.At.Equal(recordEnd(&recs[2])) {
		t.Fatalf("row %s n=%d at %v", row.ID, row.Count, row.At)
	}
	gotRun, gotSeqs, gotRecs, err := unpack(row.Packed)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]traffic.Record(nil), recs...)
	for i := range want {
		want[i].Start = want[i].Start.UTC()
	}
	if gotRun != run || !reflect.DeepEqual(gotSeqs, seqs) || !reflect.DeepEqual(gotRecs, want) {
		t.Fatalf("unpacked %x %v %+v", gotRun, gotSeqs, gotRecs)
	}
	for _, bad := range [][]byte{nil, row.Packed[:9], row.Packed[:len(row.Packed)-1], append(append([]byte(nil), row.Packed...), 0),
		append([]byte{2}, row.Packed[1:]...)} {
		if _, _, _, err := unpack(bad); err == nil {
			t.Fatalf("unpacked a malformed row %x", bad)
		}
	}
	out := expandOutbox([]store.OutboxEvent{{Revision: 5, Idx: 100, ID: row.ID, Source: store.OutboxSourceTraffic, Type: row.Type,
		Packed: row.Packed[:len(row.Packed)-2], Count: 3}}, 4, 0, 10)
	if len(out) != 1 || out[0].Idx != 102 || out[0].Payload != nil || out[0].Packed != nil {
		t.Fatalf("a malformed row expanded to %+v", out)
	}
}

// FuzzUnpackTraffic: any bytes are unpacked or refused without a panic,
// and what unpacks packs again to a row that unpacks to the same.
func FuzzUnpackTraffic(f *testing.F) {
	run := runOf("e", "b")
	now := time.Unix(1_780_000_000, 0)
	f.Add(packRecords(f, run, []uint64{1, 2}, []traffic.Record{{Type: traffic.HTTPRequestComplete, Start: now, Path: "/"},
		{Type: traffic.HTTPRequestComplete, Start: now, Path: "/x", ClientIP: netip.MustParseAddr("::1")}}).Packed)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		gotRun, seqs, recs, err := unpack(data)
		if err != nil {
			return
		}
		if len(seqs) != len(recs) || len(recs) == 0 {
			t.Fatalf("%d seqs, %d records", len(seqs), len(recs))
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("sequence numbers %v do not grow", seqs)
			}
		}
		row := packRecords(t, gotRun, seqs, recs)
		run2, seqs2, recs2, err := unpack(row.Packed)
		if err != nil || run2 != gotRun || !reflect.DeepEqual(seqs2, seqs) || !reflect.DeepEqual(recs2, recs) {
			t.Fatalf("repacked: %v", err)
		}
	})
}
