package agent

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestOpsHandler scrapes the agent's /metrics through the inspection API
// and checks the figures against the status it reports, and /readyz's
// answer before and after every endpoint is bound.
func TestOpsHandler(t *testing.T) {
	src := &fakeStatus{
		eps: []EndpointStatus{
			{Name: "web", Proto: "http", State: StateOnline, ConnsTotal: 5, ConnsOpen: 2, BytesIn: 10, BytesOut: 20},
			{Name: "ssh", Proto: "tcp", State: StateStarting, ConnsTotal: 1, BytesIn: 3, BytesOut: 4},
		},
		st: Status{State: SessionOnline, Region: "eu", Transport: "quic", Legs: []LegStatus{
			{Number: 0, State: SessionOnline, Region: "eu", Transport: "quic"},
			{Number: 1, State: SessionReconnecting, Region: "eu"},
		}},
	}
	srv := httptest.NewServer(newInspectHandler(src, opsHandler(src), nil))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Fatalf("%s missing", name)
		}
	next:
		for _, m := range f.Metric {
			for k, v := range labels {
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
		t.Fatalf("%s%v missing", name, labels)
		return 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tollgate_agent_sessions", map[string]string{"region": "eu", "transport": "quic"}, 1},
		{"tollgate_agent_legs", map[string]string{"state": "reconnecting"}, 1},
		{"tollgate_agent_endpoints", map[string]string{"endpoint_kind": "https", "state": "online"}, 1},
		{"tollgate_agent_connections_total", map[string]string{"endpoint_kind": "https"}, 5},
		{"tollgate_agent_connections_open", map[string]string{"endpoint_kind": "https"}, 2},
		{"tollgate_agent_bytes_total", map[string]string{"endpoint_kind": "tcp", "direction": "out"}, 4},
		{"tollgate_agent_bytes_total", map[string]string{"endpoint_kind": "tls", "direction": "in"}, 0},
	} {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("the Go runtime collector is missing")
	}

	status := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := status("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := status("/readyz"); code != 503 || !strings.Contains(body, "endpoint ssh is starting") {
		t.Errorf("/readyz with an endpoint not bound = %d %q", code, body)
	}
	src.eps[1].State = StateOnline
	if code, body := status("/readyz"); code != 200 {
		t.Errorf("/readyz = %d %q, want 200", code, body)
	}
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}
