package edgeapi_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/traffic"
)

func gzipJSON(t *testing.T, v any) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(v); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// trafficEnv is a control plane whose dev account subscribes to
// http_request_complete.v0 with a file destination.
func trafficEnv(t *testing.T) *cptest.Env {
	t.Helper()
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{EdgeSecret: testEdgeSecret, TrafficEvents: true})
	acct := e.Dev.AccountID
	actor := store.Actor{AccountID: acct, PrincipalID: "system"}
	d, err := e.Store.CreateEventDestination(cptest.Ctx(t), actor, acct, store.EventDestinationCreate{Format: "JSON", Target: json.RawMessage(`{"file":{"path":"x"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateEventSubscription(cptest.Ctx(t), actor, acct, store.EventSubscriptionCreate{
		Sources: []store.EventSource{{Type: traffic.HTTPRequestComplete}}, DestinationIDs: []string{d.ID}}); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEdgeTraffic: POST /edge/v1/traffic needs the edge secret, takes gzip
// JSON, answers with the wants and writes the wanted records once; a
// malformed or oversized batch is refused and writes nothing.
func TestEdgeTraffic(t *testing.T) {
	e := trafficEnv(t)
	acct := e.Dev.AccountID
	batch := traffic.Batch{EdgeID: "edge_us", Boot: "b", Records: []traffic.Record{{Type: traffic.HTTPRequestComplete, AccountID: acct, Status: 200}}}
	gz := []string{"Content-Encoding", "gzip"}

	cptest.WantError(t, e.Call(http.MethodPost, "/edge/v1/traffic", "", gzipJSON(t, batch), gz...), http.StatusUnauthorized, string(codes.EdgeAuth))
	cptest.WantError(t, e.Call(http.MethodPost, "/edge/v1/traffic", testEdgeSecret, "not gzip", gz...), http.StatusBadRequest, string(codes.EdgeBadRequest))
	bad := batch
	bad.Records = []traffic.Record{{Type: "api_key_created.v0", AccountID: acct}}
	cptest.WantError(t, e.Call(http.MethodPost, "/edge/v1/traffic", testEdgeSecret, gzipJSON(t, bad), gz...), http.StatusBadRequest, string(codes.EdgeBadRequest))
	big := `{"edge_id":"` + strings.Repeat("x", 9<<20) + `"}`
	cptest.WantError(t, e.Call(http.MethodPost, "/edge/v1/traffic", testEdgeSecret, big), http.StatusRequestEntityTooLarge, string(codes.EdgeBadRequest))

	for i := range 2 { // the second time a retry
		r := e.Call(http.MethodPost, "/edge/v1/traffic", testEdgeSecret, gzipJSON(t, batch), gz...)
		var ans traffic.Answer
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &ans) != nil || ans.Accepted != 1 ||
			len(ans.Wants[acct]) != 1 || ans.Wants[acct][0] != traffic.HTTPRequestComplete {
			t.Fatalf("batch %d: %d %s", i, r.Status, r.Body)
		}
	}
	if n, err := e.Store.TrafficRows(cptest.Ctx(t), acct); err != nil || n != 1 {
		t.Fatalf("traffic rows %d (%v), want 1", n, err)
	}
}

// TestEdgeTrafficBinary: every answer lists the binary encoding; a batch
// in it is written as its JSON twin would be (the same event IDs, so a
// JSON retry of a binary batch is a duplicate); a malformed one is refused
// with 400 and writes nothing.
func TestEdgeTrafficBinary(t *testing.T) {
	e := trafficEnv(t)
	acct := e.Dev.AccountID
	now := time.Now().UTC()
	batch := traffic.Batch{EdgeID: "edge_us", Boot: "b", FirstSeq: 7, Records: []traffic.Record{
		{Type: traffic.HTTPRequestComplete, Start: now, AccountID: acct, Status: 200, Path: "/a"},
		{Type: traffic.HTTPRequestComplete, Start: now, AccountID: acct, Status: 404, Path: "/b"},
		{Type: traffic.HTTPRequestComplete, Start: now, AccountID: "acct_other", Status: 200}}}
	data, err := batch.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	bin := []string{"Content-Type", traffic.BinaryMediaType}

	cptest.WantError(t, e.Call(http.MethodPost, "/edge/v1/traffic", testEdgeSecret, string(data[:len(data)-2]), bin...), http.StatusBadRequest, string(codes.EdgeBadRequest))
	cptest.WantError(t, e.Call(http.MethodPost, "/edge/v1/traffic", testEdgeSecret, gzipJSON(t, batch), bin...), http.StatusBadRequest, string(codes.EdgeBadRequest))
	if n, err := e.Store.TrafficRows(cptest.Ctx(t), acct); err != nil || n != 0 {
		t.Fatalf("traffic rows %d (%v) after refused batches, want 0", n, err)
	}
	post := func(body string, headers ...string) traffic.Answer {
		t.Helper()
		r := e.Call(http.MethodPost, "/edge/v1/traffic", testEdgeSecret, body, headers...)
		var ans traffic.Answer
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &ans) != nil {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		if len(ans.Encodings) != 1 || ans.Encodings[0] != traffic.BinaryEncoding {
			t.Fatalf("encodings %v, want [%s]", ans.Encodings, traffic.BinaryEncoding)
		}
		return ans
	}
	if ans := post(string(data), bin...); ans.Accepted != 2 {
		t.Fatalf("binary batch: accepted %d, want 2", ans.Accepted)
	}
	post(gzipJSON(t, batch), "Content-Encoding", "gzip") // the same batch as JSON: duplicates
	if n, err := e.Store.TrafficRows(cptest.Ctx(t), acct); err != nil || n != 2 {
		t.Fatalf("traffic rows %d (%v), want 2", n, err)
	}
}
