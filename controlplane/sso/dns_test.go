package sso_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/sso"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/internal/idptest"
)

// TestDomainVerifierCheck: the claim is proven only by a TXT record at
// _tollgate-challenge.<domain> holding the exact value, among others.
func TestDomainVerifierCheck(t *testing.T) {
	ns := idptest.NewDNS(t)
	v := sso.DomainVerifier{Resolver: ns.Addr, Timeout: 5 * time.Second}
	d := &store.AccountDomain{Domain: "corp.example", Token: "abc123"}
	ctx := context.Background()
	wantRefused := func(what string) {
		t.Helper()
		var ae *controlplane.Error
		if err := v.Check(ctx, d); !errors.As(err, &ae) || ae.Code != codes.DomainNotVerified {
			t.Fatalf("%s: %v, want %s", what, err, codes.DomainNotVerified)
		}
	}
	wantRefused("no record")
	ns.SetTXT("corp.example", d.ChallengeValue())
	wantRefused("the value at the domain itself, not the challenge name")
	ns.SetTXT(d.ChallengeName(), "tollgate-domain-verification=other")
	wantRefused("another token")
	ns.SetTXT(d.ChallengeName(), "v=spf1 -all", d.ChallengeValue())
	if err := v.Check(ctx, d); err != nil {
		t.Fatalf("the record is there: %v", err)
	}
}
