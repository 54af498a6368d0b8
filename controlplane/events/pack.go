package events

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/traffic"
)

// Packed traffic rows (docs/events.md#traffic-events). IngestTraffic
// writes the records of one edge batch that one account wants, of one
// type, as one outbox row (store.TrafficEvent with Packed): one row per
// batch and account instead of one per request, which is what lets an
// edge's traffic enter SQLite at a small fraction of the requests' cost
// (BenchmarkIngestTraffic). The deliverer expands a row into its events
// when it reads them (expandOutbox); each event's ID, time and JSON are
// exactly what a row of one event would have held.
//
//	pack = version(1) run(8 bytes) uvarint(n)
//	       n × uvarint(seq − previous seq; the first from 0)
//	       n × record (traffic.RecordEncoder's encoding, one stream)
//
// run is the hash of the edge and its boot that starts every event ID of
// that run (TrafficEventID), seq each record's sequence number in it.
const packVersion = 1

// runOf returns the run hash of an edge's run: the first 8 bytes of
// SHA-256(edgeID, 0, boot).
func runOf(edgeID, boot string) [8]byte {
	h := sha256.New()
	h.Write([]byte(edgeID))
	h.Write([]byte{0})
	h.Write([]byte(boot))
	var run [8]byte
	copy(run[:], h.Sum(nil))
	return run
}

// eventID is the ID of the seq-th record of run: "ev_t", the run in 16 hex
// digits, seq in 16 hex digits.
func eventID(run [8]byte, seq uint64) string {
	var b [16]byte
	copy(b[:8], run[:])
	binary.BigEndian.PutUint64(b[8:], seq)
	var out [4 + 32]byte
	copy(out[:], "ev_t")
	hex.Encode(out[4:], b[:])
	return string(out[:])
}

// packer builds the packed row of one account and type.
type packer struct {
	accountID, typ string
	first          uint64 // the first record's sequence number
	seqs           []byte // the seq deltas
	recs           []byte // the records
	enc            traffic.RecordEncoder
	prevSeq        uint64
	earliest       time.Time // of the records' ends
}

// add appends the record with sequence number seq (greater than the
// previous one's) that ends at end. Errors: traffic.ErrBinaryTime.
func (p *packer) add(seq uint64, end time.Time, r *traffic.Record) error {
	recs, err := p.enc.Append(p.recs, r)
	if err != nil {
		return err
	}
	p.recs = recs
	if p.enc.Count() == 1 {
		p.first, p.earliest = seq, end
	} else if end.Before(p.earliest) {
		p.earliest = end
	}
	p.seqs = binary.AppendUvarint(p.seqs, seq-p.prevSeq)
	p.prevSeq = seq
	return nil
}

// row returns the outbox row of run's packed records.
func (p *packer) row(run [8]byte) store.TrafficEvent {
	n := p.enc.Count()
	b := make([]byte, 0, 1+8+binary.MaxVarintLen64+len(p.seqs)+len(p.recs))
	b = append(b, packVersion)
	b = append(b, run[:]...)
	b = binary.AppendUvarint(b, uint64(n))
	b = append(b, p.seqs...)
	b = append(b, p.recs...)
	return store.TrafficEvent{ID: eventID(run, p.first), AccountID: p.accountID, Type: p.typ, Packed: b, Count: n, At: p.earliest}
}

// unpack decodes a packed row into its run, sequence numbers and records.
// Errors describe a malformed pack.
func unpack(packed []byte) (run [8]byte, seqs []uint64, recs []traffic.Record, err error) {
	if len(packed) < 1+8+1 || packed[0] != packVersion {
		return run, nil, nil, errors.New("not a packed traffic row (version 1)")
	}
	copy(run[:], packed[1:9])
	b := packed[9:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > store.MaxPackedEvents || n > uint64(len(b)) {
		return run, nil, nil, fmt.Errorf("a packed traffic row claims %d events in %d bytes", n, len(b))
	}
	b = b[k:]
	seqs = make([]uint64, n)
	var seq uint64
	for i := range seqs {
		d, k := binary.Uvarint(b)
		if k <= 0 || (i > 0 && d == 0) || seq+d < seq {
			return run, nil, nil, fmt.Errorf("packed traffic row: bad sequence number %d", i)
		}
		seq += d
		seqs[i], b = seq, b[k:]
	}
	bt := traffic.Batch{Encoded: b, Count: int(n)}
	if err := bt.DecodeRecords(); err != nil {
		return run, nil, nil, fmt.Errorf("packed traffic row: %w", err)
	}
	return run, seqs, bt.Records, nil
}

// recordEnd is the end of a record's request or connection: its event's
// time.
func recordEnd(r *traffic.Record) time.Time {
	return r.Start.Add(time.Duration(r.Duration * float64(time.Second))).UTC()
}

// expandOutbox turns the outbox rows ReadOutbox returned after position
// (afterRev, afterIdx) into up to limit events, oldest first: a packed row
// becomes its events after the position, each with its own position, ID,
// time and JSON payload; other rows are events already. A packed row that
// cannot be decoded becomes one event without a payload at the row's last
// position, which rendering skips (logged), so delivery moves past it.
func expandOutbox(rows []store.OutboxEvent, afterRev uint64, afterIdx, limit int) []store.OutboxEvent {
	out := make([]store.OutboxEvent, 0, min(limit, 1024))
	for _, row := range rows {
		if len(out) == limit {
			break
		}
		if row.Packed == nil {
			out = append(out, row)
			continue
		}
		run, seqs, recs, err := unpack(row.Packed)
		if err != nil || len(recs) != row.Count {
			bad := row
			bad.Idx, bad.Packed, bad.Payload, bad.Count = row.Idx+row.Count-1, nil, nil, 1
			out = append(out, bad)
			continue
		}
		for k := range recs {
			if len(out) == limit {
				break
			}
			idx := row.Idx + k
			if row.Revision == afterRev && idx <= afterIdx {
				continue
			}
			id := eventID(run, seqs[k])
			end := recordEnd(&recs[k])
			body, err := appendTrafficPayload(nil, id, end, &recs[k])
			if err != nil {
				body = nil // rendering skips it (logged)
			}
			out = append(out, store.OutboxEvent{Revision: row.Revision, Idx: idx, ID: id, AccountID: row.AccountID,
				Source: row.Source, Type: row.Type, Payload: body, Count: 1, CreatedAt: end})
		}
	}
	return out
}
