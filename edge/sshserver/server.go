package sshserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/edge/limits"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// SSH ingress: `ssh -R 443:localhost:8080 -p 2222 HOST http` binds one
// endpoint per connection, authenticated by the client's public key
// against the snapshot's SSH credentials (docs/ssh-tunnels.md). The session's
// identity is the key that signed: x/crypto/ssh keeps
// only the permissions of the key whose signature verified, and the
// credential is looked up again from those permissions after the handshake.

// Edge is what the SSH server needs of the edge's data plane (an
// *edge.Edge).
type Edge interface {
	// Snapshot returns the current snapshot; never nil.
	Snapshot() *snapshot.Snapshot
	// Addressing returns the edge's region, base domain and TCP host.
	Addressing() edge.Addressing
	// CheckAgentIP applies the account's agent IP restriction to a
	// session from addr (TG_115), logging a refusal to log.
	CheckAgentIP(accountID string, addr netip.Addr, log *zap.Logger) *codes.Error
	// RecheckAgentIP re-applies it to a live session after a new
	// snapshot, quietly; a non-nil error (TG_115) closes the session.
	RecheckAgentIP(accountID string, addr netip.Addr) *codes.Error
	// NewEndpoint validates a bind and returns its endpoint, not routed.
	NewEndpoint(req *tunnel.Bind, ident *authn.Identity, owner edge.EndpointOwner) (*edge.Endpoint, *codes.Error)
	// Route installs an endpoint unless its name is taken.
	Route(ep *edge.Endpoint) *codes.Error
	// Unbind removes an endpoint and releases what it holds.
	Unbind(ep *edge.Endpoint)
	// BindAllowed re-checks an endpoint against a new snapshot.
	BindAllowed(snap *snapshot.Snapshot, ident *authn.Identity, ep *edge.Endpoint) *codes.Error
	// Attach makes a session one of the edge's (reports, API commands,
	// snapshot re-checks) until detach.
	Attach(s edge.Session) (detach func())
	// SessionsChanged schedules a report of the edge's sessions.
	SessionsChanged()
	// Draining returns a channel closed when the edge begins to drain:
	// the server stops accepting then (edge.Edge.Shutdown, step 1).
	Draining() <-chan struct{}
}

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// HostKey is the server's host key (LoadHostKey). Required.
	HostKey ssh.Signer
	// KeepaliveInterval is how often an SSH client must answer a
	// keepalive; one unanswered for a further interval closes the
	// connection. Default 15s.
	KeepaliveInterval time.Duration
	// Logger receives structured logs; the edge's region is added.
	// Default: no logs.
	Logger *zap.Logger
	// Throttle throttles failed logins per client address
	// (edge.Edge.SSHLoginThrottle): a connection that offered keys and
	// had none accepted is one failure; past the budget, the address's
	// next logins are refused with a TG_3241 banner before any key is
	// looked at. nil = no throttle.
	Throttle *limits.Throttle
}

// hostKeyFile is the edge's persistent Ed25519 host key in the data dir.
const hostKeyFile = "ssh_host_ed25519_key"

// Permissions extension keys carrying the matched credential.
const (
	extCredential  = "tollgate-credential-id"
	extFingerprint = "tollgate-fingerprint"
)

// handshakeTimeout bounds an SSH handshake.
const handshakeTimeout = 15 * time.Second

// Server is the SSH reverse-tunnel ingress of one edge: it serves `ssh -R`
// clients, each as one agent session with one endpoint, bound through the
// edge. Create it with New, run it with Serve, stop it with Shutdown or
// Close.
type Server struct {
	cfg       Config
	edge      Edge
	addr      edge.Addressing
	log       *zap.Logger
	sshConfig *ssh.ServerConfig

	ctx    context.Context // of every connection; cancelled by Shutdown and Close
	cancel context.CancelFunc

	mu       sync.Mutex
	ln       net.Listener
	active   int           // connections being served
	idle     chan struct{} // closed when active drops to 0; nil = nobody waits
	sessions map[*session]struct{}
	draining bool          // the listener closed because the edge drains; no new sessions
	stopping chan struct{} // closed by Shutdown and Close
	stopOnce sync.Once
}

// New validates cfg and returns a Server that binds endpoints through e.
// It opens nothing and starts nothing.
func New(cfg Config, e Edge) (*Server, error) {
	if cfg.HostKey == nil || e == nil {
		return nil, errors.New("sshserver: a host key and the edge are required")
	}
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = 15 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	addr := e.Addressing()
	s := &Server{
		cfg:      cfg,
		edge:     e,
		addr:     addr,
		log:      log.With(zap.String("region", addr.Region)),
		sessions: make(map[*session]struct{}),
		stopping: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.sshConfig = s.serverConfig()
	return s, nil
}

// LoadHostKey reads the SSH host key from dataDir, creating it on first
// use; dataDir "" gives a fresh key that is not kept.
func LoadHostKey(dataDir string) (ssh.Signer, error) {
	if dataDir != "" {
		path := filepath.Join(dataDir, hostKeyFile)
		b, err := os.ReadFile(path)
		if err == nil {
			s, perr := ssh.ParsePrivateKey(b)
			if perr != nil {
				return nil, fmt.Errorf("reading SSH host key %s: %w", path, perr)
			}
			return s, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("reading SSH host key %s: %w", path, err)
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if dataDir != "" {
		block, err := ssh.MarshalPrivateKey(priv, "tollgate edge host key")
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dataDir, hostKeyFile)
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, fmt.Errorf("writing SSH host key %s: %w", path, err)
		}
	}
	return ssh.NewSignerFromKey(priv)
}

// Listen listens on addr for Serve. A failure is a *codes.Error with code
// TG_9001 naming the address.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, codes.NewError(codes.ListenFailed, "Cannot listen for SSH on %s: %v. Free the port or choose another address.", addr, err).WithCause(err)
	}
	return ln, nil
}

// SSH algorithms of the ingress (issue 12 §5), chosen so that ssh-audit
// reports no [fail]:
//   - key exchange: ML-KEM-768+X25519 and Curve25519 only; the NIST ECDH
//     curves (ecdh-sha2-nistp*) and finite-field groups are left out;
//   - MACs: encrypt-then-MAC only (hmac-sha2-*-etm@openssh.com); the
//     AEAD ciphers carry their own;
//   - strict key exchange (kex-strict-s-v00@openssh.com, the Terrapin
//     countermeasure, CVE-2023-48795) is always offered by x/crypto/ssh.
var (
	sshKeyExchanges = []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519}
	sshCiphers      = []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM, ssh.CipherAES256GCM,
		ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR}
	sshMACs = []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM}
)

// serverConfig returns the server config: public-key authentication only,
// the algorithms above, no SHA-1 or RSA (SHA-1) signatures.
func (s *Server) serverConfig() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		Config: ssh.Config{
			KeyExchanges: sshKeyExchanges,
			Ciphers:      sshCiphers,
			MACs:         sshMACs,
		},
		PublicKeyAuthAlgorithms: []string{ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519,
			ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKECDSA256,
			ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512},
		PublicKeyCallback: s.publicKey,
		ServerVersion:     "SSH-2.0-Tollgate",
	}
	cfg.AddHostKey(s.cfg.HostKey)
	return cfg
}

// publicKey authenticates a client key against the current snapshot
// (authn.VerifySSHKey). The client sees only "Permission denied" for a key
// that is not valid; the cause is logged. A valid key from an address the
// account's agent IP restriction refuses is refused with a TG_115 banner.
func (s *Server) publicKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if s.cfg.Throttle != nil {
		if wait := s.cfg.Throttle.Wait("", edge.PeerAddr(meta.RemoteAddr()).Addr()); wait > 0 {
			secs := int((wait + time.Second - 1) / time.Second)
			rerr := codes.NewError(codes.AuthThrottled, "Too many failed SSH logins from your address. Retry in %d seconds with a registered key.", max(secs, 1))
			return nil, &ssh.BannerError{Err: errThrottled, Message: "tollgate: " + rerr.Error() + "\n"}
		}
	}
	fp := ssh.FingerprintSHA256(key)
	snap := s.edge.Snapshot()
	ident, err := authn.VerifySSHKey(snap, fp, key.Marshal())
	if err != nil && snap.Revision() == 0 {
		// No snapshot yet (none from the control plane, none persisted):
		// the key may well be registered. Say so rather than "unknown key".
		return nil, &ssh.BannerError{Err: errEdgeNotReady, Message: "tollgate: " + errEdgeNotReady.Error() + "\n"}
	}
	if err != nil {
		if ce := s.log.Check(zap.DebugLevel, "SSH key refused"); ce != nil {
			ce.Write(zap.String("remote_addr", meta.RemoteAddr().String()), zap.String("fingerprint", fp), zap.Error(err))
		}
		return nil, err
	}
	// The account's agent IP restriction covers SSH sessions too. The
	// refusal reaches the client as an authentication banner (OpenSSH
	// prints it), since no session channel exists yet.
	if rerr := s.edge.CheckAgentIP(ident.Account.ID, edge.PeerAddr(meta.RemoteAddr()).Addr(), s.log); rerr != nil {
		return nil, &ssh.BannerError{Err: rerr, Message: "tollgate: " + rerr.Error() + "\n"}
	}
	return &ssh.Permissions{Extensions: map[string]string{extCredential: ident.CredentialID, extFingerprint: fp}}, nil
}

// errEdgeNotReady refuses an SSH key while the edge holds no snapshot, as
// the edge refuses authtokens then (codes.EdgeNotReady): try again later.
var errEdgeNotReady = codes.NewError(codes.EdgeNotReady,
	"This edge has not received its first snapshot from the control plane yet, so it cannot check SSH keys. Try again in a moment; if this lasts, check that the edge reaches its control plane.")

// errThrottled is the cause of a login refused by the throttle.
var errThrottled = errors.New("sshserver: client address throttled for failed logins")

// loginFailed records a failed login of the client at remote when the
// handshake ended in authentication with at least one key refused (not a
// client that only tried "none", nor a refusal by the throttle itself).
func (s *Server) loginFailed(remote net.Addr, err error) {
	var ae *ssh.ServerAuthError
	if s.cfg.Throttle == nil || !errors.As(err, &ae) {
		return
	}
	refused := false
	for _, e := range ae.Errors {
		if errors.Is(e, errThrottled) || errors.Is(e, errEdgeNotReady) {
			return // not the client's failure
		}
		if !errors.Is(e, ssh.ErrNoAuth) {
			refused = true
		}
	}
	if refused {
		s.cfg.Throttle.Failed("", edge.PeerAddr(remote).Addr())
	}
}

// HostKeyFingerprint returns the SHA256 fingerprint of the server's host
// key ("SHA256:...").
func (s *Server) HostKeyFingerprint() string {
	return ssh.FingerprintSHA256(s.cfg.HostKey.PublicKey())
}

// Serve accepts SSH clients on ln until the edge begins to drain, or
// Shutdown or Close, serving each on its own goroutine. When the edge
// drains, ln closes at once (new SSH connections are refused while the
// edge's requests in flight finish) and the sessions go on until Shutdown
// closes them. It returns nil once stopped, or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	select {
	case <-s.stopping:
		s.mu.Unlock()
		ln.Close()
		return nil
	default:
	}
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("SSH ingress listening", zap.String("addr", ln.Addr().String()), zap.String("host_key_fingerprint", s.HostKeyFingerprint()))
	served := make(chan struct{})
	defer close(served)
	go s.closeOnDrain(served)
	err := edge.AcceptLoop(s.ctx, ln, s.handle)
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if err == nil && draining {
		<-s.stopping // Serve returns once stopped, as before drains closed ln
	}
	return err
}

// closeOnDrain closes the listener when the edge begins to drain, and
// refuses sessions from then on; it returns then, or when Serve returns.
func (s *Server) closeOnDrain(served <-chan struct{}) {
	select {
	case <-s.edge.Draining():
	case <-served:
		return
	}
	s.mu.Lock()
	s.draining = true
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.log.Info("SSH ingress: the edge drains; no new SSH connections")
}

// track counts an authenticated connection in (+1; false when the server
// is stopping) or out (-1).
func (s *Server) track(delta int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if delta > 0 {
		if s.draining {
			return false
		}
		select {
		case <-s.stopping:
			return false
		default:
		}
	}
	s.active += delta
	if s.active == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	return true
}

// stop closes the listener and tells every session the edge is stopping.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		close(s.stopping)
		ln := s.ln
		s.mu.Unlock()
		if ln != nil {
			ln.Close()
		}
	})
}

// Shutdown stops accepting, closes every session with a message that the
// edge is shutting down, and waits until their connections have ended
// (each client is given a few seconds to hang up) or ctx ends. A
// connection still in its handshake is not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	defer s.cancel()
	s.mu.Lock()
	if s.active == 0 {
		s.mu.Unlock()
		return nil
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.stop()
	s.cancel()
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.conn.Close()
	}
	return nil
}
