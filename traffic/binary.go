package traffic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// BinaryMediaType is the Content-Type of a Batch in the binary encoding
// (AppendBinary). A control plane that decodes it lists BinaryEncoding in
// Answer.Encodings; an edge sends JSON until it has seen that.
const BinaryMediaType = "application/vnd.tollgate.traffic-batch.v1"

// BinaryEncoding is the name of the binary encoding in Answer.Encodings.
const BinaryEncoding = "binary.v1"

// The binary encoding of a Batch (docs/events.md#traffic-wire): the edge
// writes one per POST /edge/v1/traffic, so its cost is per request served.
// Records of one batch repeat most of their strings (edge, account,
// endpoint, session, host…), so each record says which of its strings
// equal the previous record's and carries only the others; nothing is
// compressed.
//
//	batch   = magic "TGTB" version(1) string(edge_id) string(boot) uvarint(first_seq)
//	          uvarint(n_dropped) n_dropped × (string(account_id) string(event_type) varint(count))
//	          uvarint(n_records) n_records × record
//	record  = uvarint(same) 15 strings minus those in same
//	          varint(start − previous start, Unix ns; the first from 0)
//	          8 bytes duration (IEEE 754, little endian)
//	          varint(status) varint(bytes_in) varint(bytes_out)
//	          byte(len of client IP: 0, 4 or 16) IP bytes
//	string  = uvarint(length) bytes
//
// The 15 strings, bit i of same for string i: event_type, region, edge_id,
// account_id, endpoint_id, agent_session_id, endpoint_kind, tls_version,
// host, method, path, proto, error_code, ip_policy_decision, and the
// client IP's IPv6 zone.
var binaryMagic = [5]byte{'T', 'G', 'T', 'B', 1}

const recordStrings = 15

// strs returns pointers to r's 15 strings in the encoding's order; zone is
// the client IP's zone (netip.Addr keeps it out of reach of a pointer).
func (r *Record) strs(zone *string) [recordStrings]*string {
	return [recordStrings]*string{&r.Type, &r.Region, &r.EdgeID, &r.AccountID, &r.EndpointID, &r.SessionID,
		&r.EndpointKind, &r.TLSVersion, &r.Host, &r.Method, &r.Path, &r.Proto, &r.Code, &r.IPPolicy, zone}
}

// ErrBinaryTime is returned by AppendBinary for a record whose Start is
// outside what Unix nanoseconds in an int64 hold (years 1678 to 2262):
// send that batch as JSON.
var ErrBinaryTime = errors.New("traffic: a record's start is outside the binary encoding's range (years 1678-2262)")

// AppendBinary appends bt in the binary encoding (see BinaryMediaType) to
// b: its Encoded records when it has them, else its Records. Decoding it
// with UnmarshalBinary gives bt back with every Start in UTC (and Records
// filled in). Errors: ErrBinaryTime.
func (bt *Batch) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, binaryMagic[:]...)
	b = appendStr(b, bt.EdgeID)
	b = appendStr(b, bt.Boot)
	b = binary.AppendUvarint(b, bt.FirstSeq)
	b = binary.AppendUvarint(b, uint64(len(bt.Dropped)))
	for _, d := range bt.Dropped {
		b = appendStr(b, d.AccountID)
		b = appendStr(b, d.Type)
		b = binary.AppendVarint(b, d.Count)
	}
	if bt.Encoded != nil {
		b = binary.AppendUvarint(b, uint64(bt.Count))
		return append(b, bt.Encoded...), nil
	}
	b = binary.AppendUvarint(b, uint64(len(bt.Records)))
	var e RecordEncoder
	for i := range bt.Records {
		var err error
		if b, err = e.Append(b, &bt.Records[i]); err != nil {
			return b, err
		}
	}
	return b, nil
}

// RecordEncoder writes the records of one batch in the binary encoding,
// one at a time, as they happen (the edge encodes each request's record
// while its strings are still in the cache, and keeps the bytes, which
// hold no pointers, instead of the record). Its zero value starts a
// batch; each record is encoded relative to the one before it.
type RecordEncoder struct {
	prev      [recordStrings]string
	prevStart int64
	n         int
}

// Count returns the number of records encoded.
func (e *RecordEncoder) Count() int { return e.n }

// Append appends r's encoding to b. Errors: ErrBinaryTime (nothing is
// appended and the encoder is unchanged).
func (e *RecordEncoder) Append(b []byte, r *Record) ([]byte, error) {
	start := r.Start.UnixNano()
	if !time.Unix(0, start).Equal(r.Start) {
		return b, ErrBinaryTime
	}
	zone := r.ClientIP.Zone()
	strs := r.strs(&zone)
	var same uint64
	for k, s := range strs {
		if e.n > 0 && *s == e.prev[k] {
			same |= 1 << k
		}
	}
	b = binary.AppendUvarint(b, same)
	for k, s := range strs {
		if same&(1<<k) == 0 {
			b = appendStr(b, *s)
			e.prev[k] = *s
		}
	}
	b = binary.AppendVarint(b, start-e.prevStart)
	e.prevStart = start
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.Duration))
	b = binary.AppendVarint(b, int64(r.Status))
	b = binary.AppendVarint(b, r.BytesIn)
	b = binary.AppendVarint(b, r.BytesOut)
	switch {
	case r.ClientIP.Is4():
		ip := r.ClientIP.As4()
		b = append(b, 4)
		b = append(b, ip[:]...)
	case r.ClientIP.Is6():
		ip := r.ClientIP.As16()
		b = append(b, 16)
		b = append(b, ip[:]...)
	default:
		b = append(b, 0)
	}
	e.n++
	return b, nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary decodes data, a batch in the binary encoding, into bt
// (replacing what it held). It allocates in proportion to len(data) only,
// whatever the counts in data say. Errors describe the first malformed
// part; bt is then unspecified.
func (bt *Batch) UnmarshalBinary(data []byte) error {
	if len(data) < len(binaryMagic) || [5]byte(data[:5]) != binaryMagic {
		return errors.New("not a binary traffic batch (version 1)")
	}
	d := decoder{b: data[len(binaryMagic):]}
	*bt = Batch{EdgeID: d.str(), Boot: d.str(), FirstSeq: d.uvarint()}
	if n := d.count(3); n > 0 {
		bt.Dropped = make([]DropCount, n)
		for i := range bt.Dropped {
			bt.Dropped[i] = DropCount{AccountID: d.str(), Type: d.str(), Count: d.varint()}
		}
	}
	bt.Records = d.records(d.count(minRecordBytes))
	return d.err
}

// DecodeRecords fills bt.Records from bt.Encoded (a no-op without it),
// for a receiver that takes records. Errors are UnmarshalBinary's.
func (bt *Batch) DecodeRecords() error {
	if bt.Encoded == nil {
		return nil
	}
	d := decoder{b: bt.Encoded}
	if bt.Count < 0 || bt.Count > len(bt.Encoded)/minRecordBytes {
		d.fail("%d records cannot fit in %d bytes", bt.Count, len(bt.Encoded))
	}
	records := d.records(bt.Count)
	if d.err != nil {
		return d.err
	}
	bt.Records, bt.Encoded, bt.Count = records, nil, 0
	return nil
}

// minRecordBytes is the fewest bytes a record takes (all its strings
// repeated, every number one byte, no client IP).
const minRecordBytes = 1 + 8 + 4 + 1

// records decodes n records, which must end the input (nil after an
// error).
func (d *decoder) records(n int) []Record {
	if d.err != nil {
		return nil
	}
	out := make([]Record, n)
	var prev [recordStrings]string
	var start int64
	for i := 0; i < n && d.err == nil; i++ {
		r := &out[i]
		var zone string
		strs := r.strs(&zone)
		same := d.uvarint()
		if same >= 1<<recordStrings || (i == 0 && same != 0) {
			d.fail("record %d: bad repeat mask %#x", i, same)
			break
		}
		for k, s := range strs {
			if same&(1<<k) != 0 {
				*s = prev[k]
			} else {
				*s = d.str()
			}
			prev[k] = *s
		}
		start += d.varint()
		r.Start = time.Unix(0, start).UTC()
		r.Duration = math.Float64frombits(binary.LittleEndian.Uint64(d.bytes(8)))
		if math.IsNaN(r.Duration) || math.IsInf(r.Duration, 0) {
			d.fail("record %d: duration is not a finite number", i) // as JSON cannot carry one
		}
		r.Status = int(d.varint())
		r.BytesIn, r.BytesOut = d.varint(), d.varint()
		switch l := d.bytes(1)[0]; l {
		case 0:
			if zone != "" {
				d.fail("record %d: a zone without an IP", i)
			}
		case 4:
			r.ClientIP = netip.AddrFrom4([4]byte(d.bytes(4)))
			if zone != "" {
				d.fail("record %d: a zone on an IPv4 address", i)
			}
		case 16:
			r.ClientIP = netip.AddrFrom16([16]byte(d.bytes(16))).WithZone(zone)
		default:
			d.fail("record %d: client IP of %d bytes", i, l)
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the last record", len(d.b))
	}
	if d.err != nil {
		return nil
	}
	return out
}

// decoder reads the binary encoding; after the first error every read
// returns zero values (and bytes(n) n zero bytes) and err keeps the error.
type decoder struct {
	b   []byte
	err error
	pad [16]byte
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("binary traffic batch: "+format, args...)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next n (≤ 16) bytes.
func (d *decoder) bytes(n int) []byte {
	if len(d.b) < n {
		d.fail("truncated")
		return d.pad[:n]
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string {
	l := d.uvarint()
	if l > uint64(len(d.b)) {
		d.fail("a string of %d bytes with %d left", l, len(d.b))
		return ""
	}
	s := string(d.b[:l])
	d.b = d.b[l:]
	return s
}

// count reads a count of items of at least min bytes each, refusing one
// that the rest of the input cannot hold.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail("%d items cannot fit in %d bytes", n, len(d.b))
		return 0
	}
	return int(n)
}
