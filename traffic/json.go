package traffic

import (
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/internal/jsonenc"
)

// Records are encoded on the edge's hot path: every request of an account
// that subscribes to traffic events becomes a record, and the edge ships
// them as JSON. encoding/json finds a Record's fields by reflection; these
// encoders write the same bytes directly (FuzzRecordJSON and
// FuzzBatchJSON compare them with json.Marshal byte for byte), about a
// fifth of the CPU per record (BenchmarkBatchJSON).

// AppendJSON appends the JSON encoding of r to b: exactly what
// json.Marshal(r) returns. Errors are json.Marshal's: a Start whose year
// is outside [0,9999] or whose zone offset is 24 hours or more, and an
// infinite or NaN Duration.
func (r *Record) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"event_type":`...)
	b = jsonenc.AppendString(b, r.Type)
	b = append(b, `,"timestamp":`...)
	if y := r.Start.Year(); y >= 0 && y <= 9999 && isUTC(r.Start) {
		// time.Time.MarshalJSON without its allocation: RFC 3339 with
		// nanoseconds, which it checks only for the year and the offset.
		b = append(b, '"')
		b = r.Start.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	} else {
		ts, err := r.Start.MarshalJSON()
		if err != nil {
			return b, err
		}
		b = append(b, ts...)
	}
	b = append(b, `,"duration_seconds":`...)
	var err error
	if b, err = appendFloat(b, r.Duration); err != nil {
		return b, err
	}
	b = append(b, `,"region":`...)
	b = jsonenc.AppendString(b, r.Region)
	b = append(b, `,"edge_id":`...)
	b = jsonenc.AppendString(b, r.EdgeID)
	b = appendOmitEmpty(b, `,"account_id":`, r.AccountID)
	b = appendOmitEmpty(b, `,"endpoint_id":`, r.EndpointID)
	b = appendOmitEmpty(b, `,"agent_session_id":`, r.SessionID)
	b = append(b, `,"endpoint_kind":`...)
	b = jsonenc.AppendString(b, r.EndpointKind)
	b = append(b, `,"client_ip":`...)
	if r.ClientIP.IsValid() { // netip.Addr.MarshalText: "" for the zero Addr
		var ip [64]byte
		b = jsonenc.AppendString(b, string(r.ClientIP.AppendTo(ip[:0])))
	} else {
		b = append(b, `""`...)
	}
	b = appendOmitEmpty(b, `,"tls_version":`, r.TLSVersion)
	b = appendOmitEmpty(b, `,"host":`, r.Host)
	b = appendOmitEmpty(b, `,"method":`, r.Method)
	b = appendOmitEmpty(b, `,"path":`, r.Path)
	b = appendOmitEmpty(b, `,"proto":`, r.Proto)
	if r.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
	}
	b = appendOmitEmpty(b, `,"error_code":`, r.Code)
	b = append(b, `,"ip_policy_decision":`...)
	b = jsonenc.AppendString(b, r.IPPolicy)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, r.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	return append(b, '}'), nil
}

// AppendJSON appends the JSON encoding of bt to b: exactly what
// json.Marshal(bt) returns (a nil Records is null, an empty Dropped is
// left out). Errors are those of Record.AppendJSON.
func (bt *Batch) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"edge_id":`...)
	b = jsonenc.AppendString(b, bt.EdgeID)
	b = append(b, `,"boot":`...)
	b = jsonenc.AppendString(b, bt.Boot)
	b = append(b, `,"first_seq":`...)
	b = strconv.AppendUint(b, bt.FirstSeq, 10)
	b = append(b, `,"records":`...)
	if bt.Records == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range bt.Records {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = bt.Records[i].AppendJSON(b); err != nil {
				return b, err
			}
		}
		b = append(b, ']')
	}
	if len(bt.Dropped) > 0 {
		b = append(b, `,"dropped":[`...)
		for i, d := range bt.Dropped {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"account_id":`...)
			b = jsonenc.AppendString(b, d.AccountID)
			b = append(b, `,"event_type":`...)
			b = jsonenc.AppendString(b, d.Type)
			b = append(b, `,"count":`...)
			b = strconv.AppendInt(b, d.Count, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

func isUTC(t time.Time) bool {
	_, offset := t.Zone()
	return offset == 0
}

func appendOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return jsonenc.AppendString(append(b, key...), s)
}

// appendFloat is encoding/json's encoding of a float64: the shortest
// decimal that round-trips, in exponent form below 1e-6 and from 1e21
// (with a one-digit negative exponent written without its leading zero).
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' { // e-09 → e-9
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}
