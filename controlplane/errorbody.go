package controlplane

import (
	"context"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane/store"
)

// errorBody is the API's error response (reference/platform-behaviour.md
// §1.2), with Tollgate's TG_ codes.
type errorBody struct {
	ErrorCode  codes.Code        `json:"error_code"`
	StatusCode int               `json:"status_code"`
	Msg        string            `json:"msg"`
	Details    map[string]string `json:"details"`
}

// toAPIError maps an operation's error to what the caller sees.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var ce *codes.Error
	var cfe *store.ConflictError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: codes.APINotFound,
			msg: "The object was not found in this account.", cause: err}
	case errors.Is(err, store.ErrOwnerNotFound):
		return &apiError{status: http.StatusBadRequest, code: codes.APIInvalidParam,
			msg: "owner_id must be a user or bot user of this account.", cause: err}
	case errors.As(err, &cfe): // a conflict the caller can act on: its own code and message
		return &apiError{status: http.StatusConflict, code: cfe.Code, msg: cfe.Message, cause: err}
	case errors.Is(err, store.ErrConflict):
		return &apiError{status: http.StatusConflict, code: codes.APIConflict,
			msg: "The change conflicts with an existing object.", cause: err}
	case errors.As(err, &ce):
		return &apiError{status: http.StatusBadRequest, code: ce.Code, msg: ce.Message, cause: ce.Cause}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusServiceUnavailable, code: codes.Internal,
			msg: "The request was cancelled before it completed.", cause: err}
	}
	return &apiError{status: http.StatusInternalServerError, code: codes.Internal,
		msg: "The control plane failed to handle this request. Retry; report the operation ID if it persists.", cause: err}
}

// notFound names the missing object in the message.
func notFound(err error, what, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &apiError{status: http.StatusNotFound, code: codes.APINotFound,
			msg: "The " + what + " " + truncate(id, 100) + " was not found in this account.", cause: err}
	}
	return err
}

// writeError logs err (5xx at error level, others at debug) and writes the
// error body.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, opID string, c *caller, err error) {
	ae := toAPIError(err)
	fields := []zap.Field{zap.String("operation_id", opID), zap.String("method", r.Method),
		zap.String("path", r.URL.Path), zap.String("code", string(ae.code)), zap.Int("status", ae.status)}
	if c != nil {
		fields = append(fields, zap.String("account_id", c.auth.AccountID), zap.String("principal_id", c.auth.OwnerID))
	}
	if ae.cause != nil {
		fields = append(fields, zap.Error(ae.cause))
	}
	if ae.status >= 500 && !errors.Is(ae.cause, context.Canceled) {
		s.log.Error("API operation failed", fields...)
	} else if ce := s.log.Check(zap.DebugLevel, "API request refused"); ce != nil {
		ce.Write(fields...)
	}
	writeJSON(w, ae.status, errorBody{
		ErrorCode:  ae.code,
		StatusCode: ae.status,
		Msg:        ae.msg,
		Details:    map[string]string{"operation_id": opID},
	})
}
