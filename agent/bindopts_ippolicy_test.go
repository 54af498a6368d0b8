package agent

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/tunnel"
)

// TestBindOptsIPPolicyIDs: ip_policy_ids (--ip-policy-id) travel in the
// IP restriction of every endpoint kind; a value that is not an IP policy
// ID is refused locally.
func TestBindOptsIPPolicyIDs(t *testing.T) {
	for _, proto := range []string{config.ProtoHTTP, config.ProtoTCP, config.ProtoTLS} {
		spec, err := config.Endpoint{Name: "e", Proto: proto, Upstream: "8080", IPPolicyIDs: []string{" ipp_abc ", "ipp_def"}}.Validate()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := bindOpts(spec)
		if err != nil {
			t.Fatal(err)
		}
		var ipr *tunnel.IPRestriction
		switch proto {
		case config.ProtoHTTP:
			o, err := tunnel.DecodeHTTPOptions(raw)
			if err != nil || len(o.Unsupported) > 0 {
				t.Fatalf("%s: %v %v", proto, err, o)
			}
			ipr = o.IPRestriction
		case config.ProtoTCP:
			o, err := tunnel.DecodeTCPOptions(raw)
			if err != nil || len(o.Unsupported) > 0 {
				t.Fatalf("%s: %v %v", proto, err, o)
			}
			ipr = o.IPRestriction
		default:
			o, err := tunnel.DecodeTLSOptions(raw)
			if err != nil || len(o.Unsupported) > 0 {
				t.Fatalf("%s: %v %v", proto, err, o)
			}
			ipr = o.IPRestriction
		}
		if want := (&tunnel.IPRestriction{IPPolicyIDs: []string{"ipp_abc", "ipp_def"}}); !reflect.DeepEqual(ipr, want) {
			t.Fatalf("%s: IPRestriction %+v, want %+v", proto, ipr, want)
		}
	}
	if _, err := (config.Endpoint{Name: "e", Proto: "http", Upstream: "8080", IPPolicyIDs: []string{"ipx_abc"}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "--ip-policy-id") {
		t.Fatalf("ipx_ accepted as an IP policy ID: %v", err)
	}
}
