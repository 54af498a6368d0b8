package tunnel

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func goldenOpts(t *testing.T, name string) json.RawMessage {
	t.Helper()
	var b Bind
	if err := json.Unmarshal(readGolden(t, name), &b); err != nil {
		t.Fatal(err)
	}
	return b.Opts
}

func TestDecodeHTTPOptionsGolden(t *testing.T) {
	o, err := DecodeHTTPOptions(goldenOpts(t, "bind_http"))
	if err != nil {
		t.Fatal(err)
	}
	want := &HTTPOptions{
		URL:           "https://app.example.test",
		ProxyProto:    2,
		TrafficPolicy: "on_http_request: []",
		IPRestriction: &IPRestriction{AllowCIDRs: []string{"10.0.0.0/8"}, DenyCIDRs: []string{"10.1.0.0/16"}},
		BasicAuth:     &BasicAuth{Credentials: []BasicAuthCredential{{Username: "u", CleartextPassword: "pw"}}},
		Unsupported:   []string{"Compression"},
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got  %+v\nwant %+v", o, want)
	}
}

func TestDecodeTCPOptionsGolden(t *testing.T) {
	o, err := DecodeTCPOptions(goldenOpts(t, "bind_tcp"))
	if err != nil {
		t.Fatal(err)
	}
	want := &TCPOptions{URL: "tcp://1.tcp.eu.example.test:20002", Addr: "1.tcp.eu.example.test:20002"}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got %+v", o)
	}
}

func TestDecodeTLSOptionsGolden(t *testing.T) {
	o, err := DecodeTLSOptions(goldenOpts(t, "bind_tls"))
	if err != nil {
		t.Fatal(err)
	}
	want := &TLSOptions{
		Domain:           "t.example.test",
		MutualTLSAtAgent: true,
		TLSTermination:   &TLSTermination{Cert: []byte("CERT"), Key: []byte("KEY")},
		Unsupported:      []string{"MutualTLSAtEdge"},
	}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got %+v", o)
	}
}

func TestDecodeOptionsCases(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    *HTTPOptions
		wantErr error
	}{
		{name: "null", in: `null`, want: &HTTPOptions{}},
		{name: "empty", in: ``, want: &HTTPOptions{}},
		{name: "js casing", in: `{"domain":"a.example.test","proxyProto":1,"ipRestriction":{"allow_cidrs":["1.2.3.0/24"]}}`,
			want: &HTTPOptions{Domain: "a.example.test", ProxyProto: 1, IPRestriction: &IPRestriction{AllowCIDRs: []string{"1.2.3.0/24"}}}},
		{name: "min tls", in: `{"MinTLSVersion":"1.3"}`, want: &HTTPOptions{MinTLSVersion: "1.3"}},
		{name: "hsts", in: `{"hsts":"max-age=60"}`, want: &HTTPOptions{HSTS: "max-age=60"}},
		{name: "unknown set", in: `{"Frobnicate":{"x":1},"Zero":0,"Nothing":null,"Off":false,"None":"","Empty":[]}`,
			want: &HTTPOptions{Unsupported: []string{"Frobnicate"}}},
		{name: "unknown flag message", in: `{"Wobble":{}}`, want: &HTTPOptions{Unsupported: []string{"Wobble"}}},
		{name: "known unsupported", in: `{"OAuth":{"provider":"g"},"OIDC":null,"CircuitBreaker":{"error_threshold":0.5}}`,
			want: &HTTPOptions{Unsupported: []string{"OAuth", "CircuitBreaker"}}},
		{name: "hashed basic auth", in: `{"BasicAuth":{"credentials":[{"username":"u","hashed_password":"eA=="}]}}`,
			want: &HTTPOptions{BasicAuth: &BasicAuth{Credentials: []BasicAuthCredential{{Username: "u"}}}, Unsupported: []string{"BasicAuth.hashed_password"}}},
		{name: "duplicate", in: `{"URL":"a","URL":"b"}`, wantErr: ErrMalformed},
		{name: "duplicate folded", in: `{"IPRestriction":{"allow_cidrs":["0.0.0.0/0"]},"iprestriction":null}`, wantErr: ErrMalformed},
		{name: "not object", in: `[1]`, wantErr: ErrMalformed},
		{name: "bad type", in: `{"ProxyProto":"x"}`},
		{name: "trailing", in: `{} {}`, wantErr: ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := DecodeHTTPOptions(json.RawMessage(tc.in))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("want error, got %+v", o)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", o, tc.want)
			}
		})
	}
}
