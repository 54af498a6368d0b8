package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// publicServer serves public clients: the HTTPS listener (TLS handshake
// with the minimum version of the name, TLS-ALPN-01 validations, tls
// endpoints passed through or terminated, HTTP endpoints through the HTTP
// proxy) and the listeners of TCP endpoints. Every connection is routed by
// the router and admitted by the IP gates before a byte goes to an agent.
type publicServer struct {
	log              *zap.Logger
	snap             *snapshotHolder
	router           *router
	gates            *ipGates
	guard            *guard
	proxy            *httpproxy.Proxy
	certs            CertSource
	handshakeTimeout time.Duration
	defaultMinTLS    uint16
	floorMinTLS      uint16
	tls              *publicTLS   // configs by minimum version, ticket keys (publictls.go)
	mem              *memGuard    // refuses new connections while memory is short
	raw              *rawConns    // TCP/TLS endpoint connections, for drain
	fwd              *peering     // forwards to sibling edges; nil = off (peer.go)
	httpConns        atomic.Int64 // connections in the HTTP proxy
	stats            *Metrics     // traffic counters and records (metrics.go)
}

// serveHTTPS accepts public HTTPS clients on ln until it closes or ctx
// ends.
func (p *publicServer) serveHTTPS(ctx context.Context, ln net.Listener) error {
	return AcceptLoop(ctx, ln, func(c net.Conn) {
		if !p.mem.admit(c) {
			return
		}
		if release, ok := p.guard.admitConn(c, "https"); ok {
			defer release()
			p.handleHTTPS(ctx, c)
		}
	})
}

// acmeTLSALPN is the ALPN protocol of ACME TLS-ALPN-01 validation (RFC 8737).
const acmeTLSALPN = "acme-tls/1"

// acmeChallengeTLS serves TLS-ALPN-01 validation handshakes: the CA offers
// only "acme-tls/1" and the CertSource returns the challenge certificate.
// The connection is closed right after the handshake.
var acmeChallengeTLS = &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{acmeTLSALPN},
	CipherSuites: publicCipherSuites, SessionTicketsDisabled: true}

// HTTPChallengeHandler is implemented by a CertSource that obtains
// certificates over ACME HTTP-01 (certs.Manager): the public HTTP listener
// lets it answer /.well-known/acme-challenge/ before redirecting.
type HTTPChallengeHandler interface {
	HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool
}

// tlsConfigForClient picks the tls.Config of the minimum TLS version for
// the SNI: the min_tls_version of the reserved domain covering the name
// (clamped to the edge floor), else the edge default; a bound endpoint's
// own minimum may raise it, never lower a reservation's. A TLS-ALPN-01
// validation handshake gets acmeChallengeTLS. A client that offers no
// TLS 1.2 gets the legacy config when the name allows TLS 1.0 or 1.1
// (publictls.go).
func (p *publicServer) tlsConfigForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeTLSALPN {
		c := acmeChallengeTLS.Clone()
		c.GetCertificate = p.certs.GetCertificate
		return c, nil
	}
	name := serverName(hello.ServerName)
	minV := p.defaultMinTLS
	rv := p.reservedMinTLS(name)
	if rv != 0 {
		minV = rv
	}
	if ep, ok := p.router.lookup(name); ok {
		minV = max(ep.minTLS, rv)
	}
	return p.tls.config(minV, maxVersion(hello.SupportedVersions)), nil
}

// reservedMinTLS is the minimum TLS version set on the reserved domain
// that covers name (exact, or "*.<parent>" for a name one label under
// parent), clamped to the edge floor; 0 when none is set.
func (p *publicServer) reservedMinTLS(name string) uint16 {
	rd, ok := p.snap.Load().CoveringReservedDomain(name)
	if !ok || rd.MinTLSVersion == "" {
		return 0
	}
	v, err := policy.ParseTLSVersion(rd.MinTLSVersion)
	if err != nil {
		return p.floorMinTLS
	}
	return max(v, p.floorMinTLS)
}

// CertificateAllowed reports whether a certificate may be obtained on
// demand for a name one label under the base domain: only for a name an
// endpoint is bound to, so a random SNI spends none of the CA's rate limit
// (certs.Config.AllowSubdomain). Safe to call from handshakes.
func (e *Edge) CertificateAllowed(name string) bool {
	_, ok := e.router.lookup(serverName(name))
	return ok
}

// Snapshot returns the edge's current snapshot (certs.Config.Snapshot);
// never nil.
func (e *Edge) Snapshot() *snapshot.Snapshot { return e.snap.Load() }

func (p *publicServer) handleHTTPS(ctx context.Context, c net.Conn) {
	pc := newPeekConn(c) // tls endpoints: see tlspass.go
	// BatchRecords: the HTTP relay writes a large response's TLS records
	// several per system call.
	tc := tls.Server(tunnel.BatchRecords(pc), &tls.Config{GetConfigForClient: p.passthroughOr(pc, p.tlsConfigForClient)})
	err := handshakeApart(ctx, tc, p.handshakeTimeout)
	if err != nil && (p.passthroughTLS(pc, err) || p.forwardedTLS(ctx, pc, err)) {
		return
	}
	if err != nil {
		p.stats.tlsFailures[tlsFailure(err)].Add(1)
		if ce := p.log.Check(zap.DebugLevel, "public TLS handshake failed"); ce != nil {
			ce.Write(zap.String("remote_addr", c.RemoteAddr().String()), zap.Error(err))
		}
		c.Close()
		return
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol == acmeTLSALPN {
		tc.Close() // a TLS-ALPN-01 validation: the handshake was all of it
		return
	}
	if p.terminatedTLS(pc, tc) {
		return
	}
	p.httpConns.Add(1)
	p.stats.conns[kindHTTPS].Add(1)
	p.proxy.ServeConn(ctx, tc, serverName(st.ServerName), st.NegotiatedProtocol)
	p.httpConns.Add(-1)
}

// handshakeApart runs tc's handshake, bounded by timeout, on a goroutine
// of its own and waits for it. A handshake grows its goroutine's stack to
// 16–32 KiB (certificate signing, key exchange), and Go gives a stack back
// only when a collection finds it mostly unused: run on the connection's
// goroutine, that stack would stay with the connection for its life.
// Apart, it goes back to the runtime's stack cache for the next handshake.
func handshakeApart(ctx context.Context, tc *tls.Conn, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		hctx, cancel := context.WithTimeout(ctx, timeout)
		done <- tc.HandshakeContext(hctx)
		cancel()
	}()
	return <-done
}

// Resolve implements httpproxy.Resolver: the HTTPS endpoint bound at host
// (the next member of a pool).
func (p *publicServer) Resolve(host string) (httpproxy.Endpoint, bool) {
	ep, ok := p.router.pick(host)
	if !ok || ep.proto != "https" {
		return nil, false
	}
	return ep, true
}

// httpRedirector serves the plain-HTTP listener: every request is redirected
// to the same URL on HTTPS.
type httpRedirector struct {
	srv   *http.Server
	guard *guard
}

func newHTTPRedirector(e *Edge) *httpRedirector {
	challenges, _ := e.deps.Certs.(HTTPChallengeHandler)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if challenges != nil && challenges.HandleHTTPChallenge(w, r) {
			return
		}
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host, err := policy.NormalizeHostname(host)
		if err != nil || host == "" {
			http.Error(w, "Bad Host header ["+string(codes.BadRequest)+"]", http.StatusBadRequest)
			return
		}
		target := e.binds.publicHTTPSURL(host) + r.URL.RequestURI()
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	})
	return &httpRedirector{guard: e.guard, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(e.log.Named("http")),
	}}
}

func (r *httpRedirector) serve(ln net.Listener) error {
	err := r.srv.Serve(r.guard.limitListener(ln, "http"))
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (r *httpRedirector) shutdown(ctx context.Context) error { return r.srv.Shutdown(ctx) }

// serverName puts a TLS SNI value in the normal form routes are keyed by
// (policy.NormalizeHostname; no allocation for a name already normal). A
// value that is not a hostname keeps its lower-case form, which matches no
// route: it must never turn into "" and be taken for a handshake without
// SNI, whose requests are routed by Host alone.
func serverName(sni string) string {
	if name, err := policy.NormalizeHostname(sni); err == nil {
		return name
	}
	return strings.ToLower(sni)
}
