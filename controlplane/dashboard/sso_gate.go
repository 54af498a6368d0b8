package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/sso"
	"github.com/tollgate/tollgate/controlplane/store"
)

// ssoFinish signs in the user an identity provider vouched for: the
// account must be active; an address in a domain another account verified
// is refused (only that account's IdPs sign it in); the user is
// provisioned by the account's policy (JIT or invite-only) and must be
// active; the dashboard IP restriction applies; then a new session opens.
func (s *Server) ssoFinish(w http.ResponseWriter, r *http.Request, idp *store.IdentityProvider, ident *sso.Identity, method store.SignInMethod, next string) {
	ctx := r.Context()
	userID := ""
	fail := func(reason string, err error) {
		s.ssoRefused(w, r, ssoAttempt{idp: idp, method: method, reason: reason, email: ident.Email, userID: userID, next: next}, err)
	}
	acct, err := s.store.GetAccount(ctx, idp.AccountID)
	if err != nil {
		fail("", err)
		return
	}
	if !acct.Active {
		fail("account_suspended", controlplane.Errorf(http.StatusForbidden, codes.APIAccountSuspended,
			"The account %s is suspended; nobody can sign in to it until it is reactivated.", acct.ID))
		return
	}
	if claim, err := s.store.DomainClaim(ctx, ident.Email); err == nil && claim.AccountID != idp.AccountID {
		fail("domain_claimed", s.domainClaimed(ctx, claim, ident.Email))
		return
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		fail("", err)
		return
	}
	settings, err := s.store.GetSSOSettings(ctx, idp.AccountID)
	if err != nil {
		fail("", err)
		return
	}
	actor := store.Actor{AccountID: idp.AccountID, PrincipalID: "system", CredentialID: idp.ID}
	in, err := s.store.ProvisionSSOUser(ctx, actor, idp.AccountID, ident.Email, ident.Name, settings.Provisioning)
	if errors.Is(err, store.ErrNotInvited) {
		fail("not_invited", controlplane.Errorf(http.StatusForbidden, codes.SSONotInvited,
			"%s is not a member of the account %s, which admits invited users only. Ask an administrator of the account to invite you, then sign in again.",
			controlplane.Truncate(ident.Email, 100), acct.Name))
		return
	}
	if err != nil {
		fail("", err)
		return
	}
	userID = in.UserID
	// The user, and their membership of this account (SCIM may deactivate
	// it alone), must be active.
	if active, err := s.store.MembershipActive(ctx, idp.AccountID, in.UserID); err != nil || !active {
		if err == nil {
			err = controlplane.Errorf(http.StatusForbidden, codes.APIPrincipalInactive,
				"The user %s is deactivated in the account %s. Ask an administrator of the account to reactivate you.", in.UserID, acct.Name)
		}
		fail("user_inactive", err)
		return
	}
	if err := s.checkDashboardRestriction(r, idp.AccountID); err != nil {
		fail("ip_restricted", err)
		return
	}
	if in.Created || in.Joined {
		s.log.Info("SSO provisioned a user", zap.String("account_id", idp.AccountID), zap.String("user_id", in.UserID),
			zap.Bool("created", in.Created), zap.String("identity_provider_id", idp.ID))
	}
	if err := s.openDashboardSession(w, r, sessionStart{AccountID: idp.AccountID, UserID: in.UserID, Method: method,
		IdPAccountID: idp.AccountID}); err != nil {
		fail("session_refused", err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// ssoAttempt describes a sign-in through an identity provider, for
// recording its refusal: the provider and method (saml, oidc), the
// refusal's reason (a short word such as not_invited; "" for a failure
// that is not a refusal), and the address and user ID the provider
// vouched for, when known.
type ssoAttempt struct {
	idp                   *store.IdentityProvider
	method                store.SignInMethod
	reason, email, userID string
	next                  string
}

// ssoRefused answers a sign-in through an identity provider that failed
// with err (ssoFail) and, when err is a refusal (4xx), audits it as
// dashboard_sign_in_failed.v0 in the provider's account
// (auditSignInFailure): {method, reason, code, identity_provider_id,
// email when the provider vouched for one, client_ip}, object the user ID
// when known. Nothing the provider sent (assertion, token, code) is
// recorded.
func (s *Server) ssoRefused(w http.ResponseWriter, r *http.Request, a ssoAttempt, err error) {
	identity := &identityPages{s}
	sso := &ssoPages{s}
	if ae := controlplane.AsError(err); ae.Status < 500 {
		reason := a.reason
		if reason == "" {
			reason = "refused"
		}
		payload := map[string]any{"method": string(a.method), "reason": reason, "code": string(ae.Code),
			"identity_provider_id": a.idp.ID}
		if a.email != "" {
			payload["email"] = controlplane.Truncate(a.email, 254)
		}
		identity.auditSignInFailure(r, []string{a.idp.AccountID}, a.userID, payload)
	}
	sso.ssoFail(w, r, a.next, err)
}

// checkSignInMethod is the SSO policy of every new dashboard session
// (openDashboardSession): a sign-in through an identity provider opens
// only in that provider's account; one that does not (an API key, a
// password) is refused when the account enforces SSO, or when the user's
// email domain is verified by an account (codes.SSODomainClaimed); each
// error names the identity providers to use.
func (s *Server) checkSignInMethod(ctx context.Context, in sessionStart) error {
	if in.Method == store.SignInSAML || in.Method == store.SignInOIDC {
		if in.IdPAccountID != in.AccountID {
			return s.ssoMethodAdmitted(ctx, in.AccountID, in.Method)
		}
		return nil
	}
	if err := s.ssoMethodAdmitted(ctx, in.AccountID, in.Method); err != nil {
		return err
	}
	user, err := s.store.GetUser(ctx, in.UserID)
	if err != nil {
		return err
	}
	claim, err := s.store.DomainClaim(ctx, user.Email)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.domainClaimed(ctx, claim, user.Email)
}

// ssoMethodAdmitted decides by the account's SSO settings alone whether a
// session signed in by method may open in account accountID: password and
// API key only when SSO is not enforced (codes.SSOEnforced); SAML and
// OIDC never — a session signed in through another account's identity
// provider does not move here (an administrator of that account controls
// what its IdP asserts), so the user signs in through this account's own
// providers (codes.SignInMethodDenied).
func (s *Server) ssoMethodAdmitted(ctx context.Context, accountID string, method store.SignInMethod) error {
	if method == store.SignInSAML || method == store.SignInOIDC {
		names, err := s.idpNames(ctx, accountID)
		if err != nil {
			return err
		}
		return controlplane.Errorf(http.StatusForbidden, codes.SignInMethodDenied,
			"You signed in through another account's identity provider, which does not sign you in to the account %s: sign out, then sign in to it through %s or with your password.",
			accountID, names)
	}
	settings, err := s.store.GetSSOSettings(ctx, accountID)
	if err != nil {
		return err
	}
	if settings.Mode == store.SSOEnforced {
		names, err := s.idpNames(ctx, accountID)
		if err != nil {
			return err
		}
		return controlplane.Errorf(http.StatusForbidden, codes.SSOEnforced,
			"The account %s requires single sign-on: sign in through %s (the SSO form of the sign-in page), not with a %s.",
			accountID, names, strings.ReplaceAll(string(method), "_", " "))
	}
	return nil
}

// checkNewAccountEmail refuses to create a user or an account for an
// address whose domain an account verified (codes.SSODomainClaimed): its
// users sign up and sign in through that account's SSO only.
func (s *Server) checkNewAccountEmail(ctx context.Context, email string) error {
	claim, err := s.store.DomainClaim(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.domainClaimed(ctx, claim, email)
}

// domainClaimed is the codes.SSODomainClaimed refusal for email, naming the
// claiming account's identity providers.
func (s *Server) domainClaimed(ctx context.Context, claim *store.AccountDomain, email string) error {
	names, err := s.idpNames(ctx, claim.AccountID)
	if err != nil {
		return err
	}
	return controlplane.Errorf(http.StatusForbidden, codes.SSODomainClaimed,
		"Addresses in %s (%s) sign in only through the single sign-on of the account %s: use %s (the SSO form of the sign-in page).",
		claim.Domain, controlplane.Truncate(email, 100), claim.AccountID, names)
}

// idpNames lists the account's identity providers for a message:
// `"Okta" (idp_...)`, joined.
func (s *Server) idpNames(ctx context.Context, accountID string) (string, error) {
	idps, err := s.store.AccountIdentityProviders(ctx, accountID)
	if err != nil {
		return "", err
	}
	if len(idps) == 0 {
		return "an identity provider of the account (none is configured yet: ask an administrator)", nil
	}
	names := make([]string, len(idps))
	for i, p := range idps {
		names[i] = `"` + p.Name + `" (` + p.ID + `)`
	}
	return "the identity provider " + strings.Join(names, " or "), nil
}
