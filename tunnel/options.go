package tunnel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// IPRestriction is the IP restriction middleware of a Bind: client
// addresses must match an allow CIDR and no deny CIDR.
type IPRestriction struct {
	AllowCIDRs []string `json:"allow_cidrs,omitempty"`
	DenyCIDRs  []string `json:"deny_cidrs,omitempty"`
	// IPPolicyIDs is Tollgate's extension: IP policies (ipp_...) of the
	// account whose rules are added to the CIDRs above.
	IPPolicyIDs []string `json:"ip_policy_ids,omitempty"`
}

// BasicAuth is the HTTP basic-auth middleware of a Bind.
type BasicAuth struct {
	Credentials []BasicAuthCredential `json:"credentials,omitempty"`
}

// BasicAuthCredential is one username and password of BasicAuth.
type BasicAuthCredential struct {
	Username          string `json:"username,omitempty"`
	CleartextPassword Secret `json:"cleartext_password,omitempty"`
}

// TLSTermination asks the edge to terminate TLS of a tls endpoint with this
// PEM certificate and key.
type TLSTermination struct {
	Cert []byte `json:"cert,omitempty"`
	Key  []byte `json:"key,omitempty"`
}

// HTTPOptions are Bind.Opts for proto http and https.
type HTTPOptions struct {
	URL               string // Go SDK v2 WithURL
	Domain            string // Go SDK v1 WithDomain, JS .domain()
	Hostname          string
	Subdomain         string
	Auth              string // legacy "user:pass"
	HostHeaderRewrite bool
	LocalURLScheme    string
	ProxyProto        int32 // 0 none, 1 PROXY v1, 2 PROXY v2
	IPRestriction     *IPRestriction
	BasicAuth         *BasicAuth
	TrafficPolicy     string
	// MinTLSVersion is Tollgate's extension: "1.2", "1.3"; "" = edge default.
	MinTLSVersion string
	// HSTS is Tollgate's extension (key "HSTS", which the hosted
	// platform's SDKs never send): the Strict-Transport-Security value the
	// edge sets on the endpoint's HTTPS responses, such as
	// "max-age=31536000; includeSubDomains" (policy.ParseHSTS); "" = none,
	// the upstream's own field passes. See docs/tls.md#hsts.
	HSTS string `json:",omitempty"`
	// Unsupported names the options the agent set that this package does
	// not implement (CircuitBreaker, OAuth, OIDC, unknown keys...). An edge
	// must refuse the bind when it is non-empty rather than ignore them.
	Unsupported []string
}

// TCPOptions are Bind.Opts for proto tcp.
type TCPOptions struct {
	URL           string
	Addr          string // "host:port" of a reserved address
	ProxyProto    int32
	IPRestriction *IPRestriction
	TrafficPolicy string
	Unsupported   []string // see HTTPOptions.Unsupported
}

// TLSOptions are Bind.Opts for proto tls.
type TLSOptions struct {
	URL              string
	Domain           string
	Hostname         string
	Subdomain        string
	ProxyProto       int32
	MutualTLSAtAgent bool
	TLSTermination   *TLSTermination
	IPRestriction    *IPRestriction
	MinTLSVersion    string
	TrafficPolicy    string
	Unsupported      []string // see HTTPOptions.Unsupported
}

// optField decodes one known option key into its destination. A nil func
// marks an option this package knows but does not implement: it is listed
// in Unsupported when its value is not null.
type optField struct {
	name   string
	decode func(raw json.RawMessage) error
}

// into returns a decode func that unmarshals into p.
func into(p any) func(json.RawMessage) error {
	return func(raw json.RawMessage) error { return json.Unmarshal(raw, p) }
}

// DecodeHTTPOptions decodes Bind.Opts of an http or https bind. Keys match
// case-insensitively (the JS SDK's casing differs); a key given twice is an
// error; options this package does not implement are listed in
// Unsupported rather than dropped. Empty or null raw gives zero options.
func DecodeHTTPOptions(raw json.RawMessage) (*HTTPOptions, error) {
	o := &HTTPOptions{}
	var ipr *ipRestrictionWire
	var ba *basicAuthWire
	fields := []optField{
		{"URL", into(&o.URL)},
		{"Domain", into(&o.Domain)},
		{"Hostname", into(&o.Hostname)},
		{"Subdomain", into(&o.Subdomain)},
		{"Auth", into(&o.Auth)},
		{"HostHeaderRewrite", into(&o.HostHeaderRewrite)},
		{"LocalURLScheme", into(&o.LocalURLScheme)},
		{"ProxyProto", into(&o.ProxyProto)},
		{"IPRestriction", into(&ipr)},
		{"BasicAuth", into(&ba)},
		{"TrafficPolicy", into(&o.TrafficPolicy)},
		{"MinTLSVersion", into(&o.MinTLSVersion)},
		{"HSTS", into(&o.HSTS)},
		{"Compression", nil},
		{"CircuitBreaker", nil},
		{"OAuth", nil},
		{"OIDC", nil},
		{"WebhookVerification", nil},
		{"MutualTLSCA", nil},
		{"RequestHeaders", nil},
		{"ResponseHeaders", nil},
		{"WebsocketTCPConverter", nil},
		{"UserAgentFilter", nil},
		{"Policy", nil},
	}
	unsupported, err := decodeOptions(raw, fields)
	if err != nil {
		return nil, fmt.Errorf("decoding http options: %w", err)
	}
	o.IPRestriction = ipr.value()
	o.BasicAuth = ba.value(&unsupported)
	o.Unsupported = unsupported
	return o, nil
}

// DecodeTCPOptions decodes Bind.Opts of a tcp bind; see DecodeHTTPOptions.
func DecodeTCPOptions(raw json.RawMessage) (*TCPOptions, error) {
	o := &TCPOptions{}
	var ipr *ipRestrictionWire
	fields := []optField{
		{"URL", into(&o.URL)},
		{"Addr", into(&o.Addr)},
		{"ProxyProto", into(&o.ProxyProto)},
		{"IPRestriction", into(&ipr)},
		{"TrafficPolicy", into(&o.TrafficPolicy)},
		{"Policy", nil},
	}
	unsupported, err := decodeOptions(raw, fields)
	if err != nil {
		return nil, fmt.Errorf("decoding tcp options: %w", err)
	}
	o.IPRestriction = ipr.value()
	o.Unsupported = unsupported
	return o, nil
}

// DecodeTLSOptions decodes Bind.Opts of a tls bind; see DecodeHTTPOptions.
func DecodeTLSOptions(raw json.RawMessage) (*TLSOptions, error) {
	o := &TLSOptions{}
	var ipr *ipRestrictionWire
	var term *tlsTerminationWire
	fields := []optField{
		{"URL", into(&o.URL)},
		{"Domain", into(&o.Domain)},
		{"Hostname", into(&o.Hostname)},
		{"Subdomain", into(&o.Subdomain)},
		{"ProxyProto", into(&o.ProxyProto)},
		{"MutualTLSAtAgent", into(&o.MutualTLSAtAgent)},
		{"TLSTermination", into(&term)},
		{"IPRestriction", into(&ipr)},
		{"MinTLSVersion", into(&o.MinTLSVersion)},
		{"TrafficPolicy", into(&o.TrafficPolicy)},
		{"MutualTLSAtEdge", nil},
		{"Policy", nil},
	}
	unsupported, err := decodeOptions(raw, fields)
	if err != nil {
		return nil, fmt.Errorf("decoding tls options: %w", err)
	}
	o.IPRestriction = ipr.value()
	if term != nil {
		if len(term.SealedKey) > 0 {
			unsupported = append(unsupported, "TLSTermination.sealed_key")
		}
		o.TLSTermination = &TLSTermination{Cert: term.Cert, Key: term.Key}
	}
	o.Unsupported = unsupported
	return o, nil
}

// decodeOptions walks the top-level keys of a JSON object, decoding known
// keys through fields and returning the names of set options that are not
// implemented. It refuses duplicate keys, including ones that differ only
// by case, since encoding/json would silently keep the last.
func decodeOptions(raw json.RawMessage, fields []optField) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: options are not a JSON object", ErrMalformed)
	}
	var unsupported []string
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, err
		}
		for _, s := range seen {
			if strings.EqualFold(s, key) {
				return nil, fmt.Errorf("%w: option %q given twice", ErrMalformed, key)
			}
		}
		seen = append(seen, key)
		f := findField(fields, key)
		switch {
		case f == nil:
			if !isZeroJSON(val) {
				unsupported = append(unsupported, key)
			}
		case f.decode == nil:
			if !isNullJSON(val) {
				unsupported = append(unsupported, f.name)
			}
		default:
			if err := f.decode(val); err != nil {
				return nil, fmt.Errorf("option %s: %w", f.name, err)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the options object", ErrMalformed)
	}
	return unsupported, nil
}

func findField(fields []optField, key string) *optField {
	for i := range fields {
		if strings.EqualFold(fields[i].name, key) {
			return &fields[i]
		}
	}
	return nil
}

func isNullJSON(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// isZeroJSON reports whether an unknown option's value says "not set":
// null, false, 0, "" or []. An empty object counts as set: the SDK's
// protobuf middleware messages use {} to switch a feature on.
func isZeroJSON(v json.RawMessage) bool {
	switch s := string(bytes.TrimSpace(v)); s {
	case "null", "false", "0", `""`, "[]":
		return true
	default:
		if strings.HasPrefix(s, "[") {
			var a []json.RawMessage
			return json.Unmarshal(v, &a) == nil && len(a) == 0
		}
		return false
	}
}

// ipRestrictionWire is the SDK's protobuf IP restriction as JSON.
type ipRestrictionWire struct {
	AllowCIDRs  []string `json:"allow_cidrs"`
	DenyCIDRs   []string `json:"deny_cidrs"`
	IPPolicyIDs []string `json:"ip_policy_ids"`
}

func (w *ipRestrictionWire) value() *IPRestriction {
	if w == nil {
		return nil
	}
	return &IPRestriction{AllowCIDRs: w.AllowCIDRs, DenyCIDRs: w.DenyCIDRs, IPPolicyIDs: w.IPPolicyIDs}
}

// basicAuthWire is the SDK's protobuf basic auth as JSON; hashed passwords
// are not supported.
type basicAuthWire struct {
	Credentials []struct {
		Username          string `json:"username"`
		CleartextPassword string `json:"cleartext_password"`
		HashedPassword    []byte `json:"hashed_password"`
	} `json:"credentials"`
}

func (w *basicAuthWire) value(unsupported *[]string) *BasicAuth {
	if w == nil {
		return nil
	}
	ba := &BasicAuth{Credentials: make([]BasicAuthCredential, 0, len(w.Credentials))}
	hashed := false
	for _, c := range w.Credentials {
		hashed = hashed || len(c.HashedPassword) > 0
		ba.Credentials = append(ba.Credentials, BasicAuthCredential{Username: c.Username, CleartextPassword: Secret(c.CleartextPassword)})
	}
	if hashed {
		*unsupported = append(*unsupported, "BasicAuth.hashed_password")
	}
	return ba
}

// tlsTerminationWire is the SDK's protobuf TLS termination as JSON.
type tlsTerminationWire struct {
	Cert      []byte `json:"cert"`
	Key       []byte `json:"key"`
	SealedKey []byte `json:"sealed_key"`
}
