package scim

import (
	"fmt"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
)

// scimTypes maps a code to the scimType of RFC 7644 §3.12, table 9.
var scimTypes = map[codes.Code]string{
	codes.SCIMInvalidSyntax: "invalidSyntax",
	codes.SCIMBodyTooLarge:  "invalidSyntax",
	codes.SCIMInvalidFilter: "invalidFilter",
	codes.SCIMInvalidPath:   "invalidPath",
	codes.SCIMInvalidValue:  "invalidValue",
	codes.SCIMUserName:      "invalidValue",
	codes.SCIMMemberUnknown: "invalidValue",
	codes.SCIMGroupRoles:    "invalidValue",
	codes.SCIMUniqueness:    "uniqueness",
	codes.SCIMMutability:    "mutability",
	codes.RoleInvalid:       "invalidValue",
	codes.APIInvalidParam:   "invalidValue",
}

// errorBody is the SCIM error response (RFC 7644 §3.12): status is the
// HTTP status as a string; detail starts with our code.
type errorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail"`
}

// fail returns an *controlplane.Error with status, code and a formatted
// message.
func fail(status int, code codes.Code, format string, args ...any) error {
	return controlplane.Errorf(status, code, format, args...)
}

// invalid returns a 400 with code.
func invalid(code codes.Code, format string, args ...any) error {
	return fail(http.StatusBadRequest, code, format, args...)
}

// writeError answers err in the SCIM shape. A store ErrNotFound is
// codes.SCIMNotFound; 5xx are logged at error level with their cause,
// others at debug.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := *controlplane.AsError(err)
	if e.Code == codes.APINotFound {
		e.Code = codes.SCIMNotFound
	}
	if e.Status >= 500 {
		s.log.Error("SCIM request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	} else if ce := s.log.Check(zap.DebugLevel, "SCIM request refused"); ce != nil {
		ce.Write(zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	}
	writeJSON(w, e.Status, errorBody{
		Schemas:  []string{schemaError},
		Status:   strconv.Itoa(e.Status),
		ScimType: scimTypes[e.Code],
		Detail:   fmt.Sprintf("%s: %s", e.Code, e.Msg),
	})
}
