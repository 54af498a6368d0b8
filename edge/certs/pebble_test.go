package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/libdns/libdns"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
	"github.com/tollgate/tollgate/snapshot"
)

// This file runs a real ACME CA (Pebble) in-process, a DNS server that
// Pebble's validator and certmagic both use, and the two public listeners
// an edge has, on loopback ephemeral ports.

const (
	testZone     = "example.test"
	tsigKeyName  = "tollgate-test."
	pebbleOrders = "/order-plz" // Pebble's new-order path
)

var tsigSecret = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// testDNS is an authoritative server for every name on loopback: A
// 127.0.0.1 for any name, no AAAA (Pebble dials the first address it gets),
// SOA at the zones it is told, and TXT records written by TSIG-signed RFC
// 2136 updates. It serves UDP (certmagic) and TCP (Pebble) on one port.
type testDNS struct {
	addr  string
	zones []string // fqdn

	mu  sync.Mutex
	txt map[string][]string // fqdn → values
}

func startDNS(t *testing.T, zones ...string) *testDNS {
	t.Helper()
	d := &testDNS{txt: map[string][]string{}}
	for _, z := range zones {
		d.zones = append(d.zones, dns.Fqdn(z))
	}
	var tcpLn net.Listener
	var udpConn net.PacketConn
	for i := 0; i < 20 && udpConn == nil; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			ln.Close()
			continue
		}
		tcpLn, udpConn = ln, pc
	}
	if udpConn == nil {
		t.Fatal("no port free for both TCP and UDP")
	}
	d.addr = tcpLn.Addr().String()
	secrets := map[string]string{tsigKeyName: tsigSecret}
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept } // the default refuses UPDATE
	servers := []*dns.Server{
		{Listener: tcpLn, Handler: d, TsigSecret: secrets, MsgAcceptFunc: accept},
		{PacketConn: udpConn, Handler: d, TsigSecret: secrets, MsgAcceptFunc: accept},
	}
	var wg sync.WaitGroup
	for _, s := range servers {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.ActivateAndServe()
		}()
		<-started
	}
	t.Cleanup(func() {
		for _, s := range servers {
			_ = s.Shutdown()
		}
		wg.Wait()
	})
	return d
}

// ServeDNS implements dns.Handler.
func (d *testDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if r.Opcode == dns.OpcodeUpdate {
		if r.IsTsig() == nil || w.TsigStatus() != nil {
			m.Rcode = dns.RcodeRefused
		} else {
			d.update(r.Ns)
		}
		if t := r.IsTsig(); t != nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		}
		_ = w.WriteMsg(m)
		return
	}
	for _, q := range r.Question {
		name := strings.ToLower(q.Name)
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(name, dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeTXT:
			d.mu.Lock()
			for _, v := range d.txt[name] {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: []string{v}})
			}
			d.mu.Unlock()
		case dns.TypeSOA:
			for _, z := range d.zones {
				if name == z {
					m.Answer = append(m.Answer, &dns.SOA{Hdr: hdr(name, dns.TypeSOA), Ns: "ns." + z, Mbox: "hostmaster." + z,
						Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1})
				}
			}
		}
	}
	_ = w.WriteMsg(m)
}

func hdr(name string, typ uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 1}
}

// update applies an RFC 2136 update section: class INET adds, NONE deletes
// one record, ANY deletes the RRset.
func (d *testDNS) update(rrs []dns.RR) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, rr := range rrs {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		switch h.Class {
		case dns.ClassINET:
			if txt, ok := rr.(*dns.TXT); ok {
				d.txt[name] = append(d.txt[name], strings.Join(txt.Txt, ""))
			}
		case dns.ClassNONE:
			if txt, ok := rr.(*dns.TXT); ok {
				v := strings.Join(txt.Txt, "")
				kept := d.txt[name][:0]
				for _, old := range d.txt[name] {
					if old != v {
						kept = append(kept, old)
					}
				}
				d.txt[name] = kept
			}
		case dns.ClassANY:
			delete(d.txt, name)
		}
	}
}

func (d *testDNS) txtCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, v := range d.txt {
		n += len(v)
	}
	return n
}

// edgeListeners are an edge's public HTTP and HTTPS listeners, bound before
// Pebble starts so that its validator can be pointed at them. The Manager
// is plugged in later.
type edgeListeners struct {
	http, https net.Listener
	mgr         atomic.Pointer[Manager]
	challenges  atomic.Int32 // HTTP-01 requests answered
	alpn        atomic.Int32 // acme-tls/1 handshakes
}

func listenEdge(t *testing.T) *edgeListeners {
	t.Helper()
	e := &edgeListeners{}
	var err error
	if e.http, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if e.https, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	httpSrv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m := e.mgr.Load(); m != nil && m.HandleHTTPChallenge(w, r) {
				e.challenges.Add(1)
				return
			}
			http.Error(w, "not a challenge", http.StatusNotFound)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1", ACMETLSALPNProto},
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			m := e.mgr.Load()
			if m == nil {
				return nil, ErrNotStarted
			}
			return m.GetCertificate(h)
		},
	}
	httpsSrv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.TLS.ServerName)
		}),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){
			ACMETLSALPNProto: func(_ *http.Server, c *tls.Conn, _ http.Handler) { e.alpn.Add(1); c.Close() },
		},
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = httpSrv.Serve(e.http) }()
	go func() { defer wg.Done(); _ = httpsSrv.ServeTLS(e.https, "", "") }()
	t.Cleanup(func() {
		_ = httpSrv.Close()
		_ = httpsSrv.Close()
		wg.Wait()
	})
	return e
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// pebble is an in-process Pebble ACME server.
type pebble struct {
	srv    *httptest.Server
	roots  *x509.CertPool // verifies the certificates Pebble issues
	https  *x509.CertPool // verifies Pebble's own HTTPS
	orders atomic.Int32
	down   atomic.Bool // answer 503 to everything
}

// startPebble runs Pebble whose validator resolves names with dnsAddr and
// connects to httpPort (HTTP-01) and tlsPort (TLS-ALPN-01). validity is the
// lifetime of issued certificates (0 = Pebble's default).
func startPebble(t *testing.T, dnsAddr string, httpPort, tlsPort int, validity time.Duration) *pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(testWriter{t}, "pebble ", 0)
	}
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: uint64(validity / time.Second)}}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 1, 1)
	p := &pebble{}
	h := front.Handler()
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == pebbleOrders {
			p.orders.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	p.https = x509.NewCertPool()
	p.https.AddCert(p.srv.Certificate())

	rec := httptest.NewRecorder()
	front.ManagementHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, wfe.RootCertPath+"0", nil))
	blk, _ := pem.Decode(rec.Body.Bytes())
	if blk == nil {
		t.Fatalf("no Pebble root: %d %s", rec.Code, rec.Body.String())
	}
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	p.roots = x509.NewCertPool()
	p.roots.AddCert(root)
	return p
}

func (p *pebble) directory() string { return p.srv.URL + wfe.DirectoryPath }

// acmeConfig points an ACMEConfig at p and e's listeners.
func (p *pebble) acmeConfig(e *edgeListeners) *ACMEConfig {
	return &ACMEConfig{
		CA:            p.directory(),
		TrustedRoots:  p.https,
		Email:         "ops@example.test",
		ListenHost:    "127.0.0.1",
		HTTPPort:      port(e.http),
		TLSALPNPort:   port(e.https),
		ObtainTimeout: 20 * time.Second,
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// acmeEnv is one edge's listeners, a DNS server and Pebble.
type acmeEnv struct {
	dns    *testDNS
	edge   *edgeListeners
	pebble *pebble
}

func newACMEEnv(t *testing.T, validity time.Duration) *acmeEnv {
	t.Helper()
	d := startDNS(t, testZone, "customer.test")
	e := listenEdge(t)
	return &acmeEnv{dns: d, edge: e, pebble: startPebble(t, d.addr, port(e.http), port(e.https), validity)}
}

// startACME starts a Manager and plugs it into listeners l.
func startACME(t *testing.T, l *edgeListeners, cfg Config) *Manager {
	t.Helper()
	m := startManager(t, cfg)
	l.mgr.Store(m)
	return m
}

// waitServed polls a handshake for name at addr until it yields a
// certificate that verifies against roots and satisfies ok, and returns it.
func waitServed(t *testing.T, addr, name string, roots *x509.CertPool, within time.Duration, ok func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(within)
	var lastErr error
	for time.Now().Before(deadline) {
		leaf, err := handshake(addr, name, roots)
		if err == nil && (ok == nil || ok(leaf)) {
			return leaf
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no acceptable certificate for %s within %s; last error: %v", name, within, lastErr)
	return nil
}

func addrOf(ln net.Listener) string { return "127.0.0.1:" + strconv.Itoa(port(ln)) }

// waitWithin polls cond every 50ms until it holds or within passes.
func waitWithin(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// atomicSnapshot is a swappable snapshot, like the edge's holder.
type atomicSnapshot struct {
	p atomic.Pointer[snapshot.Snapshot]
}

func (a *atomicSnapshot) Store(s *snapshot.Snapshot) { a.p.Store(s) }
func (a *atomicSnapshot) Load() *snapshot.Snapshot   { return a.p.Load() }

// recordingReporter keeps every status report.
type recordingReporter struct {
	mu  sync.Mutex
	all []Status
}

func (r *recordingReporter) ReportCertificateStatus(_ context.Context, st Status) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, st)
	return nil
}

// last returns the newest report on name.
func (r *recordingReporter) last(name string) (Status, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.all) - 1; i >= 0; i-- {
		if r.all[i].Domain == name {
			return r.all[i], true
		}
	}
	return Status{}, false
}

func helloFor(name string) *tls.ClientHelloInfo { return &tls.ClientHelloInfo{ServerName: name} }

// nopDNS is a DNS provider that is never called.
type nopDNS struct{}

func (nopDNS) AppendRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, errors.New("nopDNS")
}

func (nopDNS) DeleteRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, errors.New("nopDNS")
}

func acmeProblem(typ string) error {
	return fmt.Errorf("obtaining: %w", acme.Problem{Type: typ, Detail: "test"})
}

func containsString(s, sub string) bool { return strings.Contains(s, sub) }
