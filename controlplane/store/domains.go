package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
	"github.com/tollgate/tollgate/policy"
)

// AccountDomain is an email domain an account claims (issue 15, account
// domain controls). Once verified (by a DNS TXT record holding Token),
// users whose address is in the domain sign in and sign up only through
// the account's identity providers.
type AccountDomain struct {
	ID         string // adom_<KSUID>
	AccountID  string
	Domain     string // lower case, no trailing dot
	Token      string // the challenge value, not a secret
	VerifiedAt time.Time
	CreatedAt  time.Time
}

// Verified reports whether the domain's challenge was seen.
func (d *AccountDomain) Verified() bool { return !d.VerifiedAt.IsZero() }

// ChallengeName is the DNS name whose TXT record proves a claim:
// "_tollgate-challenge.<domain>".
func (d *AccountDomain) ChallengeName() string { return "_tollgate-challenge." + d.Domain }

// ChallengeValue is the TXT value that proves the claim:
// "tollgate-domain-verification=<token>".
func (d *AccountDomain) ChallengeValue() string { return "tollgate-domain-verification=" + d.Token }

// NormalizeEmailDomain checks and lower-cases an email domain: a DNS name
// of at least two labels (policy.NormalizeHostname's rules), no wildcard.
func NormalizeEmailDomain(domain string) (string, error) {
	d, err := policy.NormalizeHostname(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if err != nil || !strings.Contains(d, ".") || strings.Contains(d, "*") {
		return "", codes.NewError(codes.EmailDomainInvalid, "%q is not an email domain that can be claimed: give a DNS name such as example.com.", truncate(domain, 100))
	}
	return d, nil
}

const domainColumns = `SELECT id, account_id, domain, token, verified_at, created_at FROM account_domains`

func scanDomain(r scanner) (AccountDomain, error) {
	var d AccountDomain
	var verified, created int64
	err := r.Scan(&d.ID, &d.AccountID, &d.Domain, &d.Token, &verified, &created)
	if verified > 0 {
		d.VerifiedAt = fromMicros(verified)
	}
	d.CreatedAt = fromMicros(created)
	return d, err
}

// CreateAccountDomain claims domain for the account, unverified, with a
// new challenge token; audited as account_domain_created.v0. Claiming a
// domain the account claims already is a conflict (codes.DomainTaken).
func (s *Store) CreateAccountDomain(ctx context.Context, actor Actor, accountID, domain string) (*AccountDomain, error) {
	domain, err := NormalizeEmailDomain(domain)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 20)
	_, _ = rand.Read(tok)
	d := &AccountDomain{ID: ids.New(ids.PrefixAccountDomain), AccountID: accountID, Domain: domain,
		Token: strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(tok))}
	_, err = s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
			return err
		}
		d.CreatedAt = fromMicros(t.stamp())
		if _, err := t.exec(ctx, `INSERT INTO account_domains (id, account_id, domain, token, verified_at, created_at)
			VALUES ($1, $2, $3, $4, 0, $5)`, d.ID, accountID, domain, d.Token, t.stamp()); err != nil {
			if isUniqueViolation(err) {
				return conflict(codes.DomainTaken, "This account claims %s already.", domain)
			}
			return fmt.Errorf("claiming domain: %w", err)
		}
		t.audit("account_domain_created.v0", accountID, d.ID, map[string]any{"domain": domain})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// GetAccountDomain returns a domain the account claims.
func (s *Store) GetAccountDomain(ctx context.Context, accountID, id string) (*AccountDomain, error) {
	return getByID(ctx, s.rdb, domainColumns, "account domain", id, accountID, scanDomain)
}

// ListAccountDomains returns one page of the account's domains, newest
// first, and whether more remain.
func (s *Store) ListAccountDomains(ctx context.Context, accountID string, page Page) ([]AccountDomain, bool, error) {
	return listPage(ctx, s.rdb, domainColumns+` WHERE account_id = $1`, "id", []any{accountID}, page, scanDomain)
}

// MarkAccountDomainVerified records that the domain's challenge was seen,
// audited as account_domain_verified.v0. It refuses (codes.DomainTaken)
// when another account verified the domain first, and
// (codes.DomainNeedsProvider) when the account has no identity provider:
// verified, the domain's users could not sign in otherwise.
func (s *Store) MarkAccountDomainVerified(ctx context.Context, actor Actor, accountID, id string) (*AccountDomain, error) {
	var d *AccountDomain
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if d, err = getByID(ctx, t.sql, domainColumns, "account domain", id, accountID, scanDomain); err != nil {
			return err
		}
		if d.Verified() {
			return nil
		}
		var n int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM identity_providers WHERE account_id = $1`, accountID).Scan(&n); err != nil {
			return fmt.Errorf("counting identity providers: %w", err)
		}
		if n == 0 {
			return conflict(codes.DomainNeedsProvider, "Add an identity provider before verifying %s: once verified, its users may sign in only through one.", d.Domain)
		}
		if _, err := t.exec(ctx, `UPDATE account_domains SET verified_at = $1 WHERE id = $2`, t.stamp(), id); err != nil {
			if isUniqueViolation(err) {
				return conflict(codes.DomainTaken, "Another account has verified %s; a domain belongs to one account.", d.Domain)
			}
			return fmt.Errorf("verifying domain: %w", err)
		}
		d.VerifiedAt = fromMicros(t.stamp())
		t.audit("account_domain_verified.v0", accountID, id, map[string]any{"domain": d.Domain})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// DeleteAccountDomain gives up a claim, audited as
// account_domain_deleted.v0.
func (s *Store) DeleteAccountDomain(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var domain string
		err := t.queryRow(ctx, `DELETE FROM account_domains WHERE id = $1 AND account_id = $2 RETURNING domain`, id, accountID).Scan(&domain)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("account domain %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("deleting account domain %s: %w", id, err)
		}
		t.audit("account_domain_deleted.v0", accountID, id, map[string]any{"domain": domain})
		return nil
	})
	return err
}

// DomainClaim returns the verified claim on the domain of the email
// address, or ErrNotFound when no account verified it.
func (s *Store) DomainClaim(ctx context.Context, email string) (*AccountDomain, error) {
	_, domain, ok := strings.Cut(strings.ToLower(strings.TrimSpace(email)), "@")
	if !ok || domain == "" {
		return nil, fmt.Errorf("domain of %q: %w", truncate(email, 100), ErrNotFound)
	}
	return getRow(s.rdb.QueryRowContext(ctx, domainColumns+` WHERE domain = $1 AND verified_at > 0`, domain),
		"verified domain", domain, scanDomain)
}
