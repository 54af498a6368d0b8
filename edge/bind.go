package edge

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/policy"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// binder validates binds and builds their endpoints: which names and
// addresses an account may hold (bind ACL, reservations and their region,
// the base domain, the TCP port range), the endpoint options, the TCP
// ports endpoints listen on, and the bind tokens that let a reconnecting
// agent keep its name. It reads the snapshot; it routes nothing.
type binder struct {
	region        string
	baseDomain    string
	defaultMinTLS uint16
	floorMinTLS   uint16
	snap          *snapshotHolder
	gates         *ipGates
	tokens        *bindTokens
	tcp           *tcpListeners
	tcpRange      portRange
	tcpHost       string
	httpsPort     func() int   // the public HTTPS port, known once the edge listens
	aclRefused    atomic.Int64 // binds refused by the bind ACL (TG_619)
}

// Bind creates an endpoint for the agent. Only HTTP(S) endpoints are served
// by this edge so far; every refusal carries a code and says what to do.
func (s *agentSession) Bind(ctx context.Context, req *tunnel.Bind) *tunnel.BindResp {
	ident := s.Identity()
	if ident == nil {
		return bindError(codes.NewError(codes.NotAuthenticated, "Authenticate before binding endpoints."))
	}
	ep, opts, err := s.edge.binds.prepareBind(req, ident, s)
	if err != nil {
		s.log.Info("bind refused", zap.String("proto", req.Proto), zap.String("code", string(err.Code)), zap.String("reason", err.Message))
		return bindError(err)
	}
	if err := s.install(ctx, ep, req.Extra.Token, ident); err != nil {
		if ep.release != nil {
			ep.release()
		}
		s.log.Info("bind refused", zap.String("endpoint", ep.url), zap.String("code", string(err.Code)), zap.String("reason", err.Message))
		return bindError(err)
	}
	s.log.Info("endpoint bound", zap.String("endpoint", ep.url), zap.String("endpoint_id", ep.id), zap.String("forwards_to", ep.forwardsTo))
	s.edge.SessionsChanged()
	return &tunnel.BindResp{
		ID:    ep.bindID,
		URL:   ep.url,
		Proto: req.Proto,
		Opts:  opts,
		Extra: tunnel.BindRespExtra{Token: s.edge.tokens.issue(ident.Account.ID, ep.proto, ep.key), TunnelID: ep.id},
	}
}

func bindError(err *codes.Error) *tunnel.BindResp { return &tunnel.BindResp{Error: err.Error()} }

// prepareBind validates a bind of any proto and returns the endpoint to
// install, served by owner, and the options to echo back.
func (b *binder) prepareBind(req *tunnel.Bind, ident *authn.Identity, owner EndpointOwner) (*Endpoint, any, *codes.Error) {
	ep, opts, err := b.prepareProto(req, ident, owner)
	if err != nil && err.Code == codes.BindACL {
		b.aclRefused.Add(1)
	}
	return ep, opts, err
}

func (b *binder) prepareProto(req *tunnel.Bind, ident *authn.Identity, owner EndpointOwner) (*Endpoint, any, *codes.Error) {
	switch req.Proto {
	case "http", "https":
		return b.bindHTTP(req, ident, owner)
	case "tcp":
		return b.bindTCP(req, ident, owner)
	case "tls":
		return b.bindTLS(req, ident, owner)
	}
	return nil, nil, codes.NewError(codes.BindProto, "Unknown endpoint protocol %q: use http, https, tcp or tls.", req.Proto)
}

// NewEndpoint validates a bind (proto http, https, tcp or tls) for ident
// against the current snapshot, as an agent's Bind is validated, and
// returns the endpoint, served by owner. The endpoint holds what it needs
// (a TCP port) but is not routed yet: Route installs it, Unbind releases
// it. Refusals carry a code and say what to do.
func (e *Edge) NewEndpoint(req *tunnel.Bind, ident *authn.Identity, owner EndpointOwner) (*Endpoint, *codes.Error) {
	ep, _, err := e.binds.prepareBind(req, ident, owner)
	return ep, err
}

// Route installs ep, from NewEndpoint, in the route table unless another
// endpoint holds its name or address, here or on another edge of the
// region; then ep is released and the refusal is codes.BindTaken. Nothing
// is taken over; an SSH session asks for no pooling.
func (e *Edge) Route(ep *Endpoint) *codes.Error {
	if id := ep.session.Identity(); id != nil {
		ep.accountID = id.Account.ID
	}
	if s, ok := ep.session.(interface{ ID() string }); ok {
		ep.sessionID = s.ID()
	}
	if err := e.leases.claim(context.Background(), ep, false); err != nil {
		if ep.release != nil {
			ep.release()
		}
		return err
	}
	if _, _, ok := e.router.bind(ep, nil); !ok {
		if ep.release != nil {
			ep.release()
		}
		return codes.NewError(codes.BindTaken, "%s is already bound by another session. Stop it, or choose another name.", ep.url)
	}
	return nil
}

// Unbind removes ep from the route table if it still holds its key, and
// releases what it holds. Safe to call more than once.
func (e *Edge) Unbind(ep *Endpoint) { e.router.unbind(ep) }

// BindAllowed re-checks, against snap, whether ident may still hold ep:
// its bind ACL and the reservation rules a new bind obeys. nil allows.
func (e *Edge) BindAllowed(snap *snapshot.Snapshot, ident *authn.Identity, ep *Endpoint) *codes.Error {
	return e.binds.checkBindAllowed(snap, ident, ep.proto, ep.key)
}

// bindHTTP validates an HTTP(S) bind and returns the endpoint to install
// and the options to echo back; owner is the session that will serve it.
func (b *binder) bindHTTP(req *tunnel.Bind, ident *authn.Identity, owner EndpointOwner) (*Endpoint, any, *codes.Error) {
	opts, derr := tunnel.DecodeHTTPOptions(req.Opts)
	if derr != nil {
		return nil, nil, unreadableOptions(derr)
	}
	if err := refuseUnsupported(opts.Unsupported, opts.TrafficPolicy); err != nil {
		return nil, nil, err
	}
	minTLS, terr := policy.MinTLSVersion(opts.MinTLSVersion, b.defaultMinTLS, b.floorMinTLS)
	if terr != nil {
		return nil, nil, codes.NewError(codes.BindMinTLS, "%v.", terr)
	}

	host, herr := requestedHost(opts, b.baseDomain)
	if herr != nil {
		return nil, nil, herr
	}
	if host == "" {
		host = b.unnamedHost(req.Extra.Token, ident.Account.ID, "https")
	}
	snap := b.snap.Load()
	if err := b.checkBindAllowed(snap, ident, "https", host); err != nil {
		return nil, nil, err
	}
	access, aerr := b.gates.newEndpointAccess(snap, ident.Account.ID, opts.IPRestriction, opts.BasicAuth, opts.Auth)
	if aerr != nil {
		return nil, nil, aerr
	}
	hsts, hstsOpt, herr := newEndpointHSTS(opts.HSTS, host, b.snap)
	if herr != nil {
		return nil, nil, herr
	}
	ep := newEndpoint(req, owner, "https", host, b.publicHTTPSURL(host), access)
	ep.minTLS, ep.hsts, opts.HSTS = minTLS, hsts, hstsOpt
	opts.URL = ep.url
	opts.Hostname = host
	opts.Unsupported = nil
	redactBasicAuth(opts)
	return ep, opts, nil
}

// newEndpoint returns the endpoint a bind creates, with what every proto
// sets: a new ep_ ID, the agent's bind ID (a random one when it sent none),
// its forwards-to, the start time, the owner and the access checks. The
// caller sets the proto's own fields.
func newEndpoint(req *tunnel.Bind, owner EndpointOwner, proto, key, publicURL string, access *endpointAccess) *Endpoint {
	bindID := req.ID
	if bindID == "" {
		bindID = randomHex(12)
	}
	return &Endpoint{
		id:         ids.New(ids.PrefixEndpoint),
		bindID:     bindID,
		key:        key,
		url:        publicURL,
		proto:      proto,
		forwardsTo: req.ForwardsTo,
		startedAt:  time.Now().UTC(),
		session:    owner,
		access:     access,
		pooling:    req.Extra.PoolingEnabled,
	}
}

// redactBasicAuth removes the passwords from options echoed to the agent.
func redactBasicAuth(o *tunnel.HTTPOptions) {
	o.Auth = ""
	if o.BasicAuth == nil {
		return
	}
	creds := make([]tunnel.BasicAuthCredential, len(o.BasicAuth.Credentials))
	for i, c := range o.BasicAuth.Credentials {
		creds[i] = tunnel.BasicAuthCredential{Username: c.Username}
	}
	o.BasicAuth = &tunnel.BasicAuth{Credentials: creds}
}

// requestedHost extracts the hostname an HTTP bind asks for from URL,
// Domain, Hostname or Subdomain (the SDKs use different ones), normalised to
// lower-case punycode without a trailing dot (policy.NormalizeDomainPattern:
// a leading "*." asks for a wildcard endpoint, which checkBindAllowed
// allows only for a reserved wildcard domain). "" means none was asked for.
func requestedHost(o *tunnel.HTTPOptions, base string) (string, *codes.Error) {
	var raw string
	switch {
	case o.URL != "":
		return urlHost(o.URL, "https", base, "https", "http")
	case o.Domain != "":
		raw = o.Domain
	case o.Hostname != "":
		raw = o.Hostname
	case o.Subdomain != "":
		raw = o.Subdomain + "." + base
	default:
		return "", nil
	}
	host, err := policy.NormalizeDomainPattern(strings.TrimSpace(raw))
	if err != nil {
		return "", codes.NewError(codes.BindURL, "The hostname %q is not valid: %v.", raw, policy.HostnameReason(err))
	}
	return host, nil
}

// urlHost returns the normalised host of a bind URL, which must have one
// of schemes (url.Parse lower-cases it), a host, and no path, query or
// user info; the errors suggest show://NAME.base.
func urlHost(rawURL, show, base string, schemes ...string) (string, *codes.Error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || !slices.Contains(schemes, u.Scheme) {
		return "", codes.NewError(codes.BindURL, "The URL %q is not valid: use %s://NAME.%s.", rawURL, show, base)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return "", codes.NewError(codes.BindURL, "The URL %q must not have a path, query or user info: use %s://NAME.%s.", rawURL, show, base)
	}
	host, nerr := policy.NormalizeDomainPattern(u.Hostname())
	if nerr != nil {
		return "", codes.NewError(codes.BindURL, "The hostname %q is not valid: %v.", u.Hostname(), policy.HostnameReason(nerr))
	}
	return host, nil
}

// checkBindAllowed decides whether ident may bind host (for proto "https"
// or "tls"; "tcp" addresses go to checkTCPBindAllowed): the credential's
// bind ACL, then the name itself:
//   - a domain reserved by this account in this edge's region, or a name
//     one label under a wildcard domain it reserved there
//     (snapshot.CoveringReservedDomain);
//   - a wildcard "*.<parent>" only when this account reserved exactly that
//     wildcard domain (docs/wildcard-endpoints.md), never "*.<base>"
//     (TG_408), whose reservation covers no name one label under the base;
//   - otherwise a name one label under the base domain that no other
//     account reserved.
func (b *binder) checkBindAllowed(snap *snapshot.Snapshot, ident *authn.Identity, proto, host string) *codes.Error {
	if proto == "tcp" {
		return b.checkTCPBindAllowed(snap, ident, host)
	}
	if !policy.BindAllowed(ident.ACL, host) {
		return codes.NewError(codes.BindACL, "This credential's bind ACL does not allow %s. Ask an administrator to add 'bind:%s' to it, or use another name.", host, host)
	}
	base := b.baseDomain
	if host == "*."+base {
		return codes.NewError(codes.BindWildcardBase, "%s would take every name under this edge's base domain; bind NAME.%s, or reserve a wildcard of your own such as *.team.%s.", host, base, base)
	}
	rd, ok := snap.CoveringReservedDomain(host)
	if ok && rd.Domain == "*."+base {
		ok = false // names one label under the base domain are first come, first served
	}
	if ok {
		if rd.AccountID != ident.Account.ID {
			return codes.NewError(codes.BindReservedOther, "%s is reserved by another account. Choose another name.", host)
		}
		if rd.Region != "" && rd.Region != b.region {
			return codes.NewError(codes.BindRegion, "%s is reserved in region %s, but this edge serves region %s. Connect to a %s edge (--region %s).", host, rd.Region, b.region, rd.Region, rd.Region)
		}
		return nil
	}
	if strings.HasPrefix(host, "*.") {
		return codes.NewError(codes.BindWildcardUnreserved, "The wildcard endpoint %s needs the wildcard domain %s reserved in this account first: tollgate api reserved-domains create --domain '%s' --region %s.", host, host, host, b.region)
	}
	label, under := strings.CutSuffix(host, "."+base)
	if !under || label == "" || strings.Contains(label, ".") {
		return codes.NewError(codes.BindOutsideBase, "%s is not a name this edge serves: use NAME.%s, or reserve the domain (or a wildcard *.PARENT covering it, one label deep) first.", host, base)
	}
	return nil
}

// install puts ep in the route table. The region decides first (the
// control plane, through leases.go: another edge's holder refuses it unless
// it joins them or takes them over); then this edge's router: ep joins the
// endpoints at its key when each of them joins it (HA legs, a pool), takes
// a name held by another session over only when the bind token proves the
// same account bound it before (a reconnecting agent), and is otherwise
// refused.
func (s *agentSession) install(ctx context.Context, ep *Endpoint, token string, ident *authn.Identity) *codes.Error {
	tokenKey, tokenOK := s.edge.tokens.verify(token, ident.Account.ID, ep.proto)
	takeover := tokenOK && tokenKey == ep.key
	s.mu.Lock()
	ep.accountID, ep.sessionID, ep.instanceID = ident.Account.ID, s.id, s.instanceID
	s.mu.Unlock()
	if err := s.edge.leases.claim(ctx, ep, takeover); err != nil {
		return err
	}
	old, holder, ok := s.edge.router.bind(ep, func(holder *Endpoint) bool {
		if holder.session == s {
			return false
		}
		hid := holder.session.Identity()
		return takeover && hid != nil && hid.Account.ID == ident.Account.ID
	})
	if !ok {
		if holder.session == s {
			return codes.NewError(codes.BindTaken, "This session already has an endpoint at %s.", ep.url)
		}
		if ep.pooling && holder.accountID == ep.accountID && !holder.pooling {
			return codes.NewError(codes.BindTaken, "%s is already bound by another agent session that did not ask for pooling. Restart it with --pooling-enabled (pooling_enabled in the SDKs) so that both share the URL, stop it, or choose another name.", ep.url)
		}
		return codes.NewError(codes.BindTaken, "%s is already bound by another agent session. Stop that agent, or choose another name; agents of one account share a URL when each binds it with --pooling-enabled.", ep.url)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.edge.router.unbind(ep)
		return codes.NewError(codes.SessionStopped, "The session closed while binding.")
	}
	if prev, dup := s.endpoints[ep.bindID]; dup {
		s.edge.router.unbind(prev)
	}
	s.endpoints[ep.bindID] = ep
	s.mu.Unlock()
	for _, o := range old {
		o.session.DropEndpoint(o, codes.BindTaken, "This endpoint was taken over by a newer session of the same agent.")
	}
	return nil
}

var nameEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomLabel returns a random 13-character DNS label (64 bits).
func randomLabel() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return nameEncoding.EncodeToString(b)
}

// unreadableOptions is the refusal of Bind options that do not decode.
func unreadableOptions(err error) *codes.Error {
	return codes.NewError(codes.BindOption, "The endpoint options could not be read: %v.", err)
}

// refuseUnsupported refuses options this edge must not silently ignore:
// any the decoder did not know, and a traffic policy.
func refuseUnsupported(unsupported []string, trafficPolicy string) *codes.Error {
	if len(unsupported) > 0 {
		return codes.NewError(codes.BindOption, "This edge does not support the option(s) %s; remove them and bind again.", strings.Join(unsupported, ", "))
	}
	if trafficPolicy != "" {
		return codes.NewError(codes.BindOption, "Traffic policies are not supported by this edge; remove the traffic policy and bind again.")
	}
	return nil
}

// checkProxyProto refuses a PROXY protocol version other than none, 1 or 2.
func checkProxyProto(v int32) *codes.Error {
	if v < 0 || v > 2 {
		return codes.NewError(codes.BindOption, "PROXY protocol version %d is not supported: use 1 or 2.", v)
	}
	return nil
}

// unnamedHost names an endpoint bound without a name: the name its bind
// token (re-sent by a reconnecting agent) holds for the account and proto,
// else a random one-label name under the base domain.
func (b *binder) unnamedHost(token, accountID, proto string) string {
	if key, ok := b.tokens.verify(token, accountID, proto); ok {
		return key
	}
	return randomLabel() + "." + b.baseDomain
}

// publicHTTPSURL returns the public URL of the HTTPS endpoint host: the
// public HTTPS port is left out when it is 443.
func (b *binder) publicHTTPSURL(host string) string {
	if p := b.httpsPort(); p != 443 {
		return "https://" + net.JoinHostPort(host, strconv.Itoa(p))
	}
	return "https://" + host
}
