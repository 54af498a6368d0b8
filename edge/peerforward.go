package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// errForward ends the edge's own handshake when the ClientHello names a
// route that only siblings hold; the recorded bytes then go to one of
// them (forwardedTLS).
var errForward = errors.New("edge: forwarding to a sibling edge")

// maxForwardTries bounds the holders one connection is offered to.
const maxForwardTries = 3

// forwardHolders returns the siblings that hold the route of a
// ClientHello that this edge has no endpoint for; nil when the connection
// stays here: forwarding is off, the connection was forwarded already, it
// has no SNI, or it is an ACME TLS-ALPN-01 validation (answered from the
// shared certificate storage by any edge).
func (p *peering) forwardHolders(c net.Conn, hello *tls.ClientHelloInfo, name string) []RemoteRoute {
	if p == nil || hello.ServerName == "" || !mayForward(c) {
		return nil
	}
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeTLSALPN {
		return nil
	}
	if h := p.routes.RemoteHolders("https", name); len(h) > 0 {
		return h
	}
	return p.routes.RemoteHolders("tls", name)
}

// forwardedTLS serves pc when its handshake ended with errForward: it
// forwards the connection, ClientHello included, to a sibling that holds
// its route, or, when none takes it, serves it here as if there were no
// sibling (the edge's own answer to an unknown name). It reports whether
// the handshake had ended so.
func (p *publicServer) forwardedTLS(ctx context.Context, pc *peekConn, handshakeErr error) bool {
	if !errors.Is(handshakeErr, errForward) || pc.fwd == nil {
		return false
	}
	rec, holders := pc.rec, pc.fwd
	pc.rec, pc.recording, pc.fwd = nil, false, nil
	if p.fwd.forward(pc.Conn, listenerHTTPS, pc.name, holders, rec, p.raw) {
		return true
	}
	p.handleHTTPS(ctx, &replayConn{Conn: pc.Conn, pre: rec})
	return true
}

// forwardTCP forwards a TCP endpoint client to a sibling that holds key,
// and reports whether it did (false: the caller refuses c).
func (p *publicServer) forwardTCP(c net.Conn, key string) bool {
	if p.fwd == nil || !mayForward(c) {
		return false
	}
	holders := p.fwd.routes.RemoteHolders("tcp", key)
	if len(holders) == 0 {
		return false
	}
	return p.fwd.forward(c, listenerTCP, key, holders, nil, p.raw)
}

// forward offers c to holders in turn (at most maxForwardTries, skipping
// this edge), in the order of offerOrder: the header, then prefix (bytes
// already read from c), then the answer. Accepted, it pipes c to the
// sibling until both ends close. It reports whether c was dealt with:
// forwarded, or refused by a sibling (closed); false means no sibling
// took it and c is untouched beyond prefix.
func (p *peering) forward(c net.Conn, l peerListener, key string, holders []RemoteRoute, prefix []byte, raw *rawConns) bool {
	if len(key) == 0 || len(key) > maxPeerKey {
		return false
	}
	hdr := appendPeerHeader(nil, &peerHeader{listener: l, key: key, client: clientAddrPort(c), local: localAddrPort(c)})
	tries := 0
	for _, h := range p.offerOrder(key, holders) {
		if h.EdgeID == p.e.cfg.EdgeID || h.PeerAddr == "" {
			continue
		}
		if tries++; tries > maxForwardTries {
			break
		}
		switch p.offer(c, h, hdr, prefix, raw) {
		case offerServed:
			return true
		case offerRefused:
			refuse(c)
			return true
		}
	}
	p.metrics.unforwarded.Add(1)
	return false
}

// maxRoundRobinKeys bounds the route keys whose next holder forwarding
// remembers; past it the memory starts afresh.
const maxRoundRobinKeys = 4096

// offerOrder returns the order in which a connection for key is offered to
// its holders: round-robin per key, so that the connections spread across
// the siblings that hold the route (a pool whose members are on several
// edges, one agent's legs), with the siblings whose link failed recently
// (peerLinks.failedRecently) last.
func (p *peering) offerOrder(key string, holders []RemoteRoute) []RemoteRoute {
	n := len(holders)
	if n <= 1 {
		return holders
	}
	p.rrMu.Lock()
	if p.rr == nil || len(p.rr) >= maxRoundRobinKeys {
		p.rr = make(map[string]uint32)
	}
	start := int(p.rr[key] % uint32(n))
	p.rr[key]++
	p.rrMu.Unlock()
	out := make([]RemoteRoute, 0, n)
	var failed []RemoteRoute
	for i := range n {
		h := holders[(start+i)%n]
		if p.links.failedRecently(h.PeerAddr) {
			failed = append(failed, h)
			continue
		}
		out = append(out, h)
	}
	return append(out, failed...)
}

// Outcomes of offering a connection to one sibling.
type offerResult int

const (
	offerNext    offerResult = iota // not taken: try the next holder
	offerServed                     // the sibling served it
	offerRefused                    // the sibling refused it: close it
)

// offer offers c to one holder.
func (p *peering) offer(c net.Conn, h RemoteRoute, hdr, prefix []byte, raw *rawConns) offerResult {
	ctx, cancel := context.WithTimeout(context.Background(), peerStatusTimeout)
	defer cancel()
	lk, err := p.links.get(ctx, h.PeerAddr)
	if err != nil {
		p.metrics.linkFailed.Add(1)
		p.logFailure("no edge-to-edge link to a sibling", h, err)
		return offerNext
	}
	if lk.edgeID != h.EdgeID {
		// The address now belongs to another edge than the route table
		// says: the table is behind. Let the next holder have it.
		p.metrics.linkFailed.Add(1)
		p.logFailure("edge-to-edge address answered as another edge", h, errors.New("edge ID "+lk.edgeID))
		return offerNext
	}
	st, err := lk.mux.OpenStream(ctx, peerStreamForward)
	if err != nil {
		p.metrics.linkFailed.Add(1)
		p.links.drop(h.PeerAddr, lk)
		return offerNext
	}
	first := make([]byte, 0, len(hdr)+len(prefix))
	first = append(append(first, hdr...), prefix...)
	var status [1]byte
	_ = st.SetReadDeadline(time.Now().Add(peerStatusTimeout))
	_, err = st.Write(first)
	if err == nil {
		_, err = io.ReadFull(st, status[:])
	}
	_ = st.SetReadDeadline(time.Time{})
	if err != nil {
		st.Close()
		if linkDied(lk.mux.Done(), linkDeathGrace) {
			// The link died (the sibling went away): redial next time.
			p.metrics.linkFailed.Add(1)
			p.links.drop(h.PeerAddr, lk)
			return offerNext
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// The sibling did not answer in time: take the link for dead.
			p.metrics.linkFailed.Add(1)
			p.links.drop(h.PeerAddr, lk)
			p.logFailure("a sibling edge did not answer a forwarded connection", h, err)
			return offerNext
		}
		// Closed without an answer: the sibling refused the client (its
		// connection caps, memory guard).
		p.metrics.refusedThere.Add(1)
		return offerRefused
	}
	if status[0] != peerAccepted {
		st.Close()
		p.metrics.notHere.Add(1)
		return offerNext
	}
	p.metrics.forwarded.Add(1)
	hc, ok := c.(halfCloser)
	if !ok || !raw.add(c) {
		st.Close()
		refuse(c)
		return offerServed
	}
	defer raw.remove(c)
	pipe(hc, st)
	return offerServed
}

// linkDeathGrace is how long a forwarded connection whose stream failed
// waits for its link to report its end before it takes the failure for
// the sibling's refusal: a sibling that dies (SIGKILL, a crash) fails the
// link's streams a moment before the multiplexer sees the connection end.
// A refusal costs the client this much more before its connection closes.
const linkDeathGrace = 100 * time.Millisecond

// linkDied reports whether done (a link's Done) closes within grace.
func linkDied(done <-chan struct{}, grace time.Duration) bool {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// logFailure logs a failed forward at Warn, rate-limited.
func (p *peering) logFailure(msg string, h RemoteRoute, err error) {
	if p.e.guard.allowLog() {
		p.log.Warn(msg, zap.String("peer_edge_id", h.EdgeID), zap.String("peer_addr", h.PeerAddr), zap.Error(err))
	}
}

// followRemoteTCP keeps this edge listening on the ports of the tcp
// routes that siblings hold, every remoteTCPSync, until ctx ends; then it
// releases them ("edge peer remote tcp").
func (p *peering) followRemoteTCP(ctx context.Context, wg interface{ Done() }) {
	defer wg.Done()
	t := time.NewTicker(remoteTCPSync)
	defer t.Stop()
	for {
		p.syncRemoteTCP()
		select {
		case <-ctx.Done():
			p.releaseRemoteTCP()
			return
		case <-t.C:
		}
	}
}

// syncRemoteTCP opens the listeners of remote tcp routes on this edge's
// TCP host that are not open for them yet, and releases those of routes
// that are gone. A route on another TCP host is not this edge's to serve.
func (p *peering) syncRemoteTCP() {
	want := map[int]bool{}
	host := p.e.binds.tcpHost
	for _, k := range p.routes.RemoteTCPKeys() {
		h, ps, err := net.SplitHostPort(k)
		port, perr := strconv.Atoi(ps)
		if err != nil || perr != nil || h != host || port < 1 || port > 65535 {
			continue
		}
		want[port] = true
	}
	p.tcpMu.Lock()
	defer p.tcpMu.Unlock()
	for port := range want {
		if p.remotePorts[port] {
			continue
		}
		if err := p.e.tcp.acquire(port); err != nil {
			if !p.failedPorts[port] && !errors.Is(err, net.ErrClosed) {
				p.failedPorts[port] = true
				p.log.Warn("cannot listen on the port of a TCP endpoint of a sibling edge; its clients must reach that edge",
					zap.Int("port", port), zap.Error(err))
			}
			continue
		}
		delete(p.failedPorts, port)
		p.remotePorts[port] = true
	}
	for port := range p.remotePorts {
		if !want[port] {
			p.e.tcp.release(port)
			delete(p.remotePorts, port)
		}
	}
	for port := range p.failedPorts {
		if !want[port] {
			delete(p.failedPorts, port)
		}
	}
}

// releaseRemoteTCP releases every port held for remote routes.
func (p *peering) releaseRemoteTCP() {
	p.tcpMu.Lock()
	defer p.tcpMu.Unlock()
	for port := range p.remotePorts {
		p.e.tcp.release(port)
		delete(p.remotePorts, port)
	}
}
