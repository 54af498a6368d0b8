package edge

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/snapshot"
)

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string]portRange{"20000-29999": {20000, 29999}, " 5 - 6 ": {5, 6}, "7": {7, 7}} {
		if got, err := parsePortRange(in); err != nil || got != want {
			t.Errorf("parsePortRange(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0-5", "6-5", "1-65536", "a-b", "1-2-3"} {
		if _, err := parsePortRange(in); err == nil {
			t.Errorf("parsePortRange(%q) accepted", in)
		}
	}
}

func TestParseTCPAddr(t *testing.T) {
	for in, want := range map[string]string{"tcp://Localhost:20001": "localhost:20001", "1.TCP.example.com:5": "1.tcp.example.com:5",
		"tcp://[::ffff:127.0.0.1]:9": "127.0.0.1:9"} {
		if got, _, err := parseTCPAddr(in); err != nil || got != want {
			t.Errorf("parseTCPAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"tcp://host", "http://h:1", "h:0", "h:70000", "tcp://u@h:1", ":5"} {
		if _, _, err := parseTCPAddr(in); err == nil || err.Code != codes.BindURL {
			t.Errorf("parseTCPAddr(%q) = %v, want TG_401", in, err)
		}
	}
}

func TestCheckTCPBindAllowed(t *testing.T) {
	b := &binder{region: "us", tcpHost: "tcp.example", tcpRange: portRange{20000, 20009}}
	snap, err := snapshot.New(snapshot.Data{ReservedAddrs: []snapshot.ReservedAddr{
		{ID: "ra_1", AccountID: "acct_a", Addr: "tcp.example:30000", Region: "us"},
		{ID: "ra_2", AccountID: "acct_b", Addr: "tcp.example:30001", Region: "us"},
		{ID: "ra_3", AccountID: "acct_a", Addr: "tcp.example:30002", Region: "eu"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := &authn.Identity{Account: &snapshot.Account{ID: "acct_a"}}
	limited := &authn.Identity{Account: &snapshot.Account{ID: "acct_a"}, ACL: []string{"bind:tcp.example:30000"}}
	cases := []struct {
		ident *authn.Identity
		key   string
		code  codes.Code
	}{
		{a, "tcp.example:30000", ""},
		{a, "tcp.example:20005", ""}, // a random-range port nobody reserved
		{a, "tcp.example:30001", codes.BindReservedOther},
		{a, "tcp.example:30002", codes.BindAddrRegion},
		{a, "tcp.example:30003", codes.BindNotReserved},
		{a, "other.example:30000", codes.BindOutsideBase},
		{limited, "tcp.example:30000", ""},
		{limited, "tcp.example:20005", codes.BindACL},
	}
	for _, tc := range cases {
		err := b.checkTCPBindAllowed(snap, tc.ident, tc.key)
		if tc.code == "" && err != nil || tc.code != "" && (err == nil || err.Code != tc.code) {
			t.Errorf("%s (acl %v): %v, want %q", tc.key, tc.ident.ACL, err, tc.code)
		}
	}
}

// TestTCPAllocate: random ports skip reserved ones and ports in use, the
// last reference closes a listener, and a full range is errPortsExhausted.
func TestTCPAllocate(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p0 := busy.Addr().(*net.TCPAddr).Port
	r := portRange{p0, p0 + 2} // p0 is busy, p0+1 reserved: only p0+2 is free
	pub := &publicServer{router: newRouter(), log: zap.NewNop(), raw: newRawConns()}
	tcp := newTCPListeners("127.0.0.1", func(ln net.Listener, port int) { pub.serveTCP(ln, net.JoinHostPort("localhost", strconv.Itoa(port))) })
	defer tcp.closeAll()
	snap, _ := snapshot.New(snapshot.Data{ReservedAddrs: []snapshot.ReservedAddr{
		{ID: "ra_1", AccountID: "acct_b", Addr: "localhost:" + strconv.Itoa(p0+1)},
	}})
	p, err := tcp.allocate(snap, r, "localhost")
	if err != nil || p != p0+2 {
		t.Fatalf("allocate = %d, %v; want %d", p, err, p0+2)
	}
	if _, err := tcp.allocate(snap, r, "localhost"); !errors.Is(err, errPortsExhausted) {
		t.Fatalf("allocate on a full range: %v", err)
	}
	if err := tcp.acquire(p); err != nil { // a second reference (takeover)
		t.Fatal(err)
	}
	refused := func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			c.Close()
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	tcp.release(p)
	if refused() {
		t.Fatal("listener closed while referenced")
	}
	tcp.release(p)
	if !refused() {
		t.Fatal("the listener is still open after its last reference")
	}
}

func TestMaxVersion(t *testing.T) {
	if got := maxVersion([]uint16{0x7a7a, tls.VersionTLS13, tls.VersionTLS12}); got != tls.VersionTLS13 {
		t.Fatalf("maxVersion with GREASE = %x", got)
	}
}

type noCerts struct{}

func (noCerts) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return nil, errors.New("no certificates in this test")
}
