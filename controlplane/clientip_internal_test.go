package controlplane

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "2001:db8:aa::/48", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		trusted bool
		peer    string
		xff     []string
		want    string
	}{
		{"no trusted proxies: XFF ignored", false, "10.1.1.1:5000", []string{"198.51.100.1"}, "10.1.1.1"},
		{"untrusted peer: XFF ignored", true, "203.0.113.5:5000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted peer, no XFF", true, "10.1.1.1:5000", nil, "10.1.1.1"},
		{"trusted peer: the client it names", true, "10.1.1.1:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"forged left part ignored", true, "10.1.1.1:5000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", true, "10.1.1.1:5000", []string{"198.51.100.1, 192.0.2.7, 10.9.9.9"}, "198.51.100.1"},
		{"several headers read as one list", true, "10.1.1.1:5000", []string{"1.2.3.4", "198.51.100.1, 10.2.2.2"}, "198.51.100.1"},
		{"malformed entry stops at the last trusted hop", true, "10.1.1.1:5000", []string{"198.51.100.1, bogus, 10.2.2.2"}, "10.2.2.2"},
		{"entry with a port", true, "10.1.1.1:5000", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"IPv6 entry with a port", true, "10.1.1.1:5000", []string{"[2001:db8:1::5]:4711"}, "2001:db8:1::5"},
		{"mapped peer folded", true, "[::ffff:10.1.1.1]:5000", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"IPv6 trusted peer", true, "[2001:db8:aa::1]:5000", []string{"2001:db8:1::5"}, "2001:db8:1::5"},
		{"all trusted: the leftmost", true, "10.1.1.1:5000", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"empty entries skipped", true, "10.1.1.1:5000", []string{" , 198.51.100.1 ,"}, "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := &Core{}
			if tc.trusted {
				cp.cfg.TrustedProxies = trusted
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := cp.ClientAddr(r); got != netip.MustParseAddr(tc.want) {
				t.Fatalf("ClientAddr = %v, want %s", got, tc.want)
			}
		})
	}
}

func TestClientAddrBoundsHops(t *testing.T) {
	cp := &Core{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	xff := "198.51.100.1"
	for i := 0; i < 100; i++ {
		xff += ", 10.0.0.2"
	}
	r.Header.Set("X-Forwarded-For", xff)
	if got := cp.ClientAddr(r); got.String() != "10.0.0.2" {
		t.Fatalf("ClientAddr with 100 trusted hops = %v, want the last trusted hop read", got)
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"10.1.2.3/8", "::ffff:192.0.2.0/120", "2001:db8::1", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.0/24", "2001:db8::1/128"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"example.com", "10.0.0.0/33", "fe80::1%eth0", "10.0.0.1-10.0.0.9"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
