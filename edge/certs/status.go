package certs

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Provisioning error codes of Status.JobErrorCode, as the reserved_domains
// API shows them (docs/api-compatibility.md#reserved-domains).
const (
	// StatusInternalError is a temporary failure (CA unreachable, rate
	// limited, storage): retried without user action.
	StatusInternalError = "INTERNAL_ERROR"
	// StatusDNSError is a failure the user must fix: the CA could not
	// validate the name (DNS does not point at the edge, CAA forbids it).
	StatusDNSError = "DNS_ERROR"
)

// Status is the state of one name's certificate, as reported to the
// control plane (certificate_management_status).
type Status struct {
	// Domain is the lower-case punycode name ("*.<base>" for the wildcard).
	Domain string
	// NotAfter is when the certificate held expires; zero if none.
	NotAfter time.Time
	// RenewsAt is when renewal becomes due; zero if no certificate.
	RenewsAt time.Time
	// Issuer is the issuer's key (the ACME directory's host and path).
	Issuer string
	// JobErrorCode is StatusInternalError or StatusDNSError while obtaining
	// or renewing fails; "" otherwise.
	JobErrorCode string
	// JobMsg describes the failure.
	JobMsg string
	// JobStartedAt is when the failing job started; JobRetriesAt when it is
	// tried again (certmagic's backoff: 1m, 2m, 2m, 5m, 10m... up to 6h).
	JobStartedAt, JobRetriesAt time.Time
}

// StatusReporter receives certificate status changes. Calls come from one
// goroutine, in order; a slow reporter delays only later reports. Errors
// are logged.
type StatusReporter interface {
	ReportCertificateStatus(ctx context.Context, st Status) error
}

// retrySchedule mirrors certmagic's retry intervals (async.go), so
// JobRetriesAt says when certmagic tries again.
var retrySchedule = []time.Duration{
	time.Minute, 2 * time.Minute, 2 * time.Minute, 5 * time.Minute,
	10 * time.Minute, 10 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 20 * time.Minute, 20 * time.Minute, 20 * time.Minute,
	30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute,
	time.Hour, time.Hour, time.Hour, 2 * time.Hour, 2 * time.Hour, 3 * time.Hour, 3 * time.Hour, 6 * time.Hour,
}

// statusTracker turns certmagic events into Status reports and keeps the
// latest Status per name for Manager.Status.
type statusTracker struct {
	log      *zap.Logger
	reporter StatusReporter // nil: keep only
	storage  certmagic.Storage
	ratio    float64 // renewal window ratio

	mu       sync.Mutex
	byName   map[string]*trackedStatus
	obtained int64 // cert_obtained events (metrics.go)
	failed   int64 // cert_failed events
	queue    chan Status
	onCached func(names []string) // set before the first event; read-only after
}

type trackedStatus struct {
	Status
	failures int
}

func newStatusTracker(log *zap.Logger, r StatusReporter, st certmagic.Storage, onCached func([]string)) *statusTracker {
	return &statusTracker{
		log:      log,
		reporter: r,
		storage:  st,
		onCached: onCached,
		ratio:    1.0 / 3,
		byName:   make(map[string]*trackedStatus),
		queue:    make(chan Status, 256),
	}
}

// onEvent is certmagic's Config.OnEvent. It never fails (an error would
// abort issuance) and never blocks.
func (s *statusTracker) onEvent(ctx context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtaining":
		name, _ := data["identifier"].(string)
		s.update(name, func(t *trackedStatus) bool {
			if t.JobStartedAt.IsZero() {
				t.JobStartedAt = time.Now().UTC()
			}
			return false
		})
	case "cert_obtained":
		name, _ := data["identifier"].(string)
		issuer, _ := data["issuer"].(string)
		var leaf *x509.Certificate
		if p, ok := data["certificate_path"].(string); ok {
			leaf = loadLeaf(ctx, s.storage, p)
		}
		s.update(name, func(t *trackedStatus) bool {
			s.obtained++
			t.failures = 0
			t.JobErrorCode, t.JobMsg, t.JobStartedAt, t.JobRetriesAt = "", "", time.Time{}, time.Time{}
			t.Issuer = issuer
			if leaf != nil {
				t.NotAfter = leaf.NotAfter.UTC()
				t.RenewsAt = renewsAt(leaf, s.ratio)
			}
			return true
		})
	case "cert_failed":
		name, _ := data["identifier"].(string)
		err, _ := data["error"].(error)
		if err == nil || errors.Is(err, context.Canceled) {
			return nil
		}
		s.update(name, func(t *trackedStatus) bool {
			s.failed++
			now := time.Now().UTC()
			if t.JobStartedAt.IsZero() {
				t.JobStartedAt = now
			}
			t.JobErrorCode = problemCode(err)
			t.JobMsg = err.Error()
			t.JobRetriesAt = now.Add(retrySchedule[min(t.failures, len(retrySchedule)-1)])
			t.failures++
			return true
		})
	case "cached_managed_cert":
		sans, _ := data["sans"].([]string)
		if s.onCached != nil {
			s.onCached(sans)
		}
	}
	return nil
}

// noteHeld records the expiry of a certificate found in storage, so that
// Status shows renews_at for names obtained before this process started.
func (s *statusTracker) noteHeld(name, issuer string, leaf *x509.Certificate) {
	if name == "" || leaf == nil {
		return
	}
	s.update(name, func(t *trackedStatus) bool {
		if t.NotAfter.Equal(leaf.NotAfter.UTC()) {
			return false
		}
		t.NotAfter, t.RenewsAt = leaf.NotAfter.UTC(), renewsAt(leaf, s.ratio)
		if t.Issuer == "" {
			t.Issuer = issuer
		}
		return true
	})
}

// update applies fn to name's status and queues a report when fn says so.
func (s *statusTracker) update(name string, fn func(*trackedStatus) bool) {
	if name == "" {
		return
	}
	s.mu.Lock()
	t, ok := s.byName[name]
	if !ok {
		t = &trackedStatus{Status: Status{Domain: name}}
		s.byName[name] = t
	}
	report := fn(t)
	st := t.Status
	s.mu.Unlock()
	if report && s.reporter != nil {
		select {
		case s.queue <- st:
		default:
			s.log.Warn("certificate status report dropped: reporter too slow", zap.String("server_name", name))
		}
	}
}

// get returns the latest status of name.
func (s *statusTracker) get(name string) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.byName[name]
	if !ok {
		return Status{}, false
	}
	return t.Status, true
}

// run delivers reports until stop is closed.
func (s *statusTracker) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case st := <-s.queue:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.reporter.ReportCertificateStatus(ctx, st); err != nil {
				s.log.Warn("reporting certificate status", zap.String("server_name", st.Domain), zap.Error(err))
			}
			cancel()
		}
	}
}

// renewsAt is when certmagic's renewal window opens: the last ratio of the
// certificate's lifetime.
func renewsAt(leaf *x509.Certificate, ratio float64) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-time.Duration(float64(life) * ratio)).UTC()
}

// loadLeaf reads and parses the first certificate of a PEM chain in
// storage; nil on any failure.
func loadLeaf(ctx context.Context, st certmagic.Storage, key string) *x509.Certificate {
	if st == nil {
		return nil
	}
	b, err := st.Load(ctx, key)
	if err != nil {
		return nil
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil
	}
	return c
}
