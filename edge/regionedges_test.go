package edge

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// fixedDirectory is an EdgeDirectory with a fixed list.
type fixedDirectory []snapshot.EdgeInfo

func (d fixedDirectory) Edges() []snapshot.EdgeInfo { return d }

// TestAuthListsRegionEdges: an Auth answer names the edge (EdgeID) and the
// live edges of its region, itself first at its advertised address, then
// its siblings from the directory, each once; edges of other regions and
// edges without an agent address are left out. SrvInfo answers the same,
// so an agent refreshes the list without a new session.
func TestAuthListsRegionEdges(t *testing.T) {
	dir := fixedDirectory{
		{ID: "ed_eu1", Region: "eu", AgentAddr: "10.0.0.9:4443"},
		{ID: "ed_us1", Region: "us", AgentAddr: "10.0.0.1:4443"}, // itself, as the control plane lists it
		{ID: "ed_us2", Region: "us", AgentAddr: "10.0.0.2:4443"},
		{ID: "ed_us3", Region: "us"}, // no agent address yet
		{ID: "ed_us2", Region: "us", AgentAddr: "10.0.0.2:4443"},
		{ID: "ed_us4", Region: "us", AgentAddr: "10.0.0.4:4443"},
	}
	e, err := New(Config{Region: "us", EdgeID: "ed_us1", AdvertiseAgentAddr: "us1.example.com:4443",
		BaseDomain: "tollgate.localhost", DisableQUIC: true, AgentAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "off"},
		Deps{AgentTLS: &tls.Config{}, Certs: noCerts{}, Directory: dir})
	if err != nil {
		t.Fatal(err)
	}
	id, tok, hash := authn.NewCredential(ids.PrefixAuthtoken)
	setSnapshot(t, e, snapshot.Data{
		Accounts:   []snapshot.Account{{ID: "acct_a", Active: true}},
		Principals: []snapshot.Principal{{ID: "usr_a", Active: true, AccountIDs: []string{"acct_a"}}},
		Authtokens: []snapshot.Authtoken{{ID: id, AccountID: "acct_a", OwnerID: "usr_a", SecretHash: hash}},
	})
	if err := e.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.closeListeners)

	s := newAgentSession(e, net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:5000")), "tcp")
	resp := s.Auth(context.Background(), &tunnel.Auth{Version: []string{"3"}, Extra: tunnel.AuthExtra{Authtoken: tunnel.Secret(tok.Reveal())}})
	if resp.Error != "" {
		t.Fatalf("Auth: %s", resp.Error)
	}
	want := []tunnel.RegionEdge{
		{EdgeID: "ed_us1", ServerAddr: "us1.example.com:4443"},
		{EdgeID: "ed_us2", ServerAddr: "10.0.0.2:4443"},
		{EdgeID: "ed_us4", ServerAddr: "10.0.0.4:4443"},
	}
	if resp.Extra.EdgeID != "ed_us1" || !reflect.DeepEqual(resp.Extra.RegionEdges, want) {
		t.Fatalf("Auth answer: EdgeID %q RegionEdges %+v; want ed_us1 and %+v", resp.Extra.EdgeID, resp.Extra.RegionEdges, want)
	}
	info := s.SrvInfo(context.Background())
	if info.Region != "us" || info.EdgeID != "ed_us1" || !reflect.DeepEqual(info.RegionEdges, want) {
		t.Fatalf("SrvInfo = %+v; want region us, ed_us1 and %+v", info, want)
	}

	// Without a directory the edge lists itself only.
	e.deps.Directory = nil
	if got := e.regionEdges(); !reflect.DeepEqual(got, want[:1]) {
		t.Fatalf("without a directory: %+v", got)
	}
	// A large region is cut at maxRegionEdges.
	var big fixedDirectory
	for i := range 2 * maxRegionEdges {
		big = append(big, snapshot.EdgeInfo{ID: "ed_" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Region: "us", AgentAddr: "10.1.0.1:4443"})
	}
	e.deps.Directory = big
	if got := e.regionEdges(); len(got) != maxRegionEdges {
		t.Fatalf("%d region edges listed, want at most %d", len(got), maxRegionEdges)
	}
}
