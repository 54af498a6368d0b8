package agent

import (
	"encoding/json"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/tunnel"
)

// Bind.Opts as this agent sends them: only the options it sets, under the
// key names tunnel.DecodeHTTPOptions and friends (and the hosted SDKs)
// use. Unset options are omitted rather than sent as null.
type (
	httpOptsWire struct {
		URL           string                `json:",omitempty"`
		IPRestriction *tunnel.IPRestriction `json:",omitempty"`
		BasicAuth     *tunnel.BasicAuth     `json:",omitempty"`
		MinTLSVersion string                `json:",omitempty"`
		HSTS          string                `json:",omitempty"` // Tollgate's extension (docs/tls.md#hsts)
	}
	tcpOptsWire struct {
		URL           string                `json:",omitempty"`
		ProxyProto    int32                 `json:",omitempty"`
		IPRestriction *tunnel.IPRestriction `json:",omitempty"`
	}
	tlsOptsWire struct {
		URL            string                 `json:",omitempty"`
		ProxyProto     int32                  `json:",omitempty"`
		IPRestriction  *tunnel.IPRestriction  `json:",omitempty"`
		MinTLSVersion  string                 `json:",omitempty"`
		TLSTermination *tunnel.TLSTermination `json:",omitempty"`
	}
)

// bindOpts encodes the Bind.Opts of the endpoint s. The result holds
// basic-auth passwords and TLS keys: never log it.
func bindOpts(s *config.EndpointSpec) (json.RawMessage, error) {
	var ipr *tunnel.IPRestriction
	if len(s.CIDRAllow) > 0 || len(s.CIDRDeny) > 0 || len(s.IPPolicyIDs) > 0 {
		ipr = &tunnel.IPRestriction{AllowCIDRs: s.CIDRAllow, DenyCIDRs: s.CIDRDeny, IPPolicyIDs: s.IPPolicyIDs}
	}
	var v any
	switch s.Kind {
	case config.ProtoHTTP:
		o := httpOptsWire{URL: s.URL, IPRestriction: ipr, MinTLSVersion: s.MinTLS, HSTS: s.HSTS}
		if len(s.BasicAuth) > 0 {
			o.BasicAuth = &tunnel.BasicAuth{}
			for _, c := range s.BasicAuth {
				o.BasicAuth.Credentials = append(o.BasicAuth.Credentials,
					tunnel.BasicAuthCredential{Username: c.User, CleartextPassword: tunnel.Secret(c.Password)})
			}
		}
		v = o
	case config.ProtoTCP:
		v = tcpOptsWire{URL: s.URL, ProxyProto: s.ProxyProto, IPRestriction: ipr}
	default:
		o := tlsOptsWire{URL: s.URL, ProxyProto: s.ProxyProto, IPRestriction: ipr, MinTLSVersion: s.MinTLS}
		if s.TerminateCert != nil {
			o.TLSTermination = &tunnel.TLSTermination{Cert: s.TerminateCert, Key: s.TerminateKey}
		}
		v = o
	}
	return json.Marshal(v)
}
