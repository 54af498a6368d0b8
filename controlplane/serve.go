package controlplane

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/ids"
)

// HandlerFunc is an API operation. It returns an error to answer with
// (an *Error, a store error or a *codes.Error) or nil after writing its
// response. c is the authenticated caller, nil for operations served
// without authentication.
type HandlerFunc func(w http.ResponseWriter, r *http.Request, c *Caller) error

// Serve runs one API operation of the REST API or the edge API: it assigns
// the operation ID (Tollgate-Operation-Id), checks the version header,
// authenticates the API key when auth is true and applies the rate limits
// (ratelimit.go), applies the caller's account's api IP restrictions
// (iprestrict.go), and turns a returned error or a panic into the API's
// error body (errorbody.go).
func (cp *Core) Serve(w http.ResponseWriter, r *http.Request, h HandlerFunc, auth bool) {
	opID := ids.New(ids.PrefixOperation)
	w.Header().Set("Tollgate-Operation-Id", opID)
	var c *Caller
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			cp.log.Error("API operation panicked", zap.String("operation_id", opID), zap.Any("panic", p), zap.Stack("stack"))
			cp.writeError(w, r, opID, c, Errorf(http.StatusInternalServerError, codes.Internal,
				"The control plane failed to handle this request. Retry; report the operation ID if it persists."))
		}
	}()
	err := checkVersion(r)
	if err == nil {
		c, err = cp.admit(w, r, auth) // authenticates when auth; rate limits (ratelimit.go)
	}
	if err == nil && c != nil {
		err = cp.checkAPIRestriction(r, c) // the account's api IP restrictions (iprestrict.go)
	}
	if err == nil {
		err = h(w, r, c)
	}
	if err != nil {
		cp.writeError(w, r, opID, c, err)
	}
}

// NoRoute answers a request for a path that no API route serves: 404 with
// codes.APINotFound, through Serve without authentication.
func (cp *Core) NoRoute(w http.ResponseWriter, r *http.Request) {
	cp.Serve(w, r, func(http.ResponseWriter, *http.Request, *Caller) error {
		return Errorf(http.StatusNotFound, codes.APINotFound,
			"There is no API resource at %s. Check the path against the API reference.", Truncate(r.URL.Path, 200))
	}, false)
}

// checkVersion accepts requests without a version header and those that ask
// for version 2 (Ngrok-Version, as the hosted platform's clients send it).
func checkVersion(r *http.Request) error {
	v := r.Header.Get("Ngrok-Version")
	if v == "" || v == "2" {
		return nil
	}
	return BadRequest(codes.APIVersion, "API version %q is not supported: send Ngrok-Version: 2, or no version header.", Truncate(v, 20))
}

// WriteJSON writes v as the JSON response body with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error_code":"TG_500","status_code":500,"msg":"encoding the response failed","details":{}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// CheckID refuses a malformed ID or one of another kind (TG_2601).
func CheckID(id string, prefixes ...string) error {
	p, _, err := ids.Split(id, "")
	if err == nil {
		for _, want := range prefixes {
			if p == want {
				return nil
			}
		}
	}
	return BadRequest(codes.APIInvalidID, "%q is not a valid ID here: want %s_ followed by 27 characters.",
		Truncate(id, 100), strings.Join(prefixes, "_ or "))
}

// Truncate cuts s to n bytes for a message, marking the cut with "…".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Admit is what Serve does before an operation, for a product of the API
// listener that answers in its own error shape (SCIM, RFC 7644 §3.12):
// it authenticates the request's API key and applies the rate limits
// (ratelimit.go) and the caller's account's api IP restrictions
// (iprestrict.go). Errors are *Error (AsError), with Retry-After set on w
// for a 429.
func (cp *Core) Admit(w http.ResponseWriter, r *http.Request) (*Caller, error) {
	c, err := cp.admit(w, r, true)
	if err == nil {
		err = cp.checkAPIRestriction(r, c)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}
