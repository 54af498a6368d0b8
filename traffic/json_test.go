package traffic

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"testing"
	"time"
)

// fuzzRecord builds a Record from fuzz inputs: every string field from s
// (cut at NUL bytes, so that one input fills several fields), the numbers
// and the time from the integers.
func fuzzRecord(s string, start int64, nsec int32, zone int32, dur float64, status int, in, out int64, ip []byte) Record {
	parts := bytes.Split([]byte(s), []byte{0})
	field := func(i int) string {
		if i < len(parts) {
			return string(parts[i])
		}
		return ""
	}
	loc := time.UTC
	if zone%3 != 0 {
		loc = time.FixedZone("z", int(zone%(30*3600)))
	}
	r := Record{Type: field(0), Start: time.Unix(start%(1<<40), int64(nsec)).In(loc), Duration: dur,
		Region: field(1), EdgeID: field(2), AccountID: field(3), EndpointID: field(4), SessionID: field(5),
		EndpointKind: field(6), TLSVersion: field(7), Host: field(8), Method: field(9), Path: field(10),
		Proto: field(11), Status: status, Code: field(12), IPPolicy: field(13), BytesIn: in, BytesOut: out}
	switch len(ip) {
	case 4:
		r.ClientIP = netip.AddrFrom4([4]byte(ip))
	case 16:
		r.ClientIP = netip.AddrFrom16([16]byte(ip)).WithZone(field(14))
	}
	return r
}

// sameAsMarshal checks that the encoder's bytes, or its error, are
// json.Marshal's.
func sameAsMarshal(t *testing.T, v any, got []byte, err error) {
	t.Helper()
	want, werr := json.Marshal(v)
	if (err != nil) != (werr != nil) {
		t.Fatalf("error %v, json.Marshal's %v", err, werr)
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON:\n%s\njson.Marshal:\n%s", got, want)
	}
}

func FuzzRecordJSON(f *testing.F) {
	f.Add("http_request_complete.v0\x00us\x00edge_1\x00acct_1\x00ep_1\x00ts_1\x00https\x001.3\x00a.example\x00GET\x00/x?y=<1>&z\x00HTTP/1.1\x00\x00none",
		int64(1_780_000_000), int32(123456789), int32(0), 0.25, 200, int64(10), int64(2000), []byte{192, 0, 2, 1})
	f.Add("\"\\\b\f\n\r\t\x01\x1f\x7f\u2028\u2029\xff\xfe é 😀", int64(-62_135_596_800), int32(0), int32(7), 1e-7, 0, int64(-1), int64(math.MaxInt64),
		[]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add("", int64(253_402_300_800), int32(1), int32(86399), 1e21, -5, int64(0), int64(0), []byte(nil))
	f.Add("x", int64(0), int32(0), int32(1), math.Inf(1), 1, int64(1), int64(1), []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, s string, start int64, nsec int32, zone int32, dur float64, status int, in, out int64, ip []byte) {
		r := fuzzRecord(s, start, nsec, zone, dur, status, in, out, ip)
		got, err := r.AppendJSON(nil)
		sameAsMarshal(t, r, got, err)
	})
}

func FuzzBatchJSON(f *testing.F) {
	f.Add("edge_1", "boot", uint64(7), "acct\x00t", int64(3), 2, true)
	f.Add("<&>", "", uint64(math.MaxUint64), "", int64(-1), 0, false)
	f.Fuzz(func(t *testing.T, edge, boot string, seq uint64, drop string, count int64, records int, nilRecords bool) {
		bt := Batch{EdgeID: edge, Boot: boot, FirstSeq: seq}
		if !nilRecords || records > 0 {
			bt.Records = []Record{}
		}
		for i := range records % 4 {
			bt.Records = append(bt.Records, fuzzRecord(drop, int64(i)*1e9, int32(i), 0, float64(i)/3, 200+i, int64(i), count, []byte{10, 0, 0, byte(i)}))
		}
		if drop != "" {
			parts := bytes.SplitN([]byte(drop), []byte{0}, 2)
			d := DropCount{AccountID: string(parts[0]), Count: count}
			if len(parts) > 1 {
				d.Type = string(parts[1])
			}
			bt.Dropped = append(bt.Dropped, d, DropCount{})
		}
		got, err := bt.AppendJSON(nil)
		sameAsMarshal(t, bt, got, err)
	})
}

// benchBatch is a batch of n records like the edge's.
func benchBatch(n int) Batch {
	bt := Batch{EdgeID: "edge_3N8kjjLz35pE8Ivtx5IG04g8W0O", Boot: "3N8kjlIhEpjEaLVxlWRPp9yMmPF", FirstSeq: 1}
	for i := range n {
		bt.Records = append(bt.Records, Record{Type: HTTPRequestComplete, Start: time.Now().UTC(), Duration: 0.000731,
			Region: "us", EdgeID: bt.EdgeID, AccountID: "acct_3N8kjjLz35pE8Ivtx5IG04g8W0O", EndpointID: "ep_3N8kjp9qLuiXuAKZpyq4griMe7v",
			SessionID: "ts_3N8kkXwVvryVGhXscUD16mdzyuA", EndpointKind: "https", ClientIP: netip.MustParseAddr("203.0.113.7"),
			TLSVersion: "1.3", Host: "bench.tollgate.localhost", Method: "GET", Path: "/api/items?page=2", Proto: "HTTP/1.1",
			Status: 200, IPPolicy: IPPolicyNone, BytesIn: 0, BytesOut: int64(100 + i)})
	}
	return bt
}

// BenchmarkBatchJSON compares encoding a 1000-record batch with
// AppendJSON and with json.Marshal.
//
//	go test ./traffic -run '^$' -bench BatchJSON
func BenchmarkBatchJSON(b *testing.B) {
	bt := benchBatch(1000)
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = bt.AppendJSON(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("json.Marshal", func(b *testing.B) {
		var n int
		b.ReportAllocs()
		for b.Loop() {
			buf, err := json.Marshal(&bt)
			if err != nil {
				b.Fatal(err)
			}
			n = len(buf)
		}
		b.SetBytes(int64(n))
	})
}
