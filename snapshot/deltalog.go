package snapshot

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The delta log is how an edge persists deltas between two whole snapshots:
// an append-only sequence of records, each
//
//	length  uint32, big endian: the payload's size in bytes
//	crc     uint32, big endian: CRC-32C (Castagnoli) of the payload
//	payload a Delta as JSON
//
// A crash may leave a torn last record (short, or with a CRC that does not
// match); ReadDeltaLog stops there and reports how far the log is good, so
// that the writer truncates the tail before appending again.

// maxDeltaRecord bounds one record's payload, so that a corrupt length
// never makes the reader allocate more.
const maxDeltaRecord = 1 << 30

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendDeltaRecord writes d to w as one delta-log record.
func AppendDeltaRecord(w io.Writer, d *Delta) error {
	payload, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding delta %d→%d: %w", d.From, d.Revision, err)
	}
	if len(payload) > maxDeltaRecord {
		return fmt.Errorf("delta %d→%d is %d bytes, over the log's limit of %d", d.From, d.Revision, len(payload), maxDeltaRecord)
	}
	rec := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint32(rec[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(rec[4:8], crc32.Checksum(payload, castagnoli))
	_, err = w.Write(append(rec, payload...))
	return err
}

// ReadDeltaLog calls fn with each record of the delta log in r, in order,
// and returns the offset just past the last whole, intact record. It stops
// without error at a torn or corrupt record (a crash while appending) and
// at the end of r; it returns an error only when reading fails or fn does.
// Unknown fields in a record are ignored.
func ReadDeltaLog(r io.Reader, fn func(*Delta) error) (good int64, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return good, nil
			}
			return good, fmt.Errorf("reading delta log: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		if n > maxDeltaRecord {
			return good, nil // a corrupt length: the tail is torn
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return good, nil
			}
			return good, fmt.Errorf("reading delta log: %w", err)
		}
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(hdr[4:8]) {
			return good, nil
		}
		var d Delta
		if err := json.Unmarshal(payload, &d); err != nil {
			return good, nil // intact framing but no delta: treat as torn
		}
		if err := fn(&d); err != nil {
			return good, err
		}
		good += 8 + int64(n)
	}
}
