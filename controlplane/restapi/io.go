package restapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
)

// decodeBody reads a JSON object into dst, a pointer to a struct. It
// refuses a Content-Type other than application/json (TG_210), a body over
// MaxBodyBytes (TG_212), anything but one JSON object (TG_213), a field not
// in dst's json tags, matched exactly (TG_214), and a field of the wrong type
// (TG_213). An empty body is an empty object.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return controlplane.Errorf(http.StatusRequestEntityTooLarge, codes.APIBodyUnreadable,
				"The request body is larger than %d bytes.", s.cfg.MaxBodyBytes)
		}
		return &controlplane.Error{Status: http.StatusBadRequest, Code: codes.APIBodyUnreadable,
			Msg: "The request body could not be read.", Cause: err}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return controlplane.Errorf(http.StatusUnsupportedMediaType, codes.APIContentType,
			"A request body must be JSON, sent with Content-Type: application/json (got %q).", controlplane.Truncate(ct, 60))
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return &controlplane.Error{Status: http.StatusBadRequest, Code: codes.APIBodyInvalid,
			Msg: "The request body must be one JSON object.", Cause: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return controlplane.BadRequest(codes.APIBodyInvalid, "The request body must be one JSON object, with nothing after it.")
	}
	// The hosted platform's clients repeat the object's id in the body of
	// an update (@ngrok/ngrok-api does): accept it when it is the path's.
	if raw, ok := fields["id"]; ok && r.Method == http.MethodPatch && r.PathValue("id") != "" {
		var id string
		if json.Unmarshal(raw, &id) != nil || id != r.PathValue("id") {
			return controlplane.BadRequest(codes.APIInvalidParam, "The id in the request body must be the id in the path, %q.", controlplane.Truncate(r.PathValue("id"), 100))
		}
		delete(fields, "id")
	}
	known := jsonFields(reflect.TypeOf(dst).Elem())
	for k := range fields {
		if !known[k] {
			return controlplane.BadRequest(codes.APIUnknownParam, "Unknown field %q in the request body. Known fields: %s.",
				controlplane.Truncate(k, 60), strings.Join(sortedKeys(known), ", "))
		}
	}
	for k, raw := range fields {
		if err := json.Unmarshal(raw, fieldPtr(dst, k)); err != nil {
			var ute *json.UnmarshalTypeError
			if errors.As(err, &ute) {
				return &controlplane.Error{Status: http.StatusBadRequest, Code: codes.APIBodyInvalid,
					Msg: fmt.Sprintf("Field %q must be %s, not a JSON %s.", k, jsonKind(ute.Type), ute.Value), Cause: err}
			}
			return &controlplane.Error{Status: http.StatusBadRequest, Code: codes.APIBodyInvalid,
				Msg: fmt.Sprintf("Field %q is not valid.", k), Cause: err}
		}
	}
	return nil
}

// jsonFields returns the JSON names of a struct type's fields.
func jsonFields(t reflect.Type) map[string]bool {
	out := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if name := jsonName(t.Field(i)); name != "" {
			out[name] = true
		}
	}
	return out
}

func jsonName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	if tag == "" {
		return f.Name
	}
	return tag
}

// fieldPtr returns a pointer to the field of *dst whose JSON name is name.
func fieldPtr(dst any, name string) any {
	v := reflect.ValueOf(dst).Elem()
	for i := 0; i < v.NumField(); i++ {
		if jsonName(v.Type().Field(i)) == name {
			return v.Field(i).Addr().Interface()
		}
	}
	panic("controlplane: no field " + name) // jsonFields vetted name
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ { // tiny sets: insertion sort
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// jsonKind names the JSON shape a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Float64:
		return "a number"
	}
	return "of another type"
}

// noBody refuses a body on a method that takes none (TG_211) and any query
// parameter (TG_214).
func noBody(r *http.Request) error {
	if err := onlyParams(r.URL.Query()); err != nil {
		return err
	}
	if r.ContentLength > 0 {
		return controlplane.BadRequest(codes.APIBodyNotAllowed, "%s %s takes no request body.", r.Method, controlplane.Truncate(r.URL.Path, 100))
	}
	if r.ContentLength < 0 { // chunked: look
		var b [1]byte
		if n, _ := io.ReadFull(r.Body, b[:]); n > 0 {
			return controlplane.BadRequest(codes.APIBodyNotAllowed, "%s %s takes no request body.", r.Method, controlplane.Truncate(r.URL.Path, 100))
		}
	}
	return nil
}

// onlyParams refuses query parameters other than allowed.
func onlyParams(q url.Values, allowed ...string) error {
	for k := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			if len(allowed) == 0 {
				return controlplane.BadRequest(codes.APIUnknownParam, "Unknown query parameter %q: this operation takes none.", controlplane.Truncate(k, 60))
			}
			return controlplane.BadRequest(codes.APIUnknownParam, "Unknown query parameter %q: use %s.", controlplane.Truncate(k, 60), strings.Join(allowed, ", "))
		}
	}
	return nil
}

// listParams parses a list request's before_id (an ID with prefix) and
// limit (1–100, default 100), and refuses a body.
func listParams(r *http.Request, prefix string) (store.Page, error) {
	q := r.URL.Query()
	// @ngrok/ngrok-api pages with ?beforeId= (camelCase): the same cursor.
	if v, ok := q["beforeId"]; ok {
		if _, dup := q["before_id"]; dup {
			return store.Page{}, controlplane.BadRequest(codes.APIInvalidParam, "Give before_id once.")
		}
		q["before_id"] = v
		delete(q, "beforeId")
	}
	if err := onlyParams(q, "before_id", "limit"); err != nil {
		return store.Page{}, err
	}
	if r.ContentLength > 0 {
		return store.Page{}, controlplane.BadRequest(codes.APIBodyNotAllowed, "GET %s takes no request body.", controlplane.Truncate(r.URL.Path, 100))
	}
	var p store.Page
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || len(v) > 1 || n < 1 || n > store.MaxPageSize {
			return p, controlplane.BadRequest(codes.APIPageSize, "The page size limit must be between 1 and %d.", store.MaxPageSize)
		}
		p.Limit = n
	}
	if v, ok := q["before_id"]; ok {
		if len(v) > 1 {
			return p, controlplane.BadRequest(codes.APIInvalidParam, "Give before_id once.")
		}
		if err := controlplane.CheckID(v[0], prefix); err != nil {
			return p, err
		}
		p.BeforeID = v[0]
	}
	return p, nil
}

// pathID returns the {id} path segment after checking that it is an ID with
// one of the prefixes.
func pathID(r *http.Request, prefixes ...string) (string, error) {
	id := r.PathValue("id")
	return id, controlplane.CheckID(id, prefixes...)
}

// listResponse writes a list envelope: {"<key>": items, "uri", "next_page_uri"}.
func (s *Server) listResponse(w http.ResponseWriter, r *http.Request, key string, items any, more bool, lastID string, page store.Page) {
	base := s.baseURL(r) + r.URL.Path
	self := base
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	var next *string
	if more {
		q := url.Values{"before_id": {lastID}}
		if page.Limit > 0 {
			q.Set("limit", strconv.Itoa(page.Limit))
		}
		n := base + "?" + q.Encode()
		next = &n
	}
	controlplane.WriteJSON(w, http.StatusOK, map[string]any{key: items, "uri": self, "next_page_uri": next})
}

// timestamp formats a time as the API does: RFC 3339, UTC, seconds.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
