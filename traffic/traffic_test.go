package traffic

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestStatusClass(t *testing.T) {
	for status, want := range map[int]string{0: "none", 99: "none", 100: "1xx", 204: "2xx", 308: "3xx", 403: "4xx", 599: "5xx", 600: "none"} {
		if got := StatusClass(status); got != want {
			t.Errorf("StatusClass(%d) = %q, want %q", status, got, want)
		}
	}
}

func TestTLSVersionName(t *testing.T) {
	for v, want := range map[uint16]string{0: "", 0x0303: "1.2", 0x0304: "1.3", 0x7f00: "0x7f00"} {
		if got := TLSVersionName(v); got != want {
			t.Errorf("TLSVersionName(%#x) = %q, want %q", v, got, want)
		}
	}
}

// TestRecordJSON pins the field names: the access log's readers and the
// traffic events' subscribers select them by name.
func TestRecordJSON(t *testing.T) {
	r := Record{Type: HTTPRequestComplete, Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Duration: 0.25,
		Region: "eu", EdgeID: "edge_eu", AccountID: "acct_1", EndpointID: "ep_1", SessionID: "ts_1",
		EndpointKind: "https", ClientIP: netip.MustParseAddr("192.0.2.1"), TLSVersion: "1.3", Host: "app.example.com",
		Method: "GET", Path: "/x?y=1", Proto: "HTTP/2.0", Status: 200, IPPolicy: IPPolicyNone, BytesIn: 1, BytesOut: 2}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"event_type":"http_request_complete.v0","timestamp":"2026-01-02T03:04:05Z","duration_seconds":0.25,` +
		`"region":"eu","edge_id":"edge_eu","account_id":"acct_1","endpoint_id":"ep_1","agent_session_id":"ts_1",` +
		`"endpoint_kind":"https","client_ip":"192.0.2.1","tls_version":"1.3","host":"app.example.com",` +
		`"method":"GET","path":"/x?y=1","proto":"HTTP/2.0","status":200,"ip_policy_decision":"none","bytes_in":1,"bytes_out":2}`
	if string(b) != want {
		t.Errorf("JSON:\n got %s\nwant %s", b, want)
	}
	if strings.Contains(string(b), "error_code") {
		t.Error("an empty code is left out")
	}
}
