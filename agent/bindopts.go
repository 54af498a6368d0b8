package agent

import (
	"encoding/json"

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

// bindOpts encodes the endpoint's Bind.Opts. The result holds basic-auth
// passwords and TLS keys: never log it.
func (s *endpointSpec) bindOpts() (json.RawMessage, error) {
	var ipr *tunnel.IPRestriction
	if len(s.allow) > 0 || len(s.deny) > 0 || len(s.policyIDs) > 0 {
		ipr = &tunnel.IPRestriction{AllowCIDRs: s.allow, DenyCIDRs: s.deny, IPPolicyIDs: s.policyIDs}
	}
	var v any
	switch s.kind {
	case ProtoHTTP:
		o := httpOptsWire{URL: s.url, IPRestriction: ipr, MinTLSVersion: s.minTLS}
		if len(s.basicAuth) > 0 {
			o.BasicAuth = &tunnel.BasicAuth{}
			for _, c := range s.basicAuth {
				o.BasicAuth.Credentials = append(o.BasicAuth.Credentials,
					tunnel.BasicAuthCredential{Username: c.user, CleartextPassword: tunnel.Secret(c.password)})
			}
		}
		v = o
	case ProtoTCP:
		v = tcpOptsWire{URL: s.url, ProxyProto: s.proxyProto, IPRestriction: ipr}
	default:
		o := tlsOptsWire{URL: s.url, ProxyProto: s.proxyProto, IPRestriction: ipr, MinTLSVersion: s.minTLS}
		if s.termCert != nil {
			o.TLSTermination = &tunnel.TLSTermination{Cert: s.termCert, Key: s.termKey}
		}
		v = o
	}
	return json.Marshal(v)
}
