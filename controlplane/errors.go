package controlplane

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/codes"
)

// ErrNoStore means New was given a nil store.
var ErrNoStore = errors.New("controlplane: a store is required")

// ErrNoCore means a product's New (restapi, dashboard, edgeapi) was given a
// nil *Core.
var ErrNoCore = errors.New("controlplane: a Core is required")

// Error is an error the control plane answers a request with: an HTTP
// status, a stable code and a message for the caller; Cause goes only to
// logs. Serve writes it as the API's error body (errorbody.go), the
// dashboard as an error box or page.
type Error struct {
	Status int
	Code   codes.Code
	Msg    string
	Cause  error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Msg, e.Cause)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Msg)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf returns an *Error with a formatted message.
func Errorf(status int, code codes.Code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// BadRequest returns a 400 *Error with code and a formatted message.
func BadRequest(code codes.Code, format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, code, format, args...)
}

// Forbidden returns a 403 *Error with codes.APIForbidden: a role refusal.
func Forbidden(format string, args ...any) *Error {
	return Errorf(http.StatusForbidden, codes.APIForbidden, format, args...)
}
