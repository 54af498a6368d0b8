package sso

import (
	"net/http"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
)

// refuse is a sign-in refusal the browser sees: status, code and a message
// that says what to do; cause goes only to the log.
func refuse(status int, code codes.Code, cause error, format string, args ...any) error {
	e := controlplane.Errorf(status, code, format, args...)
	e.Cause = cause
	return e
}

// invalidResponse is codes.SSOResponseInvalid (401).
func invalidResponse(cause error, format string, args ...any) error {
	return refuse(http.StatusUnauthorized, codes.SSOResponseInvalid, cause, format, args...)
}

// providerFailed is codes.SSOProviderFailed (502).
func providerFailed(cause error, format string, args ...any) error {
	return refuse(http.StatusBadGateway, codes.SSOProviderFailed, cause, format, args...)
}
