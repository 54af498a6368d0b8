package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/tunnel"
)

// The edge-to-edge link's authentication:
//
//   - TLS 1.3, ALPN tunnel.TCPALPN (so the muxado session above it uses
//     the large, autotuned windows of our own agent links). The listener's
//     certificate is self-signed and made at start: it authenticates
//     nothing, and the dialler does not verify it.
//   - Both ends prove they hold the edge secret, bound to this TLS
//     session: each sends its edge ID and HMAC-SHA256(K, label ‖ EKM ‖ ID),
//     where EKM is 32 bytes of the session's exported keying material
//     (RFC 8446 §7.5, label peerExporterLabel) and K = HMAC-SHA256(edge
//     secret, peerKeyLabel). The dialler speaks first; the listener checks
//     the MAC in constant time, then answers with its own, which the
//     dialler checks before it forwards anything. A man in the middle has
//     two TLS sessions with different EKMs and cannot relay a MAC from
//     one to the other; a public client without the secret gets nothing
//     but a closed connection, and its address is throttled
//     (peerAuthPolicy).

// Link labels.
const (
	peerKeyLabel      = "tollgate edge-to-edge link key v1"
	peerExporterLabel = "EXPORTER-tollgate-edge-link"
	peerDialerLabel   = "tollgate edge link: dialler\x00"
	peerListenerLabel = "tollgate edge link: listener\x00"
	maxPeerEdgeID     = 128
)

// peerLinkKey derives the link key from the edge secret.
func peerLinkKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(peerKeyLabel))
	return m.Sum(nil)
}

// peerMAC is one end's proof: HMAC(key, label ‖ ekm ‖ edgeID).
func peerMAC(key []byte, label string, ekm []byte, edgeID string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(ekm)
	m.Write([]byte(edgeID))
	return m.Sum(nil)
}

// ephemeralPeerCert makes the listener's self-signed certificate.
func ephemeralPeerCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("edge-to-edge key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "tollgate edge-to-edge link"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("edge-to-edge certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// errPeerAuth is the error of a link whose other end did not prove the
// edge secret.
var errPeerAuth = errors.New("the other end did not prove the edge secret")

// writeProof sends an edge ID and its MAC.
func writeProof(w io.Writer, id string, mac []byte) error {
	b := make([]byte, 0, 1+len(id)+len(mac))
	b = append(b, byte(len(id)))
	b = append(b, id...)
	b = append(b, mac...)
	_, err := w.Write(b)
	return err
}

// readProof reads an edge ID and checks its MAC against key, label and
// ekm in constant time.
func readProof(r io.Reader, key []byte, label string, ekm []byte) (string, error) {
	var l [1]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return "", fmt.Errorf("%w: %v", errPeerAuth, err)
	}
	if l[0] == 0 || l[0] > maxPeerEdgeID {
		return "", fmt.Errorf("%w: edge ID of %d bytes", errPeerAuth, l[0])
	}
	buf := make([]byte, int(l[0])+sha256.Size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("%w: %v", errPeerAuth, err)
	}
	id, mac := string(buf[:l[0]]), buf[l[0]:]
	if !hmac.Equal(mac, peerMAC(key, label, ekm, id)) {
		return "", errPeerAuth
	}
	return id, nil
}

// exportedKey returns the TLS session's keying material for the proofs.
func exportedKey(tc *tls.Conn) ([]byte, error) {
	st := tc.ConnectionState()
	return st.ExportKeyingMaterial(peerExporterLabel, nil, 32)
}

// acceptLink runs the listener's side of a link's TLS handshake and
// authentication on c, within peerAuthTimeout; it returns the TLS
// connection and the sibling's edge ID.
func (p *peering) acceptLink(ctx context.Context, c net.Conn) (*tls.Conn, string, error) {
	_ = c.SetDeadline(time.Now().Add(peerAuthTimeout))
	tc := tls.Server(tunnel.BatchRecords(c), &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{p.cert},
		NextProtos: []string{tunnel.TCPALPN}, SessionTicketsDisabled: true,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, "", fmt.Errorf("TLS handshake: %w", err)
	}
	if tc.ConnectionState().NegotiatedProtocol != tunnel.TCPALPN {
		return nil, "", errors.New("the client offered no edge-to-edge ALPN")
	}
	ekm, err := exportedKey(tc)
	if err != nil {
		return nil, "", err
	}
	id, err := readProof(tc, p.key, peerDialerLabel, ekm)
	if err != nil {
		return nil, "", err
	}
	if err := writeProof(tc, p.e.cfg.EdgeID, peerMAC(p.key, peerListenerLabel, ekm, p.e.cfg.EdgeID)); err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Time{})
	return tc, id, nil
}

// dialLink dials a sibling's link at addr and authenticates it both ways;
// it returns the muxado session and the sibling's edge ID.
func (p *peering) dialLink(ctx context.Context, addr string) (tunnel.Mux, string, error) {
	ctx, cancel := context.WithTimeout(ctx, peerAuthTimeout)
	defer cancel()
	d := net.Dialer{LocalAddr: p.dialFrom}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// The certificate is not what authenticates the sibling: the proof
	// over this session's exported keying material is (see above).
	tc := tls.Client(tunnel.BatchRecords(c), &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{tunnel.TCPALPN},
		InsecureSkipVerify: true, ServerName: "tollgate-edge-link",
	})
	fail := func(err error) (tunnel.Mux, string, error) {
		c.Close()
		return nil, "", err
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(fmt.Errorf("TLS handshake: %w", err))
	}
	if tc.ConnectionState().NegotiatedProtocol != tunnel.TCPALPN {
		return fail(errors.New("the listener is not an edge-to-edge link"))
	}
	ekm, err := exportedKey(tc)
	if err != nil {
		return fail(err)
	}
	self := p.e.cfg.EdgeID
	if err := writeProof(tc, self, peerMAC(p.key, peerDialerLabel, ekm, self)); err != nil {
		return fail(err)
	}
	id, err := readProof(tc, p.key, peerListenerLabel, ekm)
	if err != nil {
		return fail(err)
	}
	_ = c.SetDeadline(time.Time{})
	return tunnel.NewMuxadoMux(tc, false, tunnel.MuxConfig{}), id, nil
}

// peerLinks holds the links this edge dialled, one per sibling address:
// dialled on first use, redialled when broken (at most once per
// peerRedialDelay after a failure), at most maxPeerSessions.
type peerLinks struct {
	p      *peering
	mu     sync.Mutex
	byAddr map[string]*peerLink
	closed bool
	// failed records when a sibling address's link last failed (a dial,
	// an unanswered forward or ping), until a dial to it succeeds; such
	// a sibling is offered connections last (failedRecently). At most
	// maxPeerSessions entries.
	failed map[string]time.Time
}

// peerRedialDelay is how long a failed dial keeps a sibling's link from
// being dialled again; forwards meanwhile try the next holder.
const peerRedialDelay = time.Second

// peerLink is the link to one sibling address.
type peerLink struct {
	ready    chan struct{} // closed when the dial ended
	mux      tunnel.Mux    // nil when the dial failed
	edgeID   string
	err      error
	failedAt time.Time
	lastUse  time.Time
}

func newPeerLinks(p *peering) *peerLinks {
	return &peerLinks{p: p, byAddr: map[string]*peerLink{}, failed: map[string]time.Time{}}
}

// get returns a live link to addr, dialling it if needed; concurrent
// callers share one dial.
func (l *peerLinks) get(ctx context.Context, addr string) (*peerLink, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	lk, ok := l.byAddr[addr]
	if ok {
		select {
		case <-lk.ready:
			switch {
			case lk.mux != nil && !isDone(lk.mux):
				lk.lastUse = time.Now()
				l.mu.Unlock()
				return lk, nil
			case lk.mux == nil && time.Since(lk.failedAt) < peerRedialDelay:
				l.mu.Unlock()
				return nil, lk.err
			}
			ok = false // broken or failed long enough ago: redial
		default: // a dial is under way
		}
	}
	if !ok {
		if len(l.byAddr) >= maxPeerSessions {
			l.evictLocked()
		}
		lk = &peerLink{ready: make(chan struct{}), lastUse: time.Now()}
		l.byAddr[addr] = lk
		go l.dial(addr, lk)
	}
	l.mu.Unlock()
	select {
	case <-lk.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if lk.mux == nil {
		return nil, lk.err
	}
	return lk, nil
}

// dial dials lk ("edge peer link dial"); it is not bound to one caller's
// context, so a caller that gives up does not fail the others.
func (l *peerLinks) dial(addr string, lk *peerLink) {
	mux, id, err := l.p.dialLink(context.Background(), addr)
	l.mu.Lock()
	watch := false
	if err != nil {
		lk.err, lk.failedAt = fmt.Errorf("edge-to-edge link to %s: %w", addr, err), time.Now()
		l.noteFailureLocked(addr)
	} else if l.closed {
		mux.Close()
		lk.err = net.ErrClosed
	} else {
		lk.mux, lk.edgeID = mux, id
		delete(l.failed, addr)
		watch = true
	}
	l.mu.Unlock()
	close(lk.ready)
	if watch {
		go l.watch(addr, lk)
	}
}

// noteFailureLocked records a failure of addr's link; l.mu is held.
func (l *peerLinks) noteFailureLocked(addr string) {
	now := time.Now()
	if len(l.failed) >= maxPeerSessions {
		for a, at := range l.failed {
			if now.Sub(at) >= peerFailMemory {
				delete(l.failed, a)
			}
		}
		if len(l.failed) >= maxPeerSessions {
			return
		}
	}
	l.failed[addr] = now
}

// failedRecently reports whether addr's link failed within
// peerFailMemory and has not been dialled successfully since.
func (l *peerLinks) failedRecently(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.failed[addr]
	return ok && time.Since(at) < peerFailMemory
}

// watch proves the sibling at the other end of lk alive every
// peerPingInterval while the link lives ("edge peer link watch"): a ping
// stream whose echo (or close) does not come within peerPingTimeout takes
// the link for dead, and drops it.
func (l *peerLinks) watch(addr string, lk *peerLink) {
	t := time.NewTicker(peerPingInterval)
	defer t.Stop()
	for {
		select {
		case <-lk.mux.Done():
			return
		case <-t.C:
		}
		if err := ping(lk.mux); err != nil {
			if isDone(lk.mux) {
				return
			}
			p := l.p
			p.metrics.linkFailed.Add(1)
			if p.e.guard.allowLog() {
				p.log.Warn("a sibling edge stopped answering on its edge-to-edge link", zap.String("peer_edge_id", lk.edgeID),
					zap.String("peer_addr", addr), zap.Error(err))
			}
			l.drop(addr, lk)
			return
		}
	}
}

// ping sends 4 bytes on a new ping stream of mux and waits up to
// peerPingTimeout for their echo, or for the stream's end (an older
// sibling closes streams of a type it does not know).
func ping(mux tunnel.Mux) error {
	ctx, cancel := context.WithTimeout(context.Background(), peerPingTimeout)
	defer cancel()
	st, err := mux.OpenStream(ctx, peerStreamPing)
	if err != nil {
		return err
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(peerPingTimeout))
	b := [4]byte{'p', 'i', 'n', 'g'}
	if _, err := st.Write(b[:]); err != nil {
		return err
	}
	_, err = io.ReadFull(st, b[:])
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || err == nil {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no echo within %v: %w", peerPingTimeout, err)
	}
	return nil // reset or closed by the sibling: it answered
}

// echoPing answers a sibling's ping stream: its 4 bytes back, then close.
func echoPing(st tunnel.Stream) {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(peerPingTimeout))
	var b [4]byte
	if _, err := io.ReadFull(st, b[:]); err != nil {
		return
	}
	_, _ = st.Write(b[:])
}

// drop closes lk's session if it is still the link to addr, so the next
// use redials (a sibling that did not answer).
func (l *peerLinks) drop(addr string, lk *peerLink) {
	l.mu.Lock()
	if l.byAddr[addr] == lk {
		delete(l.byAddr, addr)
	}
	l.noteFailureLocked(addr)
	l.mu.Unlock()
	if lk.mux != nil {
		go lk.mux.Close()
	}
}

// evictLocked forgets the least recently used link that is not dialling.
func (l *peerLinks) evictLocked() {
	var oldest string
	var at time.Time
	for a, lk := range l.byAddr {
		select {
		case <-lk.ready:
		default:
			continue
		}
		if oldest == "" || lk.lastUse.Before(at) {
			oldest, at = a, lk.lastUse
		}
	}
	if lk := l.byAddr[oldest]; lk != nil {
		delete(l.byAddr, oldest)
		if lk.mux != nil {
			go lk.mux.Close()
		}
	}
}

// closeAll closes every link; later gets fail.
func (l *peerLinks) closeAll() {
	l.mu.Lock()
	l.closed = true
	links := l.byAddr
	l.byAddr = map[string]*peerLink{}
	l.mu.Unlock()
	for _, lk := range links {
		select {
		case <-lk.ready:
			if lk.mux != nil {
				lk.mux.Close()
			}
		default: // dial closes it when it sees closed
		}
	}
}

func isDone(m tunnel.Mux) bool {
	select {
	case <-m.Done():
		return true
	default:
		return false
	}
}
