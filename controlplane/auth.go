package controlplane

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// authenticate checks the request's API key: "Authorization: Bearer
// <KSUID>_<secret>", where ak_<KSUID> names the key
// (docs/api-compatibility.md#auth-and-errors). The secret's hash is compared in
// constant time; the key's account must be active and its owner active and
// still a member.
func (cp *Core) authenticate(r *http.Request) (*Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, Errorf(http.StatusUnauthorized, codes.APIAuthMissing,
			"The API needs an API key: send the header 'Authorization: Bearer <API key>'.")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, Errorf(http.StatusUnauthorized, codes.APIAuthParse,
			"The Authorization header could not be parsed: send 'Authorization: Bearer <API key>'.")
	}
	tok = strings.TrimSpace(tok)
	keyID, secret, err := authn.ParseAPIKey(tok)
	if errors.Is(err, authn.ErrAPIKeyID) {
		return nil, Errorf(http.StatusUnauthorized, codes.APIKeyID,
			"You sent an API key's ID (ak_...), not the API key itself. Send the token that was shown when the key was created, or create a new key.")
	}
	if err != nil {
		return nil, Errorf(http.StatusUnauthorized, codes.APIAuthMalformed,
			"The API key is malformed: it has the form <27 characters>_<secret>. Copy it again exactly as it was shown.")
	}
	key, err := cp.store.LookupAPIKey(r.Context(), keyID)
	if errors.Is(err, store.ErrNotFound) {
		_, kid, _ := ids.Split(keyID, ids.PrefixAPIKey)
		if isAuthtoken, aerr := cp.store.AuthtokenExists(r.Context(), ids.PrefixAuthtoken+"_"+kid); aerr != nil {
			return nil, aerr
		} else if isAuthtoken {
			return nil, Errorf(http.StatusUnauthorized, codes.APIAuthtoken,
				"You sent an authtoken, which agents use. The API needs an API key: create one with POST /api_keys or in the dashboard.")
		}
		return nil, Errorf(http.StatusUnauthorized, codes.APIAuthInvalid,
			"The API key is not valid: it may have been deleted or mistyped.")
	}
	if err != nil {
		return nil, err
	}
	switch err := authn.CheckAPIKey(secret, key.State()); {
	case errors.Is(err, authn.ErrAPIKeyInvalid):
		return nil, Errorf(http.StatusUnauthorized, codes.APIAuthInvalid,
			"The API key is not valid: it may have been deleted or mistyped.")
	case errors.Is(err, authn.ErrAccountInactive):
		return nil, Errorf(http.StatusForbidden, codes.APIAccountSuspended,
			"The account %s is suspended; its API keys do not work until it is reactivated.", key.AccountID)
	case errors.Is(err, authn.ErrOwnerInactive):
		return nil, Errorf(http.StatusForbidden, codes.APIPrincipalInactive,
			"The API key's owner %s is deactivated. Ask an administrator to reactivate it, or use another key.", key.OwnerID)
	case errors.Is(err, authn.ErrNotMember):
		return nil, Forbidden("The API key's owner %s is no longer a member of account %s.", key.OwnerID, key.AccountID)
	case err != nil:
		return nil, err
	}
	return NewCaller(key), nil
}
