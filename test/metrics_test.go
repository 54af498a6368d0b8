package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tollgate/tollgate/traffic"
)

// metricsScrape is one parsed scrape of /metrics.
type metricsScrape map[string]*dto.MetricFamily

// scrape GETs http://addr/metrics and parses it with Prometheus's own
// text-format parser.
func scrape(t testing.TB, addr string) metricsScrape {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scraping %s: status %d", addr, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the scrape of %s: %v", addr, err)
	}
	return fams
}

// value returns the counter or gauge value of the series of name whose
// labels include labels ("k", "v", ...); missing is a failure.
func (s metricsScrape) value(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	f, ok := s[name]
	if !ok {
		t.Fatalf("metric %s is not exported", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("metric %s%v has no such series", name, labels)
	return 0
}

// healthStatus GETs http://addr/path and returns the status and body.
func healthStatus(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReadyz polls /readyz at addr until ok accepts the answer, for up to
// 30 s.
func waitReadyz(t testing.TB, addr string, ok func(code int, body string) bool, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := healthStatus(t, addr, "/readyz")
		if ok(code, body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %q, want %s", code, body, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readAccessLog reads the JSON lines of path.
func readAccessLog(t testing.TB, path string) []traffic.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []traffic.Record
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var r traffic.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("access log line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// TestMetricsAndAccessLog sends known traffic through `tollgated dev` and
// checks the scrape of /metrics and the access log against it: requests
// by status class, a 403 of the endpoint's IP policy as a refusal, bytes
// in both directions, a TCP endpoint's connection; one access log line
// per request and connection with the record's fields.
func TestMetricsAndAccessLog(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "access.log")
	dev := startDev(t, "", "--metrics-addr", "127.0.0.1:0", "--access-log", logPath)
	ma := dev.ingress(t).MetricsAddr
	if ma == "" {
		t.Fatal("dev-ingress.json has no metrics_addr")
	}
	if code, body := healthStatus(t, ma, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	waitReadyz(t, ma, func(code int, _ string) bool { return code == 200 }, "200")

	up := echoUpstream(t)
	_, u := dev.agent(t, "http", upstreamPort(up), "--url", "https://metrics."+dev.info.BaseDomain)
	_, denied := dev.agent(t, "http", upstreamPort(up), "--url", "https://denied."+dev.info.BaseDomain,
		"--cidr-allow", "10.0.0.0/8")
	tcpUp := startTCPEcho(t, false)
	_, tcpURL := dev.agent(t, "tcp", tcpUp.port())

	before := scrape(t, ma)
	class := func(s metricsScrape, c string) float64 {
		return s.value(t, "tollgate_edge_requests_total", "endpoint_kind", "https", "status_class", c)
	}

	const n2xx, bodySize = 7, 1000
	var wantIn float64
	for i := range n2xx {
		c := dev.client(i%2 == 1) // HTTP/1.1 and HTTP/2
		if i < 3 {
			resp, err := c.Post(u+"/sum", "application/octet-stream", strings.NewReader(strings.Repeat("x", bodySize)))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(string(b), fmt.Sprint(bodySize)+" ") {
				t.Fatalf("POST /sum: %d %q", resp.StatusCode, b)
			}
			wantIn += bodySize
			continue
		}
		if resp, _ := get(t, c, u+"/hello"); resp.StatusCode != 200 {
			t.Fatalf("GET /hello: %d", resp.StatusCode)
		}
	}
	if resp, _ := get(t, dev.client(false), u+"/no-such-path"); resp.StatusCode != 404 {
		t.Fatalf("GET /no-such-path: %d", resp.StatusCode)
	}
	if resp, _ := get(t, dev.client(false), denied+"/hello"); resp.StatusCode != 403 {
		t.Fatalf("GET from outside the endpoint's CIDRs: %d, want 403", resp.StatusCode)
	}
	tcpAddr := tcpAddrOf(t, tcpURL)
	const tcpSize = 100 << 10
	checkEchoTransfer(t, tcpAddr, tcpSize)

	// The edge counts a request once its response ended, and a TCP
	// connection once both directions closed: wait for the counters.
	var after metricsScrape
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = scrape(t, ma)
		if after.value(t, "tollgate_edge_connections_total", "endpoint_kind", "tcp")-before.value(t, "tollgate_edge_connections_total", "endpoint_kind", "tcp") >= 1 &&
			after.value(t, "tollgate_edge_connections_open", "endpoint_kind", "tcp") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the TCP connection was not counted as closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	delta := func(name string, labels ...string) float64 {
		return after.value(t, name, labels...) - before.value(t, name, labels...)
	}
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"2xx requests", class(after, "2xx") - class(before, "2xx"), n2xx},
		{"4xx requests (404 of the upstream, 403 of the IP policy)", class(after, "4xx") - class(before, "4xx"), 2},
		{"5xx requests", class(after, "5xx") - class(before, "5xx"), 0},
		{"refusals by the endpoint's IP policy", delta("tollgate_edge_refusals_total", "reason", "ip_policy"), 1},
		{"refusals by basic auth", delta("tollgate_edge_refusals_total", "reason", "basic_auth"), 0},
		{"request bodies in", delta("tollgate_edge_bytes_total", "endpoint_kind", "https", "direction", "in"), wantIn},
		{"TCP bytes in", delta("tollgate_edge_bytes_total", "endpoint_kind", "tcp", "direction", "in"), tcpSize},
		{"TCP bytes out", delta("tollgate_edge_bytes_total", "endpoint_kind", "tcp", "direction", "out"), tcpSize},
		{"request durations observed", delta("tollgate_edge_request_duration_seconds", "endpoint_kind", "https"), n2xx + 2},
		{"agent sessions over TCP", after.value(t, "tollgate_edge_agent_sessions", "region", "us", "transport", "tcp"), 3},
		{"https endpoints", after.value(t, "tollgate_edge_endpoints", "region", "us", "endpoint_kind", "https"), 2},
		{"tcp endpoints", after.value(t, "tollgate_edge_endpoints", "region", "us", "endpoint_kind", "tcp"), 1},
		{"ready", after.value(t, "tollgate_edge_ready"), 1},
		{"access log records dropped", after.value(t, "tollgate_edge_access_log_records_dropped_total"), 0},
		{"responses waiting for a client (all were read)", after.value(t, "tollgate_edge_responses_waiting_for_client"), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if out := delta("tollgate_edge_bytes_total", "endpoint_kind", "https", "direction", "out"); out <= 0 {
		t.Errorf("response bytes out: %v", out)
	}
	if rev := after.value(t, "tollgate_edge_snapshot_revision"); rev < 1 || rev != after.value(t, "tollgate_control_snapshot_revision") {
		t.Errorf("edge revision %v, control plane revision %v: want equal and > 0", rev, after.value(t, "tollgate_control_snapshot_revision"))
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "tollgate_edge_certificates",
		"tollgate_events_delivery_lag_seconds", "tollgate_edge_snapshot_lag_seconds"} {
		if _, ok := after[name]; !ok {
			t.Errorf("%s is not exported", name)
		}
	}
	// No series carries a host name, address or ID as a label value.
	for name, f := range after {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if v := l.GetValue(); strings.Contains(v, "localhost") || strings.Contains(v, "127.0.0.1") ||
					regexp.MustCompile(`^(ep|ts|acct)_`).MatchString(v) {
					t.Errorf("%s has an unbounded label value %s=%q", name, l.GetName(), v)
				}
			}
		}
	}

	t.Run("dashboard", func(t *testing.T) { checkDashboard(t, after) })

	// The access log: one line per request and per TCP connection.
	var recs []traffic.Record
	deadline = time.Now().Add(10 * time.Second)
	for {
		recs = readAccessLog(t, logPath)
		if len(recs) >= n2xx+3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	byHost := map[string][]traffic.Record{}
	for _, r := range recs {
		byHost[r.Host] = append(byHost[r.Host], r)
	}
	host := "metrics." + dev.info.BaseDomain
	if got := len(byHost[host]); got != n2xx+1 {
		t.Fatalf("access log: %d lines for %s, want %d:\n%v", got, host, n2xx+1, recs)
	}
	var sawIn int64
	for _, r := range byHost[host] {
		if r.Type != traffic.HTTPRequestComplete || r.Region != "us" || r.ClientIP.String() != "127.0.0.1" ||
			!strings.HasPrefix(r.EndpointID, "ep_") || !strings.HasPrefix(r.SessionID, "ts_") || !strings.HasPrefix(r.AccountID, "acct_") ||
			r.TLSVersion != "1.3" || r.Method == "" || r.Path == "" || r.Status == 0 || r.IPPolicy != traffic.IPPolicyNone ||
			r.BytesOut <= 0 || r.Start.IsZero() || r.Duration <= 0 || r.EndpointKind != "https" {
			t.Errorf("access log record lacks a field: %+v", r)
		}
		sawIn += r.BytesIn
	}
	if float64(sawIn) != wantIn {
		t.Errorf("access log bytes_in sum %d, want %v", sawIn, wantIn)
	}
	d := byHost["denied."+dev.info.BaseDomain]
	if len(d) != 1 || d[0].Status != 403 || d[0].IPPolicy != traffic.IPPolicyDeny || d[0].Code != "TG_3205" {
		t.Errorf("access log of the refused request: %+v", d)
	}
	var tcpRecs []traffic.Record
	for _, r := range recs {
		if r.Type == traffic.TCPConnectionClosed {
			tcpRecs = append(tcpRecs, r)
		}
	}
	if len(tcpRecs) != 1 || tcpRecs[0].BytesIn != tcpSize || tcpRecs[0].BytesOut != tcpSize || tcpRecs[0].EndpointKind != "tcp" ||
		!strings.HasPrefix(tcpRecs[0].SessionID, "ts_") {
		t.Errorf("access log of the TCP connection: %+v", tcpRecs)
	}
}

// TestReadyzBeforeSnapshot starts an edge while its control plane is down
// and has never sent it a snapshot: /readyz is 503 and says why, /healthz
// is 200; once the control plane is back, /readyz is 200.
func TestReadyzBeforeSnapshot(t *testing.T) {
	c := newCluster(t)
	c.killControl()
	e := c.launchEdge("us", "us", "127.0.0.1", "--cert-store", "files", "--metrics-addr", "127.0.0.1:0").ready(t)
	ma := e.info.MetricsAddr
	if ma == "" {
		t.Fatal("edge.json has no metrics_addr")
	}
	// The banner comes just before Serve starts: "listeners are not
	// serving yet" may come first.
	waitReadyz(t, ma, func(code int, body string) bool {
		return code == http.StatusServiceUnavailable && strings.Contains(body, "no snapshot")
	}, "503 naming the snapshot")
	if code, _ := healthStatus(t, ma, "/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	s := scrape(t, ma)
	if v := s.value(t, "tollgate_edge_ready"); v != 0 {
		t.Errorf("tollgate_edge_ready = %v before the first snapshot", v)
	}
	if v := s.value(t, "tollgate_edge_snapshot_feed_up"); v != 0 {
		t.Errorf("tollgate_edge_snapshot_feed_up = %v with the control plane down", v)
	}

	c.restartControl()
	waitReadyz(t, ma, func(code int, _ string) bool { return code == 200 }, "200 once the control plane is back")
	s = scrape(t, ma)
	if s.value(t, "tollgate_edge_snapshot_revision") < 1 || s.value(t, "tollgate_edge_snapshot_lag_seconds") != 0 {
		t.Errorf("after the first snapshot: revision %v, lag %v", s.value(t, "tollgate_edge_snapshot_revision"),
			s.value(t, "tollgate_edge_snapshot_lag_seconds"))
	}
}

// TestAccessLogDropsWhenWriterBlocked writes the access log into a FIFO
// that nobody reads: the writer blocks once the pipe is full, yet every
// request is answered, and the records that found no room are counted as
// dropped — every record is written, dropped or still buffered.
func TestAccessLogDropsWhenWriterBlocked(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "access.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Held open read-write, never read: the edge's open does not wait for
	// a reader, and its writes block once the pipe holds 64 KiB.
	hold, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Close() })
	const buffer = 16
	dev := startDev(t, "", "--metrics-addr", "127.0.0.1:0", "--access-log", fifo,
		"--access-log-buffer", fmt.Sprint(buffer))
	ma := dev.ingress(t).MetricsAddr
	up := echoUpstream(t)
	_, u := dev.agent(t, "http", upstreamPort(up), "--url", "https://blocked."+dev.info.BaseDomain)

	// Each record is ~600 bytes: 2000 of them are far more than the pipe,
	// the writer's 32 KiB buffer and the queue of 16 hold.
	const n, workers = 2000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dev.client(w%2 == 0)
			for range n / workers {
				resp, err := c.Get(u + "/hello")
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a request failed while the access log was blocked: %v", err)
	}
	s := scrape(t, ma)
	if got := s.value(t, "tollgate_edge_requests_total", "endpoint_kind", "https", "status_class", "2xx"); got != n {
		t.Fatalf("2xx requests counted: %v, want %d", got, n)
	}
	written := s.value(t, "tollgate_edge_access_log_records_written_total")
	dropped := s.value(t, "tollgate_edge_access_log_records_dropped_total")
	buffered := s.value(t, "tollgate_edge_access_log_records_buffered")
	if dropped < n/2 {
		t.Errorf("dropped %v of %d records with the writer blocked; want most of them", dropped, n)
	}
	// One record may be in the writer's hands, blocked mid-write.
	if sum := written + dropped + buffered; sum != n && sum != n-1 {
		t.Errorf("written %v + dropped %v + buffered %v = %v, want %d (or one less)", written, dropped, buffered, sum, n)
	}
	if buffered > buffer {
		t.Errorf("buffered %v records, more than the buffer of %d", buffered, buffer)
	}
}

// checkDashboard fails for every metric the Grafana dashboard
// (docs/grafana/tollgate.json) queries that the scrape s of a real
// `tollgated dev` does not export. Histogram series (_bucket, _sum,
// _count) count as their family.
func checkDashboard(t *testing.T, s metricsScrape) {
	b, err := os.ReadFile("../docs/grafana/tollgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/grafana/tollgate.json: %v", err)
	}
	name := regexp.MustCompile(`\b(?:tollgate|go|process)_[a-z0-9_]+`)
	seen := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				seen++
				if _, ok := s[m]; ok {
					continue
				}
				base := m
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suf)
				}
				if f, ok := s[base]; ok && f.GetType() == dto.MetricType_HISTOGRAM {
					continue
				}
				t.Errorf("panel %q queries %s, which tollgated does not export", p.Title, m)
			}
		}
	}
	if seen < 20 {
		t.Errorf("the dashboard queries only %d metric names", seen)
	}
}
