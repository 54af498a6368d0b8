// Package traffic defines the record an edge makes of one finished public
// HTTP request or TCP/TLS connection. It is the line of the edge's access
// log (docs/observability.md#access-log) and the body of the traffic
// events http_request_complete.v0 and tcp_connection_closed.v0
// (docs/events.md), so that both carry the same fields under the same
// names.
//
// Invariants: a Record holds no secret (no header values, no credentials,
// no query-string redaction is attempted: the path is as the client sent
// it); its JSON field names are stable (a field may be added, never
// renamed); the package does no I/O.
package traffic

import (
	"net/netip"
	"strconv"
	"time"
)

// Record types: the event type each kind of record becomes.
const (
	// HTTPRequestComplete is the type of a record of one HTTP request,
	// answered by the upstream or by the edge itself.
	HTTPRequestComplete = "http_request_complete.v0"
	// TCPConnectionClosed is the type of a record of one TCP or TLS
	// endpoint connection (passed through or terminated), refused or
	// served.
	TCPConnectionClosed = "tcp_connection_closed.v0"
)

// IP policy decisions of Record.IPPolicy.
const (
	// IPPolicyAllow: the endpoint has IP rules of its own (CIDRs or IP
	// policies) and they, and the account's endpoints restrictions,
	// admitted the client.
	IPPolicyAllow = "allow"
	// IPPolicyDeny: the account's endpoints restriction or the endpoint's
	// own IP rules refused the client.
	IPPolicyDeny = "deny"
	// IPPolicyNone: the endpoint has no IP rules of its own; the
	// account's endpoints restrictions, if any, admitted the client.
	IPPolicyNone = "none"
)

// Record is one finished request or connection. Times are UTC; durations
// are in seconds; bytes count what crossed the edge for this request or
// connection (see the fields).
type Record struct {
	// Type is HTTPRequestComplete or TCPConnectionClosed.
	Type string `json:"event_type"`
	// Start is when the request head was complete (HTTP) or the
	// connection was accepted (TCP/TLS).
	Start time.Time `json:"timestamp"`
	// Duration is from Start to the end of the response or connection,
	// in seconds.
	Duration float64 `json:"duration_seconds"`
	// Region and EdgeID name the edge that served it.
	Region string `json:"region"`
	EdgeID string `json:"edge_id"`
	// AccountID, EndpointID (ep_…) and SessionID (the agent session,
	// ts_…) are "" when no endpoint was resolved (an unknown host).
	AccountID  string `json:"account_id,omitempty"`
	EndpointID string `json:"endpoint_id,omitempty"`
	SessionID  string `json:"agent_session_id,omitempty"`
	// EndpointKind is the endpoint's protocol: "https", "tls" or "tcp".
	EndpointKind string `json:"endpoint_kind"`
	// ClientIP is the TCP peer address (IPv4-mapped IPv6 folded to IPv4);
	// never a client-sent header.
	ClientIP netip.Addr `json:"client_ip"`
	// TLSVersion is the negotiated version ("1.2", "1.3"); "" for plain
	// TCP and for TLS passed through to the agent.
	TLSVersion string `json:"tls_version,omitempty"`
	// Host is the name the request or connection was routed by (SNI or
	// Host, lower case), or the TCP endpoint's host:port.
	Host string `json:"host,omitempty"`
	// HTTP only: the method, the request target as forwarded, the
	// protocol ("HTTP/1.1", "HTTP/2.0"), the final status (0 when the
	// exchange broke off before one was sent) and the TG_ code when the
	// edge answered itself.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	Proto  string `json:"proto,omitempty"`
	Status int    `json:"status,omitempty"`
	Code   string `json:"error_code,omitempty"`
	// IPPolicy is IPPolicyAllow, IPPolicyDeny or IPPolicyNone.
	IPPolicy string `json:"ip_policy_decision"`
	// BytesIn is what the client sent: for HTTP the request body, for
	// TCP/TLS every byte read from the client. BytesOut is what it was
	// sent: for HTTP the response head and body (HTTP/1.1) or body
	// (HTTP/2), for TCP/TLS every byte written to the client.
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
}

// StatusClass returns the class of an HTTP status for metric labels:
// "1xx" … "5xx", or "none" when no valid status was sent.
func StatusClass(status int) string {
	if status < 100 || status > 599 {
		return "none"
	}
	return statusClasses[status/100-1]
}

var statusClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// TLSVersionName returns "1.0" … "1.3" for a crypto/tls version
// constant, "" for 0, and the hexadecimal value for anything else.
func TLSVersionName(v uint16) string {
	switch v {
	case 0:
		return ""
	case 0x0301:
		return "1.0"
	case 0x0302:
		return "1.1"
	case 0x0303:
		return "1.2"
	case 0x0304:
		return "1.3"
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

// Batch is what an edge sends the control plane: finished records, in the
// order they were made (POST /edge/v1/traffic, docs/events.md). Boot names
// the edge process's run and FirstSeq numbers Records[0] in it (then +1
// each), so that the control plane derives the same event IDs from a
// retried batch and writes its events once. Dropped reports the records
// the edge dropped (its buffer full) since its last acknowledged batch.
type Batch struct {
	EdgeID   string   `json:"edge_id"`
	Boot     string   `json:"boot"`
	FirstSeq uint64   `json:"first_seq"`
	Records  []Record `json:"records"`
	// Encoded, when not nil, holds Count records in the binary encoding
	// (RecordEncoder) instead of Records: how an edge keeps them. JSON
	// needs Records (DecodeRecords); AppendBinary writes Encoded as is.
	Encoded []byte      `json:"-"`
	Count   int         `json:"-"`
	Dropped []DropCount `json:"dropped,omitempty"`
}

// DropCount is how many records of one account and type an edge dropped.
type DropCount struct {
	AccountID string `json:"account_id"`
	Type      string `json:"event_type"`
	Count     int64  `json:"count"`
}

// Answer is the control plane's reply to a Batch: how many records became
// events, how many were dropped because their account's outbox was full,
// and which accounts want which record types (Wants: account ID → types),
// so that the edge sends only those.
type Answer struct {
	Accepted int                 `json:"accepted"`
	Dropped  int                 `json:"dropped"`
	Wants    map[string][]string `json:"wants"`
	// Encodings lists the batch encodings the control plane decodes
	// besides JSON (BinaryEncoding); an older one sends none, and its
	// edges keep sending JSON.
	Encodings []string `json:"encodings,omitempty"`
}
