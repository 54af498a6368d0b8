package sshserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/edge"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/snapshot"
	"github.com/tollgate/tollgate/tunnel"
)

// Session timing.
const (
	// commandWait bounds how long a tcpip-forward waits for the command
	// (OpenSSH sends its forwards first, then opens the session).
	commandWait = 10 * time.Second
	// forwardWait bounds how long a command waits for its tcpip-forward
	// (already sent; it only travels on another queue).
	forwardWait = 3 * time.Second
	// finishGrace bounds the wait for the client to hang up after the
	// edge ended its command.
	finishGrace = 3 * time.Second
)

// forward is the client's tcpip-forward request (RFC 4254 §7.1).
type forward struct {
	addr string
	port uint32
	req  *ssh.Request
}

// session is one SSH connection and the one endpoint it serves. It is an
// edge.Session (attached to the edge while it lives) and the
// edge.EndpointOwner of its endpoint.
type session struct {
	srv         *Server
	id          string // ts_...
	conn        *ssh.ServerConn
	remote      netip.AddrPort
	startedAt   time.Time
	fingerprint string
	log         *zap.Logger
	detach      func() // from edge.Attach

	fwdSet chan struct{} // closed when fwd is set
	bound  chan struct{} // closed when the bind was decided (either way)
	done   chan struct{} // closed when the connection has ended

	mu          sync.Mutex
	ident       *authn.Identity
	fwd         *forward
	connectPort uint32         // port named in forwarded-tcpip channels
	ep          *edge.Endpoint // nil until bound
	out         ssh.Channel    // the session channel, for messages; nil = none yet
	pty         bool           // the client asked for a terminal: lines end in \r\n
	closed      bool
	boundOnce   sync.Once
	closeOnce   sync.Once
}

// handle runs one SSH connection to its end.
func (srv *Server) handle(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(c, srv.sshConfig)
	if err != nil {
		srv.loginFailed(c.RemoteAddr(), err)
		if ce := srv.log.Check(zap.DebugLevel, "SSH handshake failed"); ce != nil {
			ce.Write(zap.String("remote_addr", c.RemoteAddr().String()), zap.Error(err))
		}
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	fp := sc.Permissions.Extensions[extFingerprint]
	ident, err := authn.VerifySSHKey(srv.edge.Snapshot(), fp, nil)
	if err != nil || ident.CredentialID != sc.Permissions.Extensions[extCredential] {
		sc.Close()
		return
	}
	if !srv.track(1) {
		sc.Close()
		return
	}
	defer srv.track(-1)
	id := ids.New(ids.PrefixAgentSession)
	remote := edge.PeerAddr(c.RemoteAddr())
	s := &session{
		srv: srv, id: id, conn: sc, remote: remote, startedAt: time.Now().UTC(), fingerprint: fp, ident: ident,
		fwdSet: make(chan struct{}), bound: make(chan struct{}), done: make(chan struct{}),
		log: srv.log.WithLazy(zap.String("session_id", id), zap.String("remote_addr", remote.String()), zap.String("transport", "ssh"),
			zap.String("account_id", ident.Account.ID), zap.String("credential_id", ident.CredentialID)),
	}
	srv.mu.Lock()
	srv.sessions[s] = struct{}{}
	srv.mu.Unlock()
	s.log.Info("SSH session started", zap.String("client_version", string(sc.ClientVersion())))
	s.detach = srv.edge.Attach(s)

	sctx, cancel := context.WithCancel(srv.ctx)
	g, gctx := errgroup.WithContext(sctx)
	g.Go(func() error { s.serveGlobalRequests(gctx, reqs); return nil })
	g.Go(func() error { s.serveChannels(gctx, chans); return nil })
	g.Go(func() error { s.keepalive(gctx); return nil })
	g.Go(func() error {
		select {
		case <-gctx.Done():
		case <-srv.stopping:
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
func (s *session) serveGlobalRequests(ctx context.Context, reqs <-chan *ssh.Request) {
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
			s.fwd = &forward{addr: p.Addr, port: p.Port, req: req}
			close(s.fwdSet)
			s.mu.Unlock()
			select {
			case <-s.bound:
			case <-time.After(commandWait):
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
func (s *session) decide(ep *edge.Endpoint) {
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
func (s *session) serveChannels(ctx context.Context, chans <-chan ssh.NewChannel) {
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
func (s *session) serveSessionRequests(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request) {
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
func (s *session) run(ctx context.Context, line string) {
	if strings.TrimSpace(line) == "" {
		s.say(true, "%s", usage)
		s.finish(2, "")
		return
	}
	cmd, perr := parseCommand(line)
	if perr != nil {
		s.finish(2, "tollgate: "+perr.Error()+"\n\n"+usage)
		return
	}
	if cmd.help {
		s.say(false, "%s", usage)
		s.finish(0, "")
		return
	}
	select {
	case <-s.fwdSet:
	case <-time.After(forwardWait):
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
	s.log.Info("endpoint bound", zap.String("endpoint", ep.URL()), zap.String("endpoint_id", ep.ID()))
	s.srv.edge.SessionsChanged()
	s.say(false, "Forwarding  %s\n", ep.URL())
	s.say(false, "Session     %s (region %s). Press Ctrl-C to stop.\n", s.id, s.srv.addr.Region)
}

// bind creates and installs the endpoint the command asks for.
func (s *session) bind(cmd *command) (*edge.Endpoint, *codes.Error) {
	e := s.srv.edge
	s.mu.Lock()
	fwd, ident := s.fwd, s.ident
	s.mu.Unlock()
	name, nerr := normalizeBindAddr(fwd.addr, s.srv.addr.BaseDomain)
	if nerr != nil {
		return nil, nerr
	}
	req, berr := cmd.bindRequest(name, fwd.port, s.srv.addr.TCPHost)
	if berr != nil {
		return nil, berr
	}
	ep, err := e.NewEndpoint(req, ident, s)
	if err != nil {
		return nil, err
	}
	connect := fwd.port
	if connect == 0 {
		// The port the client is told it got: the TCP endpoint's own, or
		// the edge's public HTTPS port. Set before the endpoint is routed:
		// forwarded channels name it.
		connect = uint32(ep.Port())
	}
	s.mu.Lock()
	s.connectPort = connect
	s.mu.Unlock()
	if err := e.Route(ep); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		e.Unbind(ep)
		return nil, codes.NewError(codes.SessionStopped, "The session closed while binding.")
	}
	s.ep = ep
	s.mu.Unlock()
	return ep, nil
}

// say writes a message to the session channel (stderr when toErr),
// converting line ends for a terminal.
func (s *session) say(toErr bool, format string, args ...any) {
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
func (s *session) finish(status uint32, msg string) {
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
	grace := time.NewTimer(finishGrace)
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
func (s *session) closeWithMessage(msg string) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		ep := s.ep
		s.ep = nil
		s.mu.Unlock()
		if ep != nil {
			s.srv.edge.Unbind(ep)
		}
		s.log.Info("closing SSH session", zap.String("reason", msg))
		go s.finish(1, "tollgate: "+msg)
	})
}

// keepalive sends keepalive@openssh.com every interval; a client that does
// not answer within the next interval is gone, and the connection closes.
func (s *session) keepalive(ctx context.Context) {
	iv := s.srv.cfg.KeepaliveInterval
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
func (s *session) ended(err error) {
	s.decide(nil)
	s.mu.Lock()
	s.closed = true
	ep := s.ep
	s.ep = nil
	s.mu.Unlock()
	if ep != nil {
		s.srv.edge.Unbind(ep)
	}
	s.srv.mu.Lock()
	delete(s.srv.sessions, s)
	s.srv.mu.Unlock()
	s.log.Info("SSH session ended")
	s.detach()
}

// Identity implements edge.EndpointOwner.
func (s *session) Identity() *authn.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ident
}

// OpenProxy implements edge.EndpointOwner: a forwarded-tcpip channel (RFC 4254
// §7.2) naming the client's bind address and port, and the public client
// as originator.
func (s *session) OpenProxy(ctx context.Context, hdr *tunnel.ProxyHeader) (edge.Stream, error) {
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

// DropEndpoint implements edge.EndpointOwner: an SSH session serves one
// endpoint, so losing it ends the session.
func (s *session) DropEndpoint(ep *edge.Endpoint, code codes.Code, msg string) {
	s.srv.edge.Unbind(ep)
	s.closeWithMessage(msg + " [" + string(code) + "]")
}

// reverify re-checks the session's key against a new snapshot; a non-nil
// error means the session must close.
func (s *session) reverify(snap *snapshot.Snapshot) *codes.Error {
	s.mu.Lock()
	closed, cur, ep := s.closed, s.ident, s.ep
	s.mu.Unlock()
	if closed {
		return nil
	}
	ident, err := authn.VerifySSHKey(snap, s.fingerprint, nil)
	if err != nil || ident.CredentialID != cur.CredentialID {
		return authn.ErrSSHKeyRevoked
	}
	s.mu.Lock()
	s.ident = ident
	s.mu.Unlock()
	if err := s.srv.edge.RecheckAgentIP(ident.Account.ID, s.remote.Addr()); err != nil {
		return err
	}
	if ep != nil {
		if err := s.srv.edge.BindAllowed(snap, ident, ep); err != nil {
			return codes.NewError(codes.BindACL, "The SSH key's bind ACL no longer allows %s.", ep.URL())
		}
	}
	return nil
}

// Recheck implements edge.Session: it closes the session when a new
// snapshot no longer admits its key or its endpoint.
func (s *session) Recheck(snap *snapshot.Snapshot) {
	if err := s.reverify(snap); err != nil {
		s.closeWithMessage(err.Error())
	}
}

// ID implements edge.Session.
func (s *session) ID() string { return s.id }

// Stop implements edge.Session: an SSH client has no stop command, so the
// edge closes the connection and says why.
func (s *session) Stop(context.Context) error {
	s.closeWithMessage("the session was stopped through the API [" + string(codes.SessionStopped) + "]")
	return nil
}

// Restart implements edge.Session: an SSH client cannot restart itself.
func (s *session) Restart(context.Context) error {
	return codes.NewError(codes.SessionCommandUnsupported,
		"Session %s is an SSH reverse tunnel, which cannot restart itself; stop it instead.", s.id)
}

// Info implements edge.Session: the session as the control plane's API
// reports it.
func (s *session) Info() (snapshot.AgentSession, bool) {
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
		Region:       s.srv.addr.Region,
		Transport:    "ssh",
		IP:           s.remote.Addr().String(),
		AgentVersion: string(s.conn.ClientVersion()),
		StartedAt:    s.startedAt,
	}
	if ep := s.ep; ep != nil {
		out.Endpoints = append(out.Endpoints, ep.Info())
	}
	return out, true
}
