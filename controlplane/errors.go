package controlplane

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/tollgate/tollgate/codes"
)

// ErrNoStore means NewServer was given a nil store.
var ErrNoStore = errors.New("controlplane: a store is required")

// apiError is an error the API answers with: an HTTP status, a stable code
// and a message for the caller; the cause goes only to logs.
type apiError struct {
	status int
	code   codes.Code
	msg    string
	cause  error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.status, e.code, e.msg, e.cause)
	}
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg)
}

func (e *apiError) Unwrap() error { return e.cause }

// newAPIError returns an *apiError with a formatted message.
func newAPIError(status int, code codes.Code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(code codes.Code, format string, args ...any) *apiError {
	return newAPIError(http.StatusBadRequest, code, format, args...)
}

func forbidden(format string, args ...any) *apiError {
	return newAPIError(http.StatusForbidden, codes.APIForbidden, format, args...)
}
