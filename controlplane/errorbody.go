package controlplane

import (
	"context"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
)

// errorBody is the API's error response
// (docs/api-compatibility.md#auth-and-errors), with Tollgate's TG_ codes.
type errorBody struct {
	ErrorCode  codes.Code        `json:"error_code"`
	StatusCode int               `json:"status_code"`
	Msg        string            `json:"msg"`
	Details    map[string]string `json:"details"`
}

// AsError maps an operation's error to what the caller sees: an *Error as
// it is; store errors (not found, conflicts) and *codes.Error as their 4xx;
// a cancelled request as 503; anything else as a 500 whose cause only the
// log sees.
func AsError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var ce *codes.Error
	var cfe *store.ConflictError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: codes.APINotFound,
			Msg: "The object was not found in this account.", Cause: err}
	case errors.Is(err, store.ErrOwnerNotFound):
		return &Error{Status: http.StatusBadRequest, Code: codes.APIInvalidParam,
			Msg: "owner_id must be a user or bot user of this account.", Cause: err}
	case errors.As(err, &cfe): // a conflict the caller can act on: its own code and message
		return &Error{Status: http.StatusConflict, Code: cfe.Code, Msg: cfe.Message, Cause: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: codes.APIConflict,
			Msg: "The change conflicts with an existing object.", Cause: err}
	case errors.As(err, &ce):
		return &Error{Status: http.StatusBadRequest, Code: ce.Code, Msg: ce.Message, Cause: ce.Cause}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Code: codes.Internal,
			Msg: "The request was cancelled before it completed.", Cause: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: codes.Internal,
		Msg: "The control plane failed to handle this request. Retry; report the operation ID if it persists.", Cause: err}
}

// NotFound names the missing object in the message when err is
// store.ErrNotFound (a 404 *Error), and returns other errors as they are.
func NotFound(err error, what, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusNotFound, Code: codes.APINotFound,
			Msg: "The " + what + " " + Truncate(id, 100) + " was not found in this account.", Cause: err}
	}
	return err
}

// writeError logs err (5xx at error level, others at debug) and writes the
// error body.
func (cp *Core) writeError(w http.ResponseWriter, r *http.Request, opID string, c *Caller, err error) {
	ae := AsError(err)
	fields := []zap.Field{zap.String("operation_id", opID), zap.String("method", r.Method),
		zap.String("path", r.URL.Path), zap.String("code", string(ae.Code)), zap.Int("status", ae.Status)}
	if c != nil {
		fields = append(fields, zap.String("account_id", c.Key.AccountID), zap.String("principal_id", c.Key.OwnerID))
	}
	if ae.Cause != nil {
		fields = append(fields, zap.Error(ae.Cause))
	}
	if ae.Status >= 500 && !errors.Is(ae.Cause, context.Canceled) {
		cp.log.Error("API operation failed", fields...)
	} else if ce := cp.log.Check(zap.DebugLevel, "API request refused"); ce != nil {
		ce.Write(fields...)
	}
	WriteJSON(w, ae.Status, errorBody{
		ErrorCode:  ae.Code,
		StatusCode: ae.Status,
		Msg:        ae.Msg,
		Details:    map[string]string{"operation_id": opID},
	})
}
