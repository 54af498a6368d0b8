package restapi

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/policy"
)

// hstsJSON is a reserved domain's hsts object, Tollgate's extension
// (docs/api-compatibility.md#reserved-domains, docs/tls.md#hsts): the
// Strict-Transport-Security field the edges set on the domain's HTTPS
// responses. null means none: the endpoint's own setting, else the
// upstream's field, applies.
type hstsJSON struct {
	MaxAge            int64 `json:"max_age"` // seconds, 0 to 63072000 (two years)
	IncludeSubdomains bool  `json:"include_subdomains"`
	Preload           bool  `json:"preload"` // needs include_subdomains and max_age ≥ 31536000
}

var errNotNumber = errors.New("not a JSON number")

// hstsOut renders a stored value (canonical, "" = none) as the hsts field.
func hstsOut(stored string) *hstsJSON {
	if stored == "" {
		return nil
	}
	h, err := policy.ParseHSTS(stored)
	if err != nil {
		return nil // not written by this API: the store validates every value
	}
	return &hstsJSON{MaxAge: h.MaxAge, IncludeSubdomains: h.IncludeSubDomains, Preload: h.Preload}
}

// parseHSTS decodes an hsts object into the value the store keeps:
// {"max_age": N, "include_subdomains": bool, "preload": bool}, max_age
// required. Unknown fields get TG_214, wrong shapes TG_213, values outside
// the limits codes.HSTSInvalid (store.ValidateHSTS).
func parseHSTS(raw json.RawMessage) (string, error) {
	shape := controlplane.BadRequest(codes.APIBodyInvalid,
		`hsts must be an object such as {"max_age": 31536000, "include_subdomains": true, "preload": false}, or null.`)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return "", shape
	}
	var h policy.HSTS
	seenAge := false
	for k, v := range fields {
		var err error
		switch k {
		case "max_age":
			seenAge = true
			// A JSON number of whole seconds: not "60" (json.Number would
			// take a string), not 1.5 or 6e1.
			var n json.Number
			if v = bytes.TrimSpace(v); len(v) == 0 || v[0] == '"' {
				err = errNotNumber
			} else if err = json.Unmarshal(v, &n); err == nil {
				h.MaxAge, err = n.Int64()
			}
		case "include_subdomains":
			err = json.Unmarshal(v, &h.IncludeSubDomains)
		case "preload":
			err = json.Unmarshal(v, &h.Preload)
		default:
			return "", controlplane.BadRequest(codes.APIUnknownParam,
				"Unknown field %q in hsts: use max_age, include_subdomains and preload.", controlplane.Truncate(k, 60))
		}
		if err != nil {
			return "", shape
		}
	}
	if !seenAge {
		return "", controlplane.BadRequest(codes.HSTSInvalid, "hsts.max_age is required: seconds from 0 to %d.", policy.HSTSMaxAgeLimit)
	}
	if err := h.Validate(); err != nil {
		return "", controlplane.BadRequest(codes.HSTSInvalid, "hsts is not valid: %v.", err)
	}
	return h.String(), nil
}

// hstsIn turns an optional hsts field of a request body into the store's
// input: nil when absent (unchanged), "" for null (none), else the
// canonical value.
func hstsIn(o optional[json.RawMessage]) (*string, error) {
	if !o.Set {
		return nil, nil
	}
	v := ""
	if !o.Null {
		var err error
		if v, err = parseHSTS(o.Value); err != nil {
			return nil, err
		}
	}
	return &v, nil
}
