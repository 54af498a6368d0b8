package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/tunnel"
)

// conn is one authenticated agent session: the session over its Mux, the
// edge's Auth response, and the goroutine that runs the session.
type conn struct {
	sess      *tunnel.ClientSession
	mux       tunnel.Mux
	resp      *tunnel.AuthResp
	transport string
	runDone   chan struct{} // closed when the session has ended
	runErr    error         // why the session ended; valid after runDone
}

// startSession starts the session; runDone closes when it has ended.
func (c *conn) startSession() {
	_ = c.sess.Start(context.Background(), func(err error) {
		c.runErr = err
		close(c.runDone)
	})
}

// close ends the session and waits for its goroutines.
func (c *conn) close() {
	_ = c.sess.Close()
	<-c.runDone
}

// dialEdge is the default Agent.dial: TLS over TCP with muxado, or QUIC.
func (a *Agent) dialEdge(ctx context.Context, transport, addr string) (tunnel.Mux, error) {
	tlsConf := a.cfg.edgeTLSConfig(addr)
	var m tunnel.Mux
	var err error
	if transport == config.TransportQUIC {
		m, err = tunnel.DialQUIC(ctx, addr, tlsConf)
	} else {
		m, err = tunnel.DialTCP(ctx, addr, tlsConf, tunnel.MuxConfig{})
	}
	if ce := certError(addr, a.cfg.RootCAFile, err); ce != nil {
		return nil, &permanent{err: ce}
	}
	return m, err
}

// certError returns TG_9006 when err is a failed verification of the
// edge's certificate (unknown authority, wrong name, expired): retrying
// cannot fix it, the agent needs the right --root-ca or address. It names
// the issuer or the name that failed. nil for any other error.
func certError(addr, rootCAFile string, err error) *codes.Error {
	var ve *tls.CertificateVerificationError
	if err == nil || !errors.As(err, &ve) {
		return nil
	}
	trust := "the system's trusted roots"
	if rootCAFile != "" {
		trust = "the CAs in " + rootCAFile
	}
	var (
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ie x509.CertificateInvalidError
	)
	var why string
	leaf := "its certificate"
	if len(ve.UnverifiedCertificates) > 0 {
		leaf += " for " + certName(ve.UnverifiedCertificates[0])
	}
	switch {
	case errors.As(err, &ua) && ua.Cert != nil:
		why = fmt.Sprintf("%s is signed by %q, which is not among %s", leaf, ua.Cert.Issuer.String(), trust)
	case errors.As(err, &he) && he.Certificate != nil:
		why = fmt.Sprintf("its certificate is for %s, not %q", certName(he.Certificate), he.Host)
	case errors.As(err, &ie) && ie.Cert != nil:
		why = fmt.Sprintf("its certificate for %s (issuer %q) is not valid: %v", certName(ie.Cert), ie.Cert.Issuer.String(), ie)
	default:
		why = fmt.Sprintf("its certificate cannot be verified against %s: %v", trust, ve.Err)
	}
	return codes.NewError(codes.EdgeCertUnverified,
		"Cannot verify the edge at %s: %s. Pass --root-ca FILE with the CA that signs the edge's certificate "+
			"(for `tollgated dev`, the ca_file of its dev.json), or fix --server-addr.", addr, why).WithCause(err)
}

// certName is how a certificate is named in messages: its DNS names, else
// its subject.
func certName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return strings.Join(c.DNSNames, ", ")
	}
	return c.Subject.String()
}

// connect opens leg l's authenticated session to the edge at addr with the
// configured transport. With config.TransportAuto it races the transports (see
// race). Auth refusals come back as errors wrapping *tunnel.RemoteError.
func (a *Agent) connect(ctx context.Context, l *leg, addr string) (*conn, error) {
	auth := a.authRequest(l)
	if a.cfg.transport != config.TransportAuto {
		return a.attempt(ctx, l, a.cfg.transport, addr, auth)
	}
	return a.race(ctx, l, addr, auth)
}

// otherTransport returns the transport that is not t.
func otherTransport(t string) string {
	if t == config.TransportQUIC {
		return config.TransportTCP
	}
	return config.TransportQUIC
}

type attemptResult struct {
	c         *conn
	err       error
	transport string
}

// race connects happy-eyeballs style: it starts AutoFirst, starts the
// other transport when AutoFirst fails or has not authenticated within
// FallbackDelay, and keeps whichever authenticates first; the loser is
// cancelled or closed. A permanent refusal from either ends the race.
func (a *Agent) race(ctx context.Context, l *leg, addr string, auth *tunnel.Auth) (*conn, error) {
	raceCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan attemptResult, 2)
	start := func(t string) {
		go a.raceAttempt(raceCtx, l, t, addr, auth, results)
	}
	start(AutoFirst)
	started := 1
	fallback := time.NewTimer(a.fallbackDelay)
	defer fallback.Stop()

	var errs []error
	// finish cancels the other attempt and closes it if it won anyway.
	finish := func(received int) {
		cancel()
		for ; received < started; received++ {
			if r := <-results; r.c != nil {
				r.c.close()
			}
		}
	}
	for received := 0; received < started; {
		select {
		case <-fallback.C:
			if started == 1 {
				a.log.Debug("no answer yet, trying the other transport",
					zap.String("transport", otherTransport(AutoFirst)), zap.Duration("after", a.fallbackDelay))
				start(otherTransport(AutoFirst))
				started++
			}
		case r := <-results:
			received++
			if r.err == nil {
				finish(received)
				return r.c, nil
			}
			if isPermanent(r.err) || tunnel.IsPermanent(r.err) {
				finish(received)
				return nil, r.err
			}
			a.log.Debug("transport failed", zap.String("transport", r.transport), zap.Error(r.err))
			errs = append(errs, r.err)
			if started == 1 {
				start(otherTransport(AutoFirst))
				started++
			}
		}
	}
	return nil, joinedError(errs)
}

// joinedError is the failures of every transport tried, on one line.
type joinedError []error

func (j joinedError) Error() string {
	msgs := make([]string, len(j))
	for i, e := range j {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.Is and errors.As see every failure.
func (j joinedError) Unwrap() []error { return j }

// raceAttempt runs one attempt of race and reports its result.
func (a *Agent) raceAttempt(ctx context.Context, l *leg, transport, addr string, auth *tunnel.Auth, out chan<- attemptResult) {
	c, err := a.attempt(ctx, l, transport, addr, auth)
	out <- attemptResult{c: c, err: err, transport: transport}
}

// attempt dials the edge over one transport, starts leg l's session and
// authenticates, all within ConnectTimeout.
func (a *Agent) attempt(ctx context.Context, l *leg, transport, addr string, auth *tunnel.Auth) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ConnectTimeout)
	defer cancel()
	mux, err := a.dial(ctx, transport, addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to edge %s over %s: %w", addr, transport, err)
	}
	c := &conn{mux: mux, transport: mux.Transport(), runDone: make(chan struct{})}
	c.sess = tunnel.NewClientSession(mux, tunnel.ClientConfig{
		Logger:             a.log,
		HeartbeatInterval:  a.cfg.HeartbeatInterval,
		HeartbeatTolerance: a.cfg.HeartbeatTolerance,
		OnStopTunnel:       func(st tunnel.StopTunnel) { a.onStopTunnel(l, c, st) },
		OnStop:             a.accepts(EventStopRequested),
		OnRestart:          a.accepts(EventRestartRequested),
	})
	c.startSession()
	resp, err := c.sess.Auth(ctx, auth)
	if err != nil {
		c.close()
		return nil, err
	}
	c.resp = resp
	return c, nil
}
