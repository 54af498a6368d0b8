package edge

import (
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/tunnel"
)

// TLS endpoints are passthrough: the public HTTPS listener reads the
// ClientHello, and when its SNI names a tls endpoint the client's bytes go
// to the agent untouched (the upstream holds the certificate); any other
// name is terminated here as an HTTPS endpoint. A tls endpoint that sent a
// key pair (TLSTermination) is terminated here with it instead, and the
// agent receives the decrypted bytes.

// bindTLS validates a tls bind and returns the endpoint to install and the
// options to echo back. Names follow the rules of HTTPS endpoints (a
// one-label name under the base domain, or a domain reserved by the
// account in this region); a name is either an https or a tls endpoint.
func (b *binder) bindTLS(req *tunnel.Bind, ident *authn.Identity, owner EndpointOwner) (*Endpoint, any, *codes.Error) {
	opts, derr := tunnel.DecodeTLSOptions(req.Opts)
	if derr != nil {
		return nil, nil, unreadableOptions(derr)
	}
	if err := refuseUnsupported(opts.Unsupported, opts.TrafficPolicy); err != nil {
		return nil, nil, err
	}
	if err := checkProxyProto(opts.ProxyProto); err != nil {
		return nil, nil, err
	}
	minTLS, terr := policy.MinTLSVersion(opts.MinTLSVersion, b.defaultMinTLS, b.floorMinTLS)
	if terr != nil {
		return nil, nil, codes.NewError(codes.BindMinTLS, "%v.", terr)
	}
	host, herr := requestedTLSHost(opts, b.baseDomain)
	if herr != nil {
		return nil, nil, herr
	}
	if host == "" {
		host = b.unnamedHost(req.Extra.Token, ident.Account.ID, "tls")
	}
	snap := b.snap.Load()
	if err := b.checkBindAllowed(snap, ident, "tls", host); err != nil {
		return nil, nil, err
	}
	termCert, terr2 := terminationCert(opts.TLSTermination, host)
	if terr2 != nil {
		return nil, nil, terr2
	}
	access, aerr := b.gates.newEndpointAccess(snap, ident.Account.ID, opts.IPRestriction, nil, "")
	if aerr != nil {
		return nil, nil, aerr
	}
	u := "tls://" + host
	if p := b.httpsPort(); p != 443 {
		u += ":" + strconv.Itoa(p)
	}
	ep := newEndpoint(req, owner, "tls", host, u, access)
	ep.minTLS, ep.proxyProto, ep.termCert = minTLS, opts.ProxyProto, termCert
	opts.URL = ep.url
	opts.TLSTermination = nil // never echo the key back
	opts.Hostname = host
	opts.Unsupported = nil
	return ep, opts, nil
}

// terminationCert loads the key pair a tls bind asks the edge to terminate
// with (nil: pass through). The certificate must be valid for host (for a
// wildcard host, for any name one label under it), or every client would
// refuse it.
func terminationCert(t *tunnel.TLSTermination, host string) (*tls.Certificate, *codes.Error) {
	if t == nil {
		return nil, nil
	}
	cert, err := tls.X509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, codes.NewError(codes.BindOption, "The TLS termination certificate and key could not be loaded: %v. Send a PEM certificate and its PEM private key.", err)
	}
	check := host
	if parent, ok := strings.CutPrefix(host, "*."); ok {
		// A wildcard endpoint serves any one label under parent: the
		// certificate must be the wildcard (or cover every such name).
		check = "tollgate-wildcard-check." + parent
	}
	if err := cert.Leaf.VerifyHostname(check); err != nil {
		return nil, codes.NewError(codes.BindOption, "The TLS termination certificate is not valid for %s: %v. Use a certificate for that name.", host, err)
	}
	return &cert, nil
}

// requestedTLSHost extracts the hostname a tls bind asks for: URL
// (tls://NAME[:port]), Domain, Hostname or Subdomain; "" = none.
func requestedTLSHost(o *tunnel.TLSOptions, base string) (string, *codes.Error) {
	if o.URL == "" {
		return requestedHost(&tunnel.HTTPOptions{Domain: o.Domain, Hostname: o.Hostname, Subdomain: o.Subdomain}, base)
	}
	return urlHost(o.URL, "tls", base, "tls")
}

// errPassthrough ends the edge's own handshake when the ClientHello names
// a tls endpoint; the recorded bytes then go to the agent.
var errPassthrough = errors.New("edge: TLS passthrough")

// peekConn wraps a public connection during the TLS handshake: it records
// the bytes crypto/tls reads until the ClientHello has been seen, and,
// once the connection is handed to a tls endpoint, swallows the alert
// crypto/tls would write. Fields are used by the handshake goroutine only.
type peekConn struct {
	net.Conn
	rec       []byte
	recording bool
	drop      bool
	ep        *Endpoint // the tls endpoint, once chosen
	// fwd are the sibling edges holding name, when the connection goes
	// to one of them (peerforward.go).
	fwd  []RemoteRoute
	name string
}

func newPeekConn(c net.Conn) *peekConn { return &peekConn{Conn: c, recording: true} }

// NetConn returns the connection c wraps (the HTTP proxy sets socket
// options on it).
func (c *peekConn) NetConn() net.Conn { return c.Conn }

// Read reads from the connection, recording while the ClientHello is read.
func (c *peekConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.recording && n > 0 {
		c.rec = append(c.rec, p[:n]...)
	}
	return n, err
}

// Write writes to the connection unless it was handed to a tls endpoint.
func (c *peekConn) Write(p []byte) (int, error) {
	if c.drop {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// passthroughOr returns a GetConfigForClient that hands the connection to
// a tls endpoint named by the SNI (ending the handshake with
// errPassthrough), and otherwise stops recording and asks next.
func (p *publicServer) passthroughOr(pc *peekConn, next func(*tls.ClientHelloInfo) (*tls.Config, error)) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		name := serverName(hello.ServerName)
		ep, fwd := p.route(pc.Conn, hello, name)
		if fwd != nil {
			pc.fwd, pc.name, pc.drop = fwd, name, true
			return nil, errForward
		}
		if ep != nil && ep.proto == "tls" {
			if next, ok := p.router.pick(name); ok {
				ep = next // the next member of a pool; all are tls
			}
			if maxVersion(hello.SupportedVersions) < ep.minTLS {
				pc.recording, pc.rec = false, nil
				return nil, errors.New("edge: client's TLS versions are below the endpoint's minimum")
			}
			if ep.termCert != nil {
				// Terminated here with the agent's key pair; the
				// decrypted stream goes to the agent (terminatedTLS).
				pc.recording, pc.rec, pc.ep = false, nil, ep
				return p.tls.terminated(ep.termCert, ep.minTLS, maxVersion(hello.SupportedVersions)), nil
			}
			pc.ep, pc.drop = ep, true
			return nil, errPassthrough
		}
		pc.recording, pc.rec = false, nil
		return next(hello)
	}
}

// maxVersion returns the highest TLS version in vs, skipping GREASE
// values (RFC 8701: 0x?A?A).
func maxVersion(vs []uint16) uint16 {
	var m uint16
	for _, v := range vs {
		if v&0x0f0f != 0x0a0a && v > m {
			m = v
		}
	}
	return m
}

// passthroughTLS serves pc as a tls endpoint's client if the handshake
// ended with errPassthrough, and reports whether it did.
func (p *publicServer) passthroughTLS(pc *peekConn, handshakeErr error) bool {
	if !errors.Is(handshakeErr, errPassthrough) || pc.ep == nil {
		return false
	}
	ep, rec := pc.ep, pc.rec
	pc.rec, pc.recording = nil, false
	if !p.gates.admit(ep, PeerAddr(pc.Conn.RemoteAddr()).Addr()) {
		p.stats.rawRefused(pc.Conn, ep)
		refuse(pc.Conn) // nothing of the ClientHello went to the agent
		return true
	}
	p.proxyRaw(pc.Conn, ep, &tunnel.ProxyHeader{ID: ep.bindID, Proto: "tls", EdgeType: edgeTypeTLS, PassthroughTLS: true}, rec)
	return true
}

// terminatedTLS serves tc, a finished handshake, when it was for a tls
// endpoint the edge terminates, and reports whether it was.
func (p *publicServer) terminatedTLS(pc *peekConn, tc *tls.Conn) bool {
	ep := pc.ep
	if ep == nil || ep.termCert == nil {
		return false
	}
	if !p.gates.admit(ep, PeerAddr(pc.Conn.RemoteAddr()).Addr()) {
		p.stats.rawRefused(pc.Conn, ep)
		refuse(pc.Conn)
		return true
	}
	p.proxyRaw(tc, ep, &tunnel.ProxyHeader{ID: ep.bindID, Proto: "tls", EdgeType: edgeTypeTLS}, nil)
	return true
}
