package authn

import (
	"errors"

	"github.com/tollgate/tollgate/config"
)

// ErrMalformed means a token does not have the shape "<KSUID>_<secret>".
var ErrMalformed = errors.New("authn: malformed token")

// Denial errors returned by Verify. Each is a *config.Error carrying the code
// and message an agent sees; compare with errors.Is.
var (
	ErrAuthtokenMissing   = config.NewError(config.CodeAuthtokenMissing, "An authtoken is required. Pass --authtoken, set TOLLGATE_AUTHTOKEN, or run 'tollgate config add-authtoken'.")
	ErrAuthtokenMalformed = config.NewError(config.CodeAuthtokenMalformed, "The authtoken is malformed. Copy it again exactly as it was shown when it was created.")
	ErrAuthtokenInvalid   = config.NewError(config.CodeAuthtokenInvalid, "The authtoken is well-formed but not valid: it may have been deleted or mistyped. Create a new one with the API or ask your administrator.")
	ErrCredentialRevoked  = config.NewError(config.CodeCredentialRevoked, "The authtoken's owner or account is deactivated. Ask your administrator to reactivate it, or use another authtoken.")
)
