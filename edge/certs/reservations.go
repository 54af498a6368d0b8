package certs

import (
	"context"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/tollgate/tollgate/snapshot"
	"go.uber.org/zap"
)

// reservation returns the snapshot's reservation that covers the
// lower-case name in this manager's region: the exact domain, or a
// wildcard "*.<parent>" when name is one label under <parent>. It runs in
// handshakes: two map lookups, no allocation for an exact match.
func (m *Manager) reservation(name string) (*snapshot.ReservedDomain, bool) {
	if m.snapshot == nil {
		return nil, false
	}
	snap := m.snapshot()
	if snap == nil {
		return nil, false
	}
	if rd, ok := snap.ReservedDomain(name); ok && m.inRegion(rd) {
		return rd, true
	}
	if i := strings.IndexByte(name, '.'); i > 0 && strings.IndexByte(name[i+1:], '.') > 0 {
		if rd, ok := snap.ReservedDomain("*" + name[i:]); ok && m.inRegion(rd) {
			return rd, true
		}
	}
	return nil, false
}

func (m *Manager) inRegion(rd *snapshot.ReservedDomain) bool {
	return m.region == "" || rd.Region == "" || rd.Region == m.region
}

// keyType is the key type of name's certificate: the reservation's
// private_key_type, ECDSA by default.
func (m *Manager) keyType(name string) string {
	if rd, ok := m.reservation(name); ok {
		return reservationKeyType(rd)
	}
	return keyECDSA
}

// reservationKeyType is the key type rd asks for: RSA when its
// private_key_type says so (any case), else ECDSA.
func reservationKeyType(rd *snapshot.ReservedDomain) string {
	if strings.EqualFold(rd.PrivateKeyType, keyRSA) {
		return keyRSA
	}
	return keyECDSA
}

// watchSnapshots calls apply with every new snapshot (polled each
// pollEach) until ctx ends.
func (m *Manager) watchSnapshots(ctx context.Context, apply func(*snapshot.Snapshot)) {
	var last *snapshot.Snapshot
	t := time.NewTicker(m.pollEach)
	defer t.Stop()
	for {
		if snap := m.snapshot(); snap != nil && snap != last {
			last = snap
			apply(snap)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchReservations keeps the managed reserved names in step with the
// snapshot until ctx ends: a new reservation is obtained at once (in the
// background, with certmagic's retries), a removed one leaves the cache and
// is no longer renewed. It also drops certificates obtained on demand for
// names no longer allowed.
func (m *Manager) watchReservations(ctx context.Context, r *running) {
	m.watchSnapshots(ctx, func(snap *snapshot.Snapshot) { m.syncReservations(ctx, r, snap) })
}

// syncReservations applies one snapshot's reserved domains. A reserved
// wildcard "*.example.com" gets its wildcard certificate over DNS-01 when
// the edge has a DNS provider (r.wild); without one it is reported as a
// problem the operator must fix, and the names under it get their own
// certificates on demand (docs/wildcard-endpoints.md#certificates).
func (m *Manager) syncReservations(ctx context.Context, r *running, snap *snapshot.Snapshot) {
	want := map[string]string{}
	for rd := range snap.AllReservedDomains() {
		name := lowerASCII(rd.Domain)
		if !m.inRegion(rd) {
			continue
		}
		if parent, wild := strings.CutPrefix(name, "*."); wild {
			switch {
			case !validHostname(parent) || name == "*."+m.base:
			case r.wild != nil:
				want[name] = keyWildcardDNS
			default:
				m.noteProblem(name, "The wildcard certificate for "+name+" needs the ACME DNS-01 challenge, and this edge has no DNS provider (--acme-dns). Names under it get certificates one by one until then.")
			}
			continue
		}
		if !validHostname(name) {
			continue
		}
		if name == m.base || (m.wildcard && m.oneLabelUnder(name)) {
			continue // served by the base certificates
		}
		want[name] = reservationKeyType(rd)
	}

	r.mu.Lock()
	var add, drop []string
	for name, kt := range want {
		if old, ok := r.managedCustom[name]; !ok || old != kt {
			add = append(add, name)
		}
	}
	for name := range r.managedCustom {
		if _, ok := want[name]; !ok {
			drop = append(drop, name)
		}
	}
	for name := range r.seen {
		if _, ok := want[name]; !ok && !m.allowed(name) {
			drop = append(drop, name)
			delete(r.seen, name)
		}
	}
	r.managedCustom = want
	r.mu.Unlock()

	if len(drop) > 0 {
		subj := make([]certmagic.SubjectIssuer, len(drop))
		for i, n := range drop {
			subj[i] = certmagic.SubjectIssuer{Subject: n}
		}
		r.cache.RemoveManaged(subj)
		m.log.Info("certificates no longer managed: reservation removed", zap.Strings("names", drop))
	}
	for _, name := range add {
		cfg := r.custom[want[name]]
		if want[name] == keyWildcardDNS {
			cfg = r.wild
		}
		if err := cfg.ManageAsync(ctx, []string{name}); err != nil {
			m.log.Warn("managing reserved domain", zap.String("server_name", name), zap.Error(err))
		}
	}
}

// watchLocalReservations runs instead of watchReservations when the local
// CA issues (tollgated dev without --acme-ca): that CA signs only the base
// domain and names under it (UnderBase). A reserved wildcard under the base
// domain ("*.ci.<base>") gets its wildcard certificate at once; a reserved
// domain outside it can never get a certificate here, and rather than let
// certificate_management_status say "being provisioned" forever, it is
// reported (when a reporter is set) as a provisioning failure the user
// must fix (StatusDNSError), with what to do.
func (m *Manager) watchLocalReservations(ctx context.Context, r *running) {
	managed := map[string]bool{}
	m.watchSnapshots(ctx, func(snap *snapshot.Snapshot) {
		for rd := range snap.AllReservedDomains() {
			name := lowerASCII(rd.Domain)
			if !m.inRegion(rd) || !strings.HasPrefix(name, "*.") || managed[name] || InBase(m.base, name) || !UnderBase(m.base, name) {
				continue
			}
			managed[name] = true
			if err := r.managed.ManageAsync(ctx, []string{name}); err != nil {
				m.log.Warn("managing reserved wildcard domain", zap.String("server_name", name), zap.Error(err))
			}
		}
		if m.reporter != nil {
			m.noteUnissuable(snap)
		}
	})
}

// noteUnissuable reports the snapshot's reserved domains of this region
// that the local CA will not sign; a name already reported is not reported
// again.
func (m *Manager) noteUnissuable(snap *snapshot.Snapshot) {
	for rd := range snap.AllReservedDomains() {
		name := lowerASCII(rd.Domain)
		if !m.inRegion(rd) || UnderBase(m.base, name) {
			continue
		}
		m.noteProblem(name, "This edge signs certificates with its local CA, which signs only "+m.base+" and names under it; "+
			name+" gets no certificate here. Run the edge with an ACME CA (--acme-ca) to obtain one.")
	}
}

// noteProblem records, once per message, that name's certificate cannot
// be obtained until the user or operator acts (StatusDNSError, msg says
// what to do).
func (m *Manager) noteProblem(name, msg string) {
	m.status.update(name, func(t *trackedStatus) bool {
		if t.JobErrorCode == StatusDNSError && t.JobMsg == msg {
			return false
		}
		if t.JobStartedAt.IsZero() {
			t.JobStartedAt = time.Now().UTC()
		}
		t.JobErrorCode, t.JobMsg, t.JobRetriesAt = StatusDNSError, msg, time.Time{}
		if m.issuer != nil {
			t.Issuer = m.issuer.IssuerKey()
		}
		return true
	})
}
