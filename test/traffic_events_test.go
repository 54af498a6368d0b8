package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readEventLines returns the JSON lines of a file destination.
func readEventLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestTrafficEvents subscribes a JSON-lines file to http_request_complete.v0
// filtered in CEL (status >= 400 on paths under /miss) with selected fields,
// and to tcp_connection_closed.v0, then sends requests and a TCP
// connection through `tollgated dev`: exactly the matching records arrive,
// once each, with exactly the selected fields and the right values.
func TestTrafficEvents(t *testing.T) {
	fileDir := t.TempDir()
	dev := startDev(t, "", "--metrics-addr", "127.0.0.1:0", "--events-file-dir", fileDir,
		"--events-poll-interval", "200ms", "--traffic-flush-interval", "100ms", "--traffic-poll-interval", "200ms")
	base, key := dev.info.APIURL, dev.info.APIKey

	// A filter that does not type-check against the traffic fields is
	// refused, as is a field traffic events do not have.
	for _, src := range []map[string]any{
		{"type": "http_request_complete.v0", "filter": `status >= "400"`},
		{"type": "http_request_complete.v0", "filter": `object.id == "x"`},
		{"type": "http_request_complete.v0", "fields": []string{"principal.id"}},
		{"type": "bot_user_created.v0", "filter": `status >= 400`},
	} {
		if r := apiStatus(t, base, key, "POST", "/event_subscriptions", map[string]any{"sources": []any{src}}); r.status != 400 {
			t.Errorf("source %v: %v, want 400", src, r)
		}
	}

	file := api(t, base, key, "POST", "/event_destinations", map[string]any{"format": "JSON",
		"target": map[string]any{"file": map[string]any{"path": "traffic.jsonl"}}}, 201)
	fields := []string{"status", "path", "method", "host", "bytes_in"}
	api(t, base, key, "POST", "/event_subscriptions", map[string]any{
		"sources": []any{
			map[string]any{"type": "http_request_complete.v0", "filter": `status >= 400 && path.startsWith("/miss")`, "fields": fields},
			map[string]any{"type": "tcp_connection_closed.v0", "fields": []string{"bytes_in", "bytes_out", "endpoint_kind", "endpoint_id"}},
		},
		"destination_ids": []string{file["id"].(string)}}, 201)
	evPath := filepath.Join(fileDir, "traffic.jsonl")

	up := echoUpstream(t)
	_, u := dev.agent(t, "http", upstreamPort(up), "--url", "https://traffic."+dev.info.BaseDomain)
	c := dev.client(false)

	// The edge learns that the account wants traffic within a poll: send
	// probes (404s under /miss-probe) until one arrives.
	probes := 0
	poll(t, "a probe's traffic event", func() bool {
		probes++
		if resp, _ := get(t, c, fmt.Sprintf("%s/miss-probe-%d", u, probes)); resp.StatusCode != 404 {
			t.Fatalf("probe: %d", resp.StatusCode)
		}
		return len(readEventLines(t, evPath)) > 0
	})

	const nOK, nMiss, nOther404 = 12, 5, 3
	for i := range nOK {
		if resp, _ := get(t, dev.client(i%2 == 1), u+"/hello"); resp.StatusCode != 200 {
			t.Fatalf("GET /hello: %d", resp.StatusCode)
		}
	}
	for i := range nMiss {
		if resp, _ := get(t, dev.client(i%2 == 1), fmt.Sprintf("%s/miss-%d", u, i)); resp.StatusCode != 404 {
			t.Fatalf("GET /miss-%d: %d", i, resp.StatusCode)
		}
	}
	for i := range nOther404 {
		if resp, _ := get(t, c, fmt.Sprintf("%s/other-%d", u, i)); resp.StatusCode != 404 {
			t.Fatalf("GET /other-%d: %d", i, resp.StatusCode)
		}
	}
	tcpUp := startTCPEcho(t, false)
	_, tcpURL := dev.agent(t, "tcp", tcpUp.port())
	const tcpSize = 50 << 10
	checkEchoTransfer(t, tcpAddrOf(t, tcpURL), tcpSize)

	// The last request's event and the TCP connection's close mark the end.
	var evs []map[string]any
	poll(t, "the /miss and TCP events", func() bool {
		evs = readEventLines(t, evPath)
		var last, tcp bool
		for _, ev := range evs {
			last = last || ev["path"] == fmt.Sprintf("/miss-%d", nMiss-1)
			tcp = tcp || ev["event_type"] == "tcp_connection_closed.v0"
		}
		return last && tcp
	})
	ids := map[string]int{}
	var miss []string
	var tcpEvs []map[string]any
	wantHTTPKeys := []string{"account_id", "bytes_in", "event_id", "event_timestamp", "event_type", "host", "method", "path", "status"}
	for _, ev := range evs {
		ids[ev["event_id"].(string)]++
		switch ev["event_type"] {
		case "http_request_complete.v0":
			p, _ := ev["path"].(string)
			if !strings.HasPrefix(p, "/miss") || ev["status"] != float64(404) {
				t.Errorf("an event the filter should have kept out: %v", ev)
			}
			if got := keysOf(ev); !slices.Equal(got, wantHTTPKeys) {
				t.Errorf("event fields %v, want %v", got, wantHTTPKeys)
			}
			if ev["method"] != "GET" || ev["host"] != "traffic."+dev.info.BaseDomain || !strings.HasPrefix(ev["account_id"].(string), "acct_") {
				t.Errorf("event values: %v", ev)
			}
			if !strings.HasPrefix(p, "/miss-probe") {
				miss = append(miss, p)
			}
		case "tcp_connection_closed.v0":
			tcpEvs = append(tcpEvs, ev)
		default:
			t.Errorf("an event of an unsubscribed type: %v", ev)
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s arrived %d times", id, n)
		}
	}
	var want []string
	for i := range nMiss {
		want = append(want, fmt.Sprintf("/miss-%d", i))
	}
	if !slices.Equal(miss, want) {
		t.Errorf("/miss events %v, want %v in order", miss, want)
	}
	if len(tcpEvs) != 1 {
		t.Fatalf("%d tcp_connection_closed.v0 events, want 1: %v", len(tcpEvs), tcpEvs)
	}
	te := tcpEvs[0]
	if te["bytes_in"] != float64(tcpSize) || te["bytes_out"] != float64(tcpSize) || te["endpoint_kind"] != "tcp" ||
		!strings.HasPrefix(te["endpoint_id"].(string), "ep_") || te["path"] != nil {
		t.Errorf("tcp event: %v", te)
	}
	s := scrape(t, dev.ingress(t).MetricsAddr)
	if d := s.value(t, "tollgate_edge_traffic_records_dropped_total"); d != 0 {
		t.Errorf("records dropped: %v", d)
	}
	// Every request of the account was shipped (the filter applies at
	// delivery), at most the last few are still buffered.
	shipped := s.value(t, "tollgate_edge_traffic_records_shipped_total") + s.value(t, "tollgate_edge_traffic_records_buffered")
	if min := float64(nMiss + nOK + nOther404 + 1); shipped < min {
		t.Errorf("records shipped and buffered %v, want at least %v", shipped, min)
	}
}

// TestTrafficEventsControlUnreachable: an edge whose control plane is gone
// keeps answering requests; its traffic buffer fills to its bound and every
// record past it is dropped and counted — in its metrics, and, once the
// control plane is back, in the destination's status.
func TestTrafficEventsControlUnreachable(t *testing.T) {
	c := newCluster(t)
	const buffer = 40
	e := c.startEdge("us", "127.0.0.1", "--metrics-addr", "127.0.0.1:0", "--traffic-buffer", fmt.Sprint(buffer),
		"--traffic-flush-interval", "100ms", "--traffic-poll-interval", "200ms")
	hook := c.mustAPI("POST", "/event_destinations", map[string]any{"format": "JSON",
		"target": map[string]any{"webhook": map[string]any{"url": "https://hooks.invalid/hook", "secrets": []string{whsec(make([]byte, 32))}}}}, 201)
	c.mustAPI("POST", "/event_subscriptions", map[string]any{
		"sources":         []any{map[string]any{"type": "http_request_complete.v0"}},
		"destination_ids": []string{hook["id"].(string)}}, 201)
	_, tok := c.newAuthtoken(nil)
	up := echoUpstream(t)
	_, _, _, u := c.agent(tok, e.info.AgentAddr, "http", upstreamPort(up), "--url", "https://gone.tollgate.localhost")
	client := c.client(e)
	// Until the control plane acknowledged a record, the edge wants them.
	poll(t, "a shipped record", func() bool {
		if resp, _ := get(t, client, u+"/hello"); resp.StatusCode != 200 {
			t.Fatalf("GET /hello: %d", resp.StatusCode)
		}
		s := scrape(t, e.info.MetricsAddr)
		return s.value(t, "tollgate_edge_traffic_records_shipped_total") > 0
	})
	poll(t, "an empty traffic buffer", func() bool {
		return scrape(t, e.info.MetricsAddr).value(t, "tollgate_edge_traffic_records_buffered") == 0
	})
	before := scrape(t, e.info.MetricsAddr)
	c.killControl()

	const n = 200
	for i := range n {
		if resp, _ := get(t, client, fmt.Sprintf("%s/hello?i=%d", u, i)); resp.StatusCode != 200 {
			t.Fatalf("request %d with the control plane gone: %d", i, resp.StatusCode)
		}
	}
	after := scrape(t, e.info.MetricsAddr)
	dropped := after.value(t, "tollgate_edge_traffic_records_dropped_total") - before.value(t, "tollgate_edge_traffic_records_dropped_total")
	buffered := after.value(t, "tollgate_edge_traffic_records_buffered")
	if buffered != buffer || dropped != n-buffer {
		t.Errorf("buffered %v, dropped %v; want %d and %d", buffered, dropped, buffer, n-buffer)
	}
	if got := after.value(t, "tollgate_edge_requests_total", "endpoint_kind", "https", "status_class", "2xx") -
		before.value(t, "tollgate_edge_requests_total", "endpoint_kind", "https", "status_class", "2xx"); got != n {
		t.Errorf("2xx requests counted: %v, want %d", got, n)
	}

	// The control plane back: the edge reports its drops, and the
	// destination's status shows them for the account's type.
	c.restartControl()
	var drops map[string]any
	poll(t, "the edge's drops in the destination's status", func() bool {
		st := c.mustAPI("GET", "/event_destinations/"+hook["id"].(string), nil, 200)["tollgate_delivery"].(map[string]any)
		drops, _ = st["traffic_dropped"].(map[string]any)
		return len(drops) > 0
	})
	if d, _ := drops["http_request_complete.v0"].(map[string]any); d == nil || d["edge"] != float64(n-buffer) || d["outbox"] != float64(0) {
		t.Errorf("traffic_dropped %v, want {http_request_complete.v0: {edge: %d, outbox: 0}}", drops, n-buffer)
	}
}
