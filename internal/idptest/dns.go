package idptest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is an authoritative DNS server on loopback UDP that answers TXT
// questions from records the test sets, and NXDOMAIN otherwise.
type DNS struct {
	Addr string // "127.0.0.1:<port>"
	mu   sync.Mutex
	txt  map[string][]string // by lower-case FQDN
}

// NewDNS starts the server; it stops with the test.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNS{Addr: pc.LocalAddr().String(), txt: map[string][]string{}}
	srv := &dns.Server{PacketConn: pc, Handler: d}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return d
}

// SetTXT sets the TXT values of name.
func (d *DNS) SetTXT(name string, values ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[strings.ToLower(dns.Fqdn(name))] = values
}

// ServeDNS answers one question.
func (d *DNS) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	d.mu.Lock()
	vals, ok := d.txt[strings.ToLower(q.Question[0].Name)]
	d.mu.Unlock()
	if !ok {
		m.Rcode = dns.RcodeNameError
	} else if q.Question[0].Qtype == dns.TypeTXT {
		for _, v := range vals {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT,
				Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
		}
	}
	_ = w.WriteMsg(m)
}
