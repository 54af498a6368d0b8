package agent

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/tunnel"
)

func TestBindOptsDecodeAtEdge(t *testing.T) {
	spec, err := config.Endpoint{
		Name: "web", URL: "https://app.example.com", Upstream: "8080", MinTLS: "1.3", HSTS: "max-age=600;includesubdomains",
		CIDRAllow: []string{"10.1.2.3/8"}, CIDRDeny: []string{"10.9.9.9"}, BasicAuth: []string{"alice:s3cret:with:colons"},
	}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bindOpts(spec)
	if err != nil {
		t.Fatal(err)
	}
	o, err := tunnel.DecodeHTTPOptions(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Unsupported) != 0 {
		t.Fatalf("edge sees unsupported options %v in %s", o.Unsupported, raw)
	}
	if o.URL != "https://app.example.com" || o.MinTLSVersion != "1.3" || o.HSTS != "max-age=600; includeSubDomains" {
		t.Fatalf("URL %q MinTLSVersion %q HSTS %q", o.URL, o.MinTLSVersion, o.HSTS)
	}
	wantIPR := &tunnel.IPRestriction{AllowCIDRs: []string{"10.0.0.0/8"}, DenyCIDRs: []string{"10.9.9.9/32"}}
	if !reflect.DeepEqual(o.IPRestriction, wantIPR) {
		t.Fatalf("IPRestriction = %+v, want %+v", o.IPRestriction, wantIPR)
	}
	if o.BasicAuth == nil || len(o.BasicAuth.Credentials) != 1 ||
		o.BasicAuth.Credentials[0].Username != "alice" || o.BasicAuth.Credentials[0].CleartextPassword.Reveal() != "s3cret:with:colons" {
		t.Fatalf("BasicAuth = %+v", o.BasicAuth)
	}

	tcp, _ := config.Endpoint{Name: "db", URL: "tcp://1.tcp.example.com:20002", Upstream: "5432"}.Validate()
	raw, _ = bindOpts(tcp)
	to, err := tunnel.DecodeTCPOptions(raw)
	if err != nil || to.URL != "tcp://1.tcp.example.com:20002" || len(to.Unsupported) != 0 || to.IPRestriction != nil {
		t.Fatalf("tcp opts %s → %+v, %v", raw, to, err)
	}
	tlsSpec, _ := config.Endpoint{Name: "t", Proto: "tls", Upstream: "443", MinTLS: "1.2"}.Validate()
	raw, _ = bindOpts(tlsSpec)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 || m["MinTLSVersion"] != "1.2" {
		t.Fatalf("tls opts %s: want only MinTLSVersion", raw)
	}
}
