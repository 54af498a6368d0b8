package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Certificate provisioning error codes, as the reserved_domains API shows
// them in certificate_management_status.provisioning_job.error_code
// (docs/api-compatibility.md#reserved-domains).
const (
	// CertErrorInternal is a temporary failure (CA down, rate limited,
	// storage); it is retried without user action.
	CertErrorInternal = "INTERNAL_ERROR"
	// CertErrorDNS is a failure the user must fix: the CA could not
	// validate the domain (DNS does not point at the edge, CAA forbids it).
	CertErrorDNS = "DNS_ERROR"
)

// CertificateStatus is what an edge last reported about the certificate of
// one domain. The reserved_domains API renders it as
// certificate_management_status: renews_at from RenewsAt, and, while
// JobErrorCode is not "", provisioning_job {error_code, msg, started_at,
// retries_at}.
type CertificateStatus struct {
	// Domain is the lower-case punycode name ("*.example.com" for a
	// wildcard).
	Domain string
	// NotAfter is when the served certificate expires; zero before the
	// first one.
	NotAfter time.Time
	// RenewsAt is when renewal is due; zero before the first certificate.
	RenewsAt time.Time
	// Issuer is the issuer's storage key (e.g. the ACME directory host).
	Issuer string
	// JobErrorCode is CertErrorInternal or CertErrorDNS while issuance or
	// renewal is failing, else "".
	JobErrorCode string
	// JobMsg is the failure, for people.
	JobMsg string
	// JobStartedAt is when the failing job started.
	JobStartedAt time.Time
	// JobRetriesAt is when the edge tries again.
	JobRetriesAt time.Time
	// Region is the region of the edge that reported.
	Region string
	// UpdatedAt is when it was reported; set by PutCertificateStatus.
	UpdatedAt time.Time
}

// PutCertificateStatus records an edge's report on st.Domain, replacing the
// previous one. It is operational state, not a mutation: no revision bump,
// no audit event, no snapshot change.
func (s *Store) PutCertificateStatus(ctx context.Context, st CertificateStatus) error {
	if st.Domain == "" {
		return errors.New("store: certificate status without a domain")
	}
	_, err := s.wdb.ExecContext(ctx,
		`INSERT INTO certificate_status (domain, not_after, renews_at, issuer, job_error_code, job_msg,
		     job_started_at, job_retries_at, updated_at, region)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		 ON CONFLICT (domain) DO UPDATE SET not_after = excluded.not_after, renews_at = excluded.renews_at,
		     issuer = excluded.issuer, job_error_code = excluded.job_error_code, job_msg = excluded.job_msg,
		     job_started_at = excluded.job_started_at, job_retries_at = excluded.job_retries_at,
		     updated_at = excluded.updated_at, region = excluded.region`,
		st.Domain, micros(st.NotAfter), micros(st.RenewsAt), st.Issuer, st.JobErrorCode, st.JobMsg,
		micros(st.JobStartedAt), micros(st.JobRetriesAt), s.now().UnixMicro(), st.Region)
	if err != nil {
		return fmt.Errorf("storing certificate status of %s: %w", st.Domain, err)
	}
	return nil
}

// GetCertificateStatus returns the last report on domain, or ErrNotFound
// when no edge reported one (the API then shows renews_at null and no
// provisioning job).
func (s *Store) GetCertificateStatus(ctx context.Context, domain string) (*CertificateStatus, error) {
	var st CertificateStatus
	var notAfter, renews, started, retries, updated int64
	err := s.rdb.QueryRowContext(ctx,
		`SELECT domain, not_after, renews_at, issuer, job_error_code, job_msg, job_started_at, job_retries_at,
		     updated_at, region
		 FROM certificate_status WHERE domain = $1`, domain).
		Scan(&st.Domain, &notAfter, &renews, &st.Issuer, &st.JobErrorCode, &st.JobMsg, &started, &retries,
			&updated, &st.Region)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading certificate status of %s: %w", domain, err)
	}
	st.NotAfter, st.RenewsAt = optMicros(notAfter), optMicros(renews)
	st.JobStartedAt, st.JobRetriesAt, st.UpdatedAt = optMicros(started), optMicros(retries), optMicros(updated)
	return &st, nil
}

// micros stores a time as Unix microseconds; the zero time is 0.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// optMicros is the inverse of micros, in UTC.
func optMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// Certificate states of CertState.State, for people (the dashboard's
// reservations page).
const (
	CertStateNone    = "none"    // no certificate management policy: the edges obtain none
	CertStatePending = "pending" // being obtained, nothing failed yet (or no edge reported)
	CertStateFailing = "failing" // the last attempt failed; Reason says why, RetriesAt when the edge tries again
	CertStateIssued  = "issued"  // held by the edges; RenewsAt is when renewal is due
)

// CertState is a reserved domain's certificate summed up from what the
// edges reported (GetCertificateStatus): the state, and while it is not
// issued the reason, as the edge gave it or, before any report, that no
// edge of the region has reported yet.
type CertState struct {
	State     string // CertStateNone, CertStatePending, CertStateFailing or CertStateIssued
	ErrorCode string // CertErrorInternal or CertErrorDNS while failing
	Reason    string // while pending or failing
	RenewsAt  time.Time
	RetriesAt time.Time
}

// ReservedDomainCertState returns d's CertState. A store read failure is
// returned with a pending state, so that a page can still show the rest.
func (s *Store) ReservedDomainCertState(ctx context.Context, d *ReservedDomain) (CertState, error) {
	if d.CertPolicy == nil {
		return CertState{State: CertStateNone}, nil
	}
	st, err := s.GetCertificateStatus(ctx, d.Domain)
	if err != nil {
		pending := CertState{State: CertStatePending, Reason: "No edge of region " + d.Region + " has reported on this certificate yet."}
		if errors.Is(err, ErrNotFound) {
			return pending, nil
		}
		return pending, err
	}
	switch {
	case st.JobErrorCode != "":
		return CertState{State: CertStateFailing, ErrorCode: st.JobErrorCode, Reason: st.JobMsg, RetriesAt: st.JobRetriesAt, RenewsAt: st.RenewsAt}, nil
	case st.NotAfter.IsZero():
		return CertState{State: CertStatePending, Reason: "The certificate is being obtained."}, nil
	}
	return CertState{State: CertStateIssued, RenewsAt: st.RenewsAt}, nil
}
