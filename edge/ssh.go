package edge

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
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge/internal/httpproxy"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// SSH ingress: `ssh -R 443:localhost:8080 -p 2222 HOST http` binds one
// endpoint per connection, authenticated by the client's public key
// against the snapshot's SSH credentials (reference/platform-behaviour.md
// §4.7). The session's identity is the key that signed: x/crypto/ssh keeps
// only the permissions of the key whose signature verified, and the
// credential is looked up again from those permissions after the handshake.

// sshHostKeyFile is the edge's persistent Ed25519 host key in the data dir.
const sshHostKeyFile = "ssh_host_ed25519_key"

// Permissions extension keys carrying the matched credential.
const (
	sshExtCredential  = "tollgate-credential-id"
	sshExtFingerprint = "tollgate-fingerprint"
)

// SSH timing.
const (
	sshHandshakeTimeout = 15 * time.Second
	// sshCommandWait bounds how long a tcpip-forward waits for the command
	// (OpenSSH sends its forwards first, then opens the session).
	sshCommandWait = 10 * time.Second
	// sshForwardWait bounds how long a command waits for its tcpip-forward
	// (already sent; it only travels on another queue).
	sshForwardWait = 3 * time.Second
	// sshFinishGrace bounds the wait for the client to hang up after the
	// edge ended its command.
	sshFinishGrace = 3 * time.Second
)

// loadSSHHostKey reads the host key from dataDir, creating it on first use;
// dataDir "" gives a fresh key that is not kept.
func loadSSHHostKey(dataDir string) (ssh.Signer, error) {
	if dataDir != "" {
		path := filepath.Join(dataDir, sshHostKeyFile)
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
		path := filepath.Join(dataDir, sshHostKeyFile)
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, fmt.Errorf("writing SSH host key %s: %w", path, err)
		}
	}
	return ssh.NewSignerFromKey(priv)
}

// sshServerConfig returns the server config: public-key authentication
// only, modern algorithms only (no SHA-1 MACs, key exchanges or RSA
// signatures).
func (e *Edge) sshServerConfig() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		Config: ssh.Config{
			KeyExchanges: []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519,
				ssh.KeyExchangeECDHP256, ssh.KeyExchangeECDHP384, ssh.KeyExchangeECDHP521},
			Ciphers: []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM, ssh.CipherAES256GCM,
				ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR},
			MACs: []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM, ssh.HMACSHA256, ssh.HMACSHA512},
		},
		PublicKeyAuthAlgorithms: []string{ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519,
			ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKECDSA256,
			ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512},
		PublicKeyCallback: e.sshPublicKey,
		ServerVersion:     "SSH-2.0-Tollgate",
	}
	cfg.AddHostKey(e.sshHostKey)
	return cfg
}

// sshPublicKey authenticates a client key against the current snapshot.
// The client sees only "Permission denied" for a key that is not valid; the
// cause is logged. A valid key from an address the account's agent IP
// restriction refuses is refused with a TG_115 banner.
func (e *Edge) sshPublicKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	fp := ssh.FingerprintSHA256(key)
	ident, err := verifySSHKey(e.snap.Load(), fp, key.Marshal())
	if err != nil {
		e.metrics.authFailures.Add(1)
		if ce := e.log.Check(zap.DebugLevel, "SSH key refused"); ce != nil {
			ce.Write(zap.String("remote_addr", meta.RemoteAddr().String()), zap.String("fingerprint", fp), zap.Error(err))
		}
		return nil, err
	}
	// The account's agent IP restriction covers SSH sessions too. The
	// refusal reaches the client as an authentication banner (OpenSSH
	// prints it), since no session channel exists yet.
	if rerr := e.checkAgentIP(ident.Account.ID, addrPort(meta.RemoteAddr()).Addr(), e.log); rerr != nil {
		return nil, &ssh.BannerError{Err: rerr, Message: "tollgate: " + rerr.Error() + "\n"}
	}
	return &ssh.Permissions{Extensions: map[string]string{sshExtCredential: ident.CredentialID, sshExtFingerprint: fp}}, nil
}

// verifySSHKey finds the SSH credential of a key (by fingerprint, then the
// key bytes compared) and checks its owner and account are active.
func verifySSHKey(snap *snapshot.Snapshot, fingerprint string, keyBytes []byte) (*authn.Identity, error) {
	cred, ok := snap.SSHCredentialByFingerprint(fingerprint)
	if !ok {
		return nil, errSSHKeyUnknown
	}
	if keyBytes != nil {
		pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cred.PublicKey))
		if err != nil || string(pk.Marshal()) != string(keyBytes) {
			return nil, errSSHKeyUnknown
		}
	}
	acct, ok := snap.Account(cred.AccountID)
	if !ok || !acct.Active {
		return nil, errSSHKeyRevoked
	}
	owner, ok := snap.Principal(cred.OwnerID)
	if !ok || !owner.Active {
		return nil, errSSHKeyRevoked
	}
	return &authn.Identity{CredentialID: cred.ID, Account: acct, Principal: owner, ACL: cred.ACL}, nil
}

// SSH denials, as the SSH session shows them.
var (
	errSSHKeyUnknown = codes.NewError(codes.AuthtokenInvalid, "This SSH key is not registered. Add its public key as an SSH credential (POST /ssh_credentials).")
	errSSHKeyRevoked = codes.NewError(codes.CredentialRevoked, "This SSH key's credential was deleted, or its owner or account is deactivated.")
)

// SSHHostKeyFingerprint returns the SHA256 fingerprint of the edge's SSH
// host key ("SHA256:..."), or "" when SSH ingress is off.
func (e *Edge) SSHHostKeyFingerprint() string {
	if e.sshHostKey == nil {
		return ""
	}
	return ssh.FingerprintSHA256(e.sshHostKey.PublicKey())
}

// acceptSSH accepts SSH clients until the listener closes.
func (e *Edge) acceptSSH(ctx context.Context) error {
	return acceptLoop(ctx, e.sshLn, func(c net.Conn) { e.handleSSH(ctx, c) })
}

// sshForward is the client's tcpip-forward request (RFC 4254 §7.1).
type sshForward struct {
	addr string
	port uint32
	req  *ssh.Request
}

// sshSession is one SSH connection and the one endpoint it serves.
type sshSession struct {
	edge        *Edge
	id          string // ts_...
	conn        *ssh.ServerConn
	remote      netip.AddrPort
	startedAt   time.Time
	fingerprint string
	log         *zap.Logger

	fwdSet chan struct{} // closed when fwd is set
	bound  chan struct{} // closed when the bind was decided (either way)
	done   chan struct{} // closed when the connection has ended

	mu          sync.Mutex
	ident       *authn.Identity
	fwd         *sshForward
	connectPort uint32      // port named in forwarded-tcpip channels
	ep          *endpoint   // nil until bound
	out         ssh.Channel // the session channel, for messages; nil = none yet
	pty         bool        // the client asked for a terminal: lines end in \r\n
	closed      bool
	boundOnce   sync.Once
	closeOnce   sync.Once
}

// handleSSH runs one SSH connection to its end.
func (e *Edge) handleSSH(ctx context.Context, c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(sshHandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(c, e.sshConfig)
	if err != nil {
		if ce := e.log.Check(zap.DebugLevel, "SSH handshake failed"); ce != nil {
			ce.Write(zap.String("remote_addr", c.RemoteAddr().String()), zap.Error(err))
		}
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	fp := sc.Permissions.Extensions[sshExtFingerprint]
	ident, err := verifySSHKey(e.snap.Load(), fp, nil)
	if err != nil || ident.CredentialID != sc.Permissions.Extensions[sshExtCredential] {
		sc.Close()
		return
	}
	id := ids.New(ids.PrefixAgentSession)
	remote := addrPort(c.RemoteAddr())
	s := &sshSession{
		edge: e, id: id, conn: sc, remote: remote, startedAt: time.Now().UTC(), fingerprint: fp, ident: ident,
		fwdSet: make(chan struct{}), bound: make(chan struct{}), done: make(chan struct{}),
		log: e.log.WithLazy(zap.String("session_id", id), zap.String("remote_addr", remote.String()), zap.String("transport", "ssh"),
			zap.String("account_id", ident.Account.ID), zap.String("credential_id", ident.CredentialID)),
	}
	e.mu.Lock()
	e.sshSessions[s] = struct{}{}
	e.mu.Unlock()
	s.log.Info("SSH session started", zap.String("client_version", string(sc.ClientVersion())))
	e.sessionsChanged()

	sctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(sctx)
	g.Go(func() error { s.serveGlobalRequests(gctx, reqs); return nil })
	g.Go(func() error { s.serveChannels(gctx, chans); return nil })
	g.Go(func() error { s.keepalive(gctx); return nil })
	g.Go(func() error {
		select {
		case <-gctx.Done():
		case <-e.stopping:
			s.closeWithMessage("The edge is shutting down. [" + string(codes.SessionStopped) + "]")
		}
		return nil
	})
	werr := sc.Wait()
	close(s.done)
	cancel()
	_ = g.Wait()
	s.ended(werr)
}

// serveGlobalRequests answers global requests in order: tcpip-forward
// (answered once the command decided the endpoint, so replies keep their
// order), cancel-tcpip-forward, and false to anything else that wants a
// reply (keepalive@openssh.com, no-more-sessions@openssh.com...).
func (s *sshSession) serveGlobalRequests(ctx context.Context, reqs <-chan *ssh.Request) {
	for req := range reqs {
		switch req.Type {
		case "tcpip-forward":
			var p struct {
				Addr string
				Port uint32
			}
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			s.mu.Lock()
			if s.fwd != nil {
				s.mu.Unlock()
				s.say(true, "tollgate: one endpoint per SSH connection; the extra -R %s:%d is ignored.", p.Addr, p.Port)
				_ = req.Reply(false, nil)
				continue
			}
			s.fwd = &sshForward{addr: p.Addr, port: p.Port, req: req}
			close(s.fwdSet)
			s.mu.Unlock()
			select {
			case <-s.bound:
			case <-time.After(sshCommandWait):
				s.log.Info("SSH session closed: no command after the -R forward")
				s.decide(nil)
				s.conn.Close()
			case <-ctx.Done():
				s.decide(nil)
			}
		case "cancel-tcpip-forward":
			_ = req.Reply(true, nil)
			s.closeWithMessage("The forward was cancelled; the endpoint is removed.")
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

// decide ends the wait for the bind: ep nil refuses the pending
// tcpip-forward, else it is accepted with the allocated port when the
// client asked for port 0.
func (s *sshSession) decide(ep *endpoint) {
	s.boundOnce.Do(func() {
		s.mu.Lock()
		fwd, port := s.fwd, s.connectPort
		s.mu.Unlock()
		if fwd != nil {
			switch {
			case ep == nil:
				_ = fwd.req.Reply(false, nil)
			case fwd.port == 0:
				_ = fwd.req.Reply(true, ssh.Marshal(struct{ Port uint32 }{port}))
			default:
				_ = fwd.req.Reply(true, nil)
			}
		}
		close(s.bound)
	})
}

// serveChannels accepts the one session channel (for the command and its
// messages) and refuses every other channel type.
func (s *sshSession) serveChannels(ctx context.Context, chans <-chan ssh.NewChannel) {
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only session channels and -R forwards are served")
			continue
		}
		s.mu.Lock()
		dup := s.out != nil
		s.mu.Unlock()
		if dup {
			_ = nc.Reject(ssh.Prohibited, "one session per connection")
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.out = ch
		s.mu.Unlock()
		go s.serveSessionRequests(ctx, ch, reqs)
	}
}

// serveSessionRequests handles the session channel's requests: pty-req
// (accepted, for the line endings), exec (the command), shell (usage).
func (s *sshSession) serveSessionRequests(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request) {
	started := false
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			s.mu.Lock()
			s.pty = true
			s.mu.Unlock()
			_ = req.Reply(true, nil)
		case "exec", "shell":
			if started {
				_ = req.Reply(false, nil)
				continue
			}
			started = true
			var p struct{ Command string }
			if req.Type == "exec" {
				if err := ssh.Unmarshal(req.Payload, &p); err != nil {
					_ = req.Reply(false, nil)
					continue
				}
			}
			_ = req.Reply(true, nil)
			go s.run(ctx, p.Command)
		default:
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
	}
}

// run parses the command, waits for the -R forward, binds the endpoint and
// writes its URL, or writes the error and closes the connection.
func (s *sshSession) run(ctx context.Context, line string) {
	if strings.TrimSpace(line) == "" {
		s.say(true, "%s", sshUsage)
		s.finish(2, "")
		return
	}
	cmd, perr := parseSSHCommand(line)
	if perr != nil {
		s.finish(2, "tollgate: "+perr.Error()+"\n\n"+sshUsage)
		return
	}
	if cmd.help {
		s.say(false, "%s", sshUsage)
		s.finish(0, "")
		return
	}
	select {
	case <-s.fwdSet:
	case <-time.After(sshForwardWait):
		s.finish(2, "tollgate: no remote forward: run ssh -R 443:localhost:8080 ... http (or -R 0:localhost:22 ... tcp).")
		return
	case <-ctx.Done():
		return
	}
	ep, err := s.bind(cmd)
	if err != nil {
		s.log.Info("SSH bind refused", zap.String("code", string(err.Code)), zap.String("reason", err.Message))
		s.decide(nil)
		s.finish(1, "tollgate: "+err.Error())
		return
	}
	s.decide(ep)
	s.log.Info("endpoint bound", zap.String("endpoint", ep.url), zap.String("endpoint_id", ep.id))
	s.edge.sessionsChanged()
	s.say(false, "Forwarding  %s\n", ep.url)
	s.say(false, "Session     %s (region %s). Press Ctrl-C to stop.\n", s.id, s.edge.cfg.Region)
}

// bind creates and installs the endpoint the command asks for.
func (s *sshSession) bind(cmd *sshCommand) (*endpoint, *codes.Error) {
	e := s.edge
	s.mu.Lock()
	fwd, ident := s.fwd, s.ident
	s.mu.Unlock()
	name, nerr := normalizeSSHBindAddr(fwd.addr, e.cfg.BaseDomain)
	if nerr != nil {
		return nil, nerr
	}
	req, berr := cmd.bindRequest(name, fwd.port, e)
	if berr != nil {
		return nil, berr
	}
	var (
		ep  *endpoint
		err *codes.Error
	)
	switch req.Proto {
	case "https":
		ep, _, err = e.bindHTTP(req, ident, s)
	case "tcp":
		ep, _, err = e.bindTCP(req, ident, s)
	case "tls":
		ep, _, err = e.bindTLS(req, ident, s)
	}
	if err != nil {
		return nil, err
	}
	connect := fwd.port
	if connect == 0 {
		connect = uint32(e.httpsPort())
		if ep.proto == "tcp" {
			_, ps, _ := net.SplitHostPort(ep.key)
			p, _ := strconv.Atoi(ps)
			connect = uint32(p)
		}
	}
	s.mu.Lock()
	s.connectPort = connect
	s.mu.Unlock()
	if _, ok := e.router.bind(ep, func(*endpoint) bool { return false }); !ok {
		if ep.release != nil {
			ep.release()
		}
		return nil, codes.NewError(codes.BindTaken, "%s is already bound by another session. Stop it, or choose another name.", ep.url)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		e.router.unbind(ep)
		return nil, codes.NewError(codes.SessionStopped, "The session closed while binding.")
	}
	s.ep = ep
	s.mu.Unlock()
	return ep, nil
}

// say writes a message to the session channel (stderr when toErr),
// converting line ends for a terminal.
func (s *sshSession) say(toErr bool, format string, args ...any) {
	s.mu.Lock()
	ch, pty := s.out, s.pty
	s.mu.Unlock()
	if ch == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	if pty {
		msg = strings.ReplaceAll(msg, "\n", "\r\n")
	}
	if toErr {
		_, _ = ch.Stderr().Write([]byte(msg))
	} else {
		_, _ = ch.Write([]byte(msg))
	}
}

// finish writes msg (if any) to stderr, sends the exit status, closes the
// session channel and closes the connection once the client has hung up
// (OpenSSH does when its session channel closes), or after a grace period,
// so the message arrives rather than being cut by a reset.
func (s *sshSession) finish(status uint32, msg string) {
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if msg != "" {
			s.say(true, "%s", msg)
		}
		s.mu.Lock()
		ch := s.out
		s.mu.Unlock()
		if ch != nil {
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
			_ = ch.CloseWrite()
			_ = ch.Close()
		}
	}()
	grace := time.NewTimer(sshFinishGrace)
	defer grace.Stop()
	select {
	case <-wrote:
		select {
		case <-s.done:
		case <-grace.C:
		}
	case <-grace.C:
	}
	s.conn.Close()
}

// closeWithMessage removes the session's endpoint at once, writes msg to
// the client (its stderr), ends the command with exit status 1 and closes
// the SSH connection. It is how the edge stops an SSH session (API stop,
// revocation, shutdown). It returns without waiting for the client; safe
// to call more than once and from any goroutine.
func (s *sshSession) closeWithMessage(msg string) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		ep := s.ep
		s.ep = nil
		s.mu.Unlock()
		if ep != nil {
			s.edge.router.unbind(ep)
		}
		s.log.Info("closing SSH session", zap.String("reason", msg))
		go s.finish(1, "tollgate: "+msg)
	})
}

// keepalive sends keepalive@openssh.com every interval; a client that does
// not answer within the next interval is gone, and the connection closes.
func (s *sshSession) keepalive(ctx context.Context) {
	iv := s.edge.cfg.SSHKeepaliveInterval
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res := make(chan error, 1)
		go func() {
			_, _, err := s.conn.SendRequest("keepalive@openssh.com", true, nil)
			res <- err
		}()
		select {
		case <-ctx.Done():
			return
		case err := <-res:
			if err != nil {
				s.conn.Close()
				return
			}
		case <-time.After(iv):
			s.log.Info("SSH client stopped answering keepalives; closing")
			s.conn.Close()
			return
		}
	}
}

// ended runs once the connection is gone: the endpoint goes.
func (s *sshSession) ended(err error) {
	s.decide(nil)
	s.mu.Lock()
	s.closed = true
	ep := s.ep
	s.ep = nil
	s.mu.Unlock()
	if ep != nil {
		s.edge.router.unbind(ep)
	}
	s.edge.mu.Lock()
	delete(s.edge.sshSessions, s)
	s.edge.mu.Unlock()
	s.log.Info("SSH session ended")
	s.edge.sessionsChanged()
}

// identity implements endpointOwner.
func (s *sshSession) identity() *authn.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ident
}

// openProxy implements endpointOwner: a forwarded-tcpip channel (RFC 4254
// §7.2) naming the client's bind address and port, and the public client
// as originator.
func (s *sshSession) openProxy(ctx context.Context, hdr *tunnel.ProxyHeader) (httpproxy.Stream, error) {
	s.mu.Lock()
	fwd, port := s.fwd, s.connectPort
	s.mu.Unlock()
	if fwd == nil {
		return nil, errors.New("no forward")
	}
	origin, _ := netip.ParseAddrPort(hdr.ClientAddr)
	payload := ssh.Marshal(struct {
		Addr       string
		Port       uint32
		OriginAddr string
		OriginPort uint32
	}{fwd.addr, port, origin.Addr().String(), uint32(origin.Port())})
	type opened struct {
		ch  ssh.Channel
		err error
	}
	res := make(chan opened, 1)
	go func() {
		ch, reqs, err := s.conn.OpenChannel("forwarded-tcpip", payload)
		if err == nil {
			go ssh.DiscardRequests(reqs)
		}
		res <- opened{ch, err}
	}()
	select {
	case r := <-res:
		return r.ch, r.err
	case <-ctx.Done():
		go func() {
			if r := <-res; r.ch != nil {
				r.ch.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// dropEndpoint implements endpointOwner: an SSH session serves one
// endpoint, so losing it ends the session.
func (s *sshSession) dropEndpoint(ep *endpoint, code codes.Code, msg string) {
	s.edge.router.unbind(ep)
	s.closeWithMessage(msg + " [" + string(code) + "]")
}

// reverify re-checks the session's key against a new snapshot; a non-nil
// error means the session must close.
func (s *sshSession) reverify(snap *snapshot.Snapshot) *codes.Error {
	s.mu.Lock()
	closed, cur, ep := s.closed, s.ident, s.ep
	s.mu.Unlock()
	if closed {
		return nil
	}
	ident, err := verifySSHKey(snap, s.fingerprint, nil)
	if err != nil || ident.CredentialID != cur.CredentialID {
		return errSSHKeyRevoked
	}
	s.mu.Lock()
	s.ident = ident
	s.mu.Unlock()
	if ep != nil {
		if err := s.edge.checkBindAllowed(snap, ident, ep.proto, ep.key); err != nil {
			return codes.NewError(codes.BindACL, "The SSH key's bind ACL no longer allows %s.", ep.url)
		}
	}
	return nil
}

// applySnapshotSSH closes the SSH sessions a new snapshot no longer admits.
func (e *Edge) applySnapshotSSH(snap *snapshot.Snapshot) {
	for _, s := range e.sshSessionList() {
		if err := s.reverify(snap); err != nil {
			s.closeWithMessage(err.Error())
		}
	}
}

// sshSessionByID returns the live SSH session with the given ts_ ID (for
// the API's stop command: call closeWithMessage on it).
func (e *Edge) sshSessionByID(id string) (*sshSession, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.sshSessions {
		if s.id == id {
			return s, true
		}
	}
	return nil, false
}

// closeSSHSessions closes every SSH session with msg (shutdown).
func (e *Edge) closeSSHSessions(msg string) {
	for _, s := range e.sshSessionList() {
		s.closeWithMessage(msg)
	}
}

// info returns the session as the control plane's API reports it.
func (s *sshSession) info() (snapshot.AgentSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return snapshot.AgentSession{}, false
	}
	out := snapshot.AgentSession{
		ID:           s.id,
		AccountID:    s.ident.Account.ID,
		CredentialID: s.ident.CredentialID,
		PrincipalID:  s.ident.Principal.ID,
		Region:       s.edge.cfg.Region,
		Transport:    "ssh",
		IP:           s.remote.Addr().String(),
		AgentVersion: string(s.conn.ClientVersion()),
		StartedAt:    s.startedAt,
	}
	if ep := s.ep; ep != nil {
		out.Endpoints = append(out.Endpoints, ep.info())
	}
	return out, true
}
