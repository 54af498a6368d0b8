package authn

import (
	"errors"

	"github.com/tollgate/tollgate/codes"
)

// ErrMalformed means a token does not have the shape "<KSUID>_<secret>".
var ErrMalformed = errors.New("authn: malformed token")

// Denial errors returned by Verify. Each is a *codes.Error carrying the code
// and message an agent sees; compare with errors.Is.
var (
	ErrAuthtokenMissing   = codes.NewError(codes.AuthtokenMissing, "An authtoken is required. Pass --authtoken, set TOLLGATE_AUTHTOKEN, or run 'tollgate config add-authtoken'.")
	ErrAuthtokenMalformed = codes.NewError(codes.AuthtokenMalformed, "The authtoken is malformed. Copy it again exactly as it was shown when it was created.")
	ErrAuthtokenInvalid   = codes.NewError(codes.AuthtokenInvalid, "The authtoken is well-formed but not valid: it may have been deleted or mistyped. Create a new one with the API or ask your administrator.")
	ErrCredentialRevoked  = codes.NewError(codes.CredentialRevoked, "The authtoken's owner or account is deactivated. Ask your administrator to reactivate it, or use another authtoken.")
)

// SSH key denials returned by VerifySSHKey, as an SSH session shows them.
var (
	ErrSSHKeyUnknown = codes.NewError(codes.AuthtokenInvalid, "This SSH key is not registered. Add its public key as an SSH credential (POST /ssh_credentials).")
	ErrSSHKeyRevoked = codes.NewError(codes.CredentialRevoked, "This SSH key's credential was deleted, or its owner or account is deactivated.")
)
