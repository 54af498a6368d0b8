package restapi_test

import (
	"testing"

	"github.com/tollgate/tollgate/controlplane/internal/cptest"
	"github.com/tollgate/tollgate/controlplane/internal/storetest"
)

// TestReservedDomainCNAMETargetPerRegion: each reserved domain's
// cname_target is the public hostname of its own region; a region with
// none configured, and a domain under the region's public hostname, get
// null. A wildcard domain gets the same target (a wildcard CNAME).
func TestReservedDomainCNAMETargetPerRegion(t *testing.T) {
	e := cptest.NewEnv(t, storetest.DSN(t, "sqlite"), cptest.Config{PublicHostnames: map[string]string{
		"us": "us.edge.example.net", "eu": "eu.edge.example.net",
	}})
	cases := []struct {
		domain, region string
		want           any
	}{
		{"app.customer.test", "us", "us.edge.example.net"},
		{"shop.customer.test", "eu", "eu.edge.example.net"},
		{"*.wild.customer.test", "eu", "eu.edge.example.net"},
		{"jp.customer.test", "jp", nil},
		{"name.us.edge.example.net", "us", nil},
		{"*.ci.eu.edge.example.net", "eu", nil},
	}
	for _, tc := range cases {
		created := e.Must(201, e.Call("POST", "/reserved_domains", e.Admin, map[string]any{"domain": tc.domain, "region": tc.region}))
		if got := created["cname_target"]; got != tc.want {
			t.Errorf("%s in %s: cname_target %v, want %v", tc.domain, tc.region, got, tc.want)
		}
		got := e.Must(200, e.Call("GET", "/reserved_domains/"+cptest.Str(created, "id"), e.Admin, nil))
		if got["cname_target"] != tc.want {
			t.Errorf("GET %s: cname_target %v, want %v", tc.domain, got["cname_target"], tc.want)
		}
	}
}
