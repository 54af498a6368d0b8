package sso

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
)

// DomainVerifier looks up the DNS TXT record that proves an account's
// claim on an email domain (store.AccountDomain.ChallengeName and
// ChallengeValue).
type DomainVerifier struct {
	// Resolver is the "host:port" of the DNS server asked (UDP, then TCP
	// when the answer is truncated); "" uses the system's resolver.
	Resolver string
	// Timeout bounds one lookup. Default 5s.
	Timeout time.Duration
}

// ErrChallengeMissing means the TXT record was not found (yet).
var ErrChallengeMissing = errors.New("sso: the domain's challenge TXT record was not found")

// Check looks up d's challenge record and returns nil when one of its TXT
// values is d.ChallengeValue(); otherwise a *controlplane.Error with
// codes.DomainNotVerified that names the record to create.
func (v DomainVerifier) Check(ctx context.Context, d *store.AccountDomain) error {
	timeout := v.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	values, err := v.lookupTXT(ctx, d.ChallengeName())
	if err == nil && slices.Contains(values, d.ChallengeValue()) {
		return nil
	}
	if err == nil {
		err = ErrChallengeMissing
	}
	return refuse(http.StatusConflict, codes.DomainNotVerified, err,
		"The TXT record %s with the value %q was not found. Create it at your DNS provider, wait for it to propagate, and verify again.",
		d.ChallengeName(), d.ChallengeValue())
}

// lookupTXT returns the TXT values of name, each record's strings joined
// (RFC 7208 §3.3 style).
func (v DomainVerifier) lookupTXT(ctx context.Context, name string) ([]string, error) {
	if v.Resolver == "" {
		return net.DefaultResolver.LookupTXT(ctx, name)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	m.RecursionDesired = true
	c := &dns.Client{}
	in, _, err := c.ExchangeContext(ctx, m, v.Resolver)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, v.Resolver)
	}
	if err != nil {
		return nil, fmt.Errorf("asking %s for TXT %s: %w", v.Resolver, name, err)
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("asking %s for TXT %s: %s", v.Resolver, name, dns.RcodeToString[in.Rcode])
	}
	var out []string
	for _, rr := range in.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// Verify checks the DNS challenge of the account's domain id and records
// it verified: the one implementation behind the dashboard's button and
// the REST API's POST /account_domains/{id}/verify. Errors: a 404 for an
// unknown domain, codes.DomainNotVerified (no record yet),
// codes.DomainTaken (another account verified it), codes.DomainNeedsProvider.
func (v DomainVerifier) Verify(ctx context.Context, st *store.Store, actor store.Actor, accountID, id string) (*store.AccountDomain, error) {
	d, err := st.GetAccountDomain(ctx, accountID, id)
	if err != nil {
		return nil, controlplane.NotFound(err, "account domain", id)
	}
	if d.Verified() {
		return d, nil
	}
	if err := v.Check(ctx, d); err != nil {
		return nil, err
	}
	return st.MarkAccountDomainVerified(ctx, actor, accountID, id)
}
