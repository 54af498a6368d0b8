package traffic

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// roundTrip encodes bt in the binary encoding and decodes it; it fails
// unless the result is bt with every Start in UTC.
func roundTrip(t *testing.T, bt Batch) []byte {
	t.Helper()
	data, err := bt.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got Batch
	if err := got.UnmarshalBinary(data); err != nil {
		t.Fatalf("decoding what AppendBinary wrote: %v", err)
	}
	want := bt
	want.Records = append([]Record(nil), bt.Records...)
	for i := range want.Records {
		want.Records[i].Start = want.Records[i].Start.UTC()
	}
	if len(want.Records) == 0 && len(got.Records) == 0 {
		want.Records, got.Records = nil, nil
	}
	if len(want.Dropped) == 0 && len(got.Dropped) == 0 {
		want.Dropped, got.Dropped = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	return data
}

// TestBatchBinary: a batch of repetitive records round-trips and is far
// smaller than its JSON; malformed inputs are refused with an error that
// says what is wrong.
func TestBatchBinary(t *testing.T) {
	bt := Batch{EdgeID: "edge_1", Boot: "boot", FirstSeq: 42, Dropped: []DropCount{{AccountID: "acct_1", Type: HTTPRequestComplete, Count: 3}}}
	for i := range 100 {
		r := fuzzRecord("http_request_complete.v0\x00us\x00edge_1\x00acct_1\x00ep_1\x00ts_1\x00https\x001.3\x00a.example\x00GET\x00/x"+strings.Repeat("y", i%3),
			1_780_000_000+int64(i), int32(i*1000), 0, float64(i)/1000, 200, int64(i), int64(2*i), []byte{192, 0, 2, byte(i)})
		bt.Records = append(bt.Records, r)
	}
	data := roundTrip(t, bt)
	js, err := bt.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(data)*8 > len(js) {
		t.Errorf("binary %d bytes, JSON %d: want it under an eighth", len(data), len(js))
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a binary traffic batch"},
		{"JSON", js, "not a binary traffic batch"},
		{"truncated", data[:len(data)-3], "truncated"},
		{"trailing", append(append([]byte{}, data...), 0), "after the last record"},
		{"huge count", append(append([]byte{}, data[:5]...), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f), "cannot fit"},
	} {
		var got Batch
		err := got.UnmarshalBinary(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	if _, err := (&Batch{Records: []Record{{Start: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}}}).AppendBinary(nil); err != ErrBinaryTime {
		t.Errorf("year 3000: %v, want ErrBinaryTime", err)
	}
}

// FuzzBatchBinary: every batch the edge can build round-trips.
func FuzzBatchBinary(f *testing.F) {
	f.Add("http_request_complete.v0\x00us\x00edge_1", "edge", "boot", uint64(1), 3, int64(1_780_000_000), int32(5), 0.25, 200, int64(1), int64(2), []byte{192, 0, 2, 1}, true)
	f.Add("\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00eth0", "", "", uint64(0), 1, int64(-1), int32(-7), math.Copysign(0, -1), -1, int64(-5), int64(math.MaxInt64),
		[]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, false)
	f.Fuzz(func(t *testing.T, s, edge, boot string, seq uint64, n int, start int64, nsec int32, dur float64, status int, in, out int64, ip []byte, drop bool) {
		if math.IsNaN(dur) || math.IsInf(dur, 0) {
			return // JSON cannot carry it either; UnmarshalBinary refuses it
		}
		bt := Batch{EdgeID: edge, Boot: boot, FirstSeq: seq}
		if drop {
			bt.Dropped = []DropCount{{AccountID: s, Type: edge, Count: in}}
		}
		for i := range n % 5 {
			// Records alike but for one field in turn, so that every
			// repeat-mask bit is exercised.
			r := fuzzRecord(s, start/4+int64(i)*int64(nsec), nsec, 0, dur, status+i, in, out, ip)
			strs := r.strs(new(string))
			if i > 0 {
				*strs[i%14] += "!"
			}
			bt.Records = append(bt.Records, r)
		}
		roundTrip(t, bt)
	})
}

// FuzzUnmarshalBinary: any input is decoded or refused without a panic,
// and what decodes encodes and decodes again to the same batch (the
// bytes may differ: a repeated string need not be marked as one).
func FuzzUnmarshalBinary(f *testing.F) {
	for _, bt := range []Batch{benchBatch(3), {EdgeID: "e"}} {
		data, err := bt.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var bt Batch
		if bt.UnmarshalBinary(data) != nil {
			return
		}
		roundTrip(t, bt)
		if _, err := json.Marshal(&bt); err != nil {
			t.Fatalf("a decoded batch does not encode as JSON: %v", err)
		}
	})
}

// BenchmarkBatchBinary is BenchmarkBatchJSON's batch in the binary
// encoding.
func BenchmarkBatchBinary(b *testing.B) {
	bt := benchBatch(1000)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = bt.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/record")
	b.ReportMetric(float64(len(buf))/1000, "bytes/record")
}

// TestEncodedBatch: records encoded one at a time (RecordEncoder, as the
// edge keeps them) make the same batch as the records themselves, and
// DecodeRecords gives the records back.
func TestEncodedBatch(t *testing.T) {
	whole := benchBatch(5)
	whole.Records[2].Path = "/other"
	var e RecordEncoder
	var data []byte
	for i := range whole.Records {
		var err error
		if data, err = e.Append(data, &whole.Records[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Append(data, &Record{Start: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}); err != ErrBinaryTime {
		t.Fatalf("year 1000: %v, want ErrBinaryTime", err)
	}
	enc := Batch{EdgeID: whole.EdgeID, Boot: whole.Boot, FirstSeq: whole.FirstSeq, Encoded: data, Count: e.Count()}
	a, err := whole.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := enc.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("encoded one at a time:\n%x\nwhole:\n%x", b, a)
	}
	if err := enc.DecodeRecords(); err != nil {
		t.Fatal(err)
	}
	if enc.Encoded != nil || !reflect.DeepEqual(enc.Records, whole.Records) {
		t.Fatalf("decoded %+v\nwant %+v", enc.Records, whole.Records)
	}
}
