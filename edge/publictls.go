package edge

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Public TLS defaults (issue 12 §5):
//
//   - TLS 1.2 offers only AEAD cipher suites with ECDHE key exchange
//     (AES-GCM and ChaCha20-Poly1305), the Mozilla "intermediate" set; a
//     client offering only CBC suites over TLS 1.2 fails the handshake.
//     TLS 1.3 suites are fixed by Go and all AEAD.
//   - An endpoint or reserved domain that lowered its minimum to TLS 1.0
//     or 1.1 (and the edge floor allowing it) serves clients that speak no
//     TLS 1.2 with ECDHE CBC suites, capped at TLS 1.1: those versions have
//     no AEAD suite. A client that offers TLS 1.2 never gets that config.
//   - Session tickets are encrypted with keys the edge owns, from
//     crypto/rand, rotated every ticketKeyRotation by a goroutine the edge
//     runs (Serve) and stops; the previous ticketKeysKept-1 keys still
//     decrypt, so a client resumes across one rotation. Without this, Go
//     keys tickets per tls.Config, and the edge's per-connection Config
//     meant no ticket was ever resumed.

// publicCipherSuites are the TLS 1.2 suites of public listeners.
var publicCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// legacyCipherSuites serve TLS 1.0/1.1 clients of endpoints that allow
// them.
var legacyCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
}

// Session ticket key schedule.
const (
	ticketKeyRotation = 24 * time.Hour // at least daily
	ticketKeysKept    = 2              // the current key and the previous one
)

// publicTLS holds the public listeners' tls.Configs, by minimum version,
// and their session ticket keys.
type publicTLS struct {
	modern map[uint16]*tls.Config // by minimum version; AEAD-only at TLS 1.2
	legacy map[uint16]*tls.Config // minimum 1.0 or 1.1, maximum 1.1, CBC
	tickets
}

// newPublicTLS returns the configs serving certificates from getCert, with
// a first ticket key.
func newPublicTLS(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (*publicTLS, error) {
	p := &publicTLS{modern: map[uint16]*tls.Config{}, legacy: map[uint16]*tls.Config{}}
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		c := &tls.Config{MinVersion: v, GetCertificate: getCert, NextProtos: []string{"h2", "http/1.1"}, CipherSuites: publicCipherSuites}
		if v < tls.VersionTLS12 {
			c.MinVersion = tls.VersionTLS12
			p.legacy[v] = &tls.Config{MinVersion: v, MaxVersion: tls.VersionTLS11, GetCertificate: getCert,
				NextProtos: []string{"http/1.1"}, CipherSuites: legacyCipherSuites}
			p.tickets.configs = append(p.tickets.configs, p.legacy[v])
		}
		p.modern[v] = c
		p.tickets.configs = append(p.tickets.configs, c)
	}
	if err := p.rotate(); err != nil {
		return nil, err
	}
	return p, nil
}

// config returns the config for a client whose highest version is
// clientMax, on a name whose minimum is minV.
func (p *publicTLS) config(minV, clientMax uint16) *tls.Config {
	if minV < tls.VersionTLS12 && clientMax < tls.VersionTLS12 {
		return p.legacy[minV]
	}
	return p.modern[minV]
}

// terminated returns a config for a tls endpoint the edge terminates with
// cert: the same suites and ticket keys as the rest.
func (p *publicTLS) terminated(cert *tls.Certificate, minV, clientMax uint16) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: minV, CipherSuites: publicCipherSuites}
	if minV < tls.VersionTLS12 && clientMax < tls.VersionTLS12 {
		c.MaxVersion, c.CipherSuites = tls.VersionTLS11, legacyCipherSuites
	}
	c.SetSessionTicketKeys(p.keys())
	return c
}

// tickets owns the session ticket keys of a set of configs.
type tickets struct {
	configs []*tls.Config // fixed after construction

	mu      sync.Mutex
	current [][32]byte // newest first
}

// rotate makes a new key from crypto/rand the one that encrypts tickets,
// keeping the previous ones (ticketKeysKept in all) to decrypt.
func (t *tickets) rotate() error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("session ticket key: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := append([][32]byte{k}, t.current...)
	if len(keys) > ticketKeysKept {
		keys = keys[:ticketKeysKept]
	}
	t.current = keys
	for _, c := range t.configs {
		c.SetSessionTicketKeys(keys)
	}
	return nil
}

// keys returns the current keys, newest first.
func (t *tickets) keys() [][32]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.current
}

// runTicketRotation rotates the ticket keys every interval until ctx ends.
// A failed rotation keeps the old keys and is logged.
func (t *tickets) runTicketRotation(ctx context.Context, interval time.Duration, log *zap.Logger) error {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
			if err := t.rotate(); err != nil {
				log.Error("session ticket keys not rotated", zap.Error(err))
			}
		}
	}
}
