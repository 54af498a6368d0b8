package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// PathPrefix is where SCIM is served on the API listener: the base URL an
// identity provider is given is the API's base URL followed by
// "/scim/v2".
const PathPrefix = "/scim/v2/"

// Config holds a Server's optional settings.
type Config struct {
	// BaseURL is the API's public base URL ("https://api.example.com"),
	// used in each resource's meta.location. Default: the scheme and Host
	// of each request.
	BaseURL string
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
}

// Server is the SCIM service of one control plane. Create it with New; it
// is safe for concurrent use.
type Server struct {
	core  *controlplane.Core
	store *store.Store
	cfg   Config
	log   *zap.Logger
	mux   *http.ServeMux
}

// New returns the SCIM service over core. It starts nothing: serve
// Handler() under PathPrefix of the API listener (Mount). It panics if
// core is nil (controlplane.ErrNoCore), a wiring bug.
func New(cfg Config, core *controlplane.Core) *Server {
	if core == nil {
		panic(controlplane.ErrNoCore)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	s := &Server{core: core, store: core.Store(), cfg: cfg, log: core.Logger()}
	s.mux = s.routes()
	return s
}

// Handler returns the SCIM http.Handler, which serves paths under
// PathPrefix.
func (s *Server) Handler() http.Handler { return s.mux }

// Mount returns a handler that sends requests under PathPrefix (and
// "/scim/v2" itself) to scim and every other request to api.
func Mount(scim, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, PathPrefix) || r.URL.Path == strings.TrimSuffix(PathPrefix, "/") {
			scim.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// handlerFunc is one SCIM operation of an authenticated administrator.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error

// routes builds the SCIM router.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	s.route(mux, "/scim/v2/Users", map[string]handlerFunc{http.MethodGet: s.listUsers, http.MethodPost: s.createUser})
	s.route(mux, "/scim/v2/Users/{id}", map[string]handlerFunc{http.MethodGet: s.getUser, http.MethodPut: s.replaceUser,
		http.MethodPatch: s.patchUser, http.MethodDelete: s.deleteUser})
	s.route(mux, "/scim/v2/Groups", map[string]handlerFunc{http.MethodGet: s.listGroups, http.MethodPost: s.createGroup})
	s.route(mux, "/scim/v2/Groups/{id}", map[string]handlerFunc{http.MethodGet: s.getGroup, http.MethodPut: s.replaceGroup,
		http.MethodPatch: s.patchGroup, http.MethodDelete: s.deleteGroup})
	s.route(mux, "/scim/v2/ServiceProviderConfig", map[string]handlerFunc{http.MethodGet: s.serviceProviderConfig})
	rtList, rtOne := docHandlers(s.resourceTypeDocs, func(d *resourceTypeDoc) string { return d.ID }, "resource type")
	s.route(mux, "/scim/v2/ResourceTypes", map[string]handlerFunc{http.MethodGet: rtList})
	s.route(mux, "/scim/v2/ResourceTypes/{id}", map[string]handlerFunc{http.MethodGet: rtOne})
	schemaList, schemaOne := docHandlers(s.schemaDocs, func(d *schemaDoc) string { return d.ID }, "schema")
	s.route(mux, "/scim/v2/Schemas", map[string]handlerFunc{http.MethodGet: schemaList})
	s.route(mux, "/scim/v2/Schemas/{id}", map[string]handlerFunc{http.MethodGet: schemaOne})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fail(http.StatusNotFound, codes.SCIMNotFound,
			"There is no SCIM endpoint at %s: the base URL is %s, with Users, Groups, ServiceProviderConfig, ResourceTypes and Schemas under it.",
			controlplane.Truncate(r.URL.Path, 200), strings.TrimSuffix(PathPrefix, "/")))
	})
	return mux
}

// route registers the operations of one path; other methods get 405.
// Every operation authenticates first (serve).
func (s *Server) route(mux *http.ServeMux, pattern string, m map[string]handlerFunc) {
	allowed := make([]string, 0, len(m))
	for k := range m {
		allowed = append(allowed, k)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, fail(http.StatusMethodNotAllowed, codes.SCIMMethod, "%s does not support %s; use %s.", pattern, r.Method, allow))
			return
		}
		s.serve(w, r, h)
	})
}

// serve runs h for an administrator of the key's account: it assigns the
// operation ID, authenticates and applies rate limits and the api IP
// restriction (Core.Admit), refuses other roles (codes.SCIMForbidden), and
// answers an error or a panic in the SCIM error shape.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, h handlerFunc) {
	opID := ids.New(ids.PrefixOperation)
	w.Header().Set("Tollgate-Operation-Id", opID)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("SCIM operation panicked", zap.String("operation_id", opID), zap.Any("panic", p), zap.Stack("stack"))
			s.writeError(w, r, fail(http.StatusInternalServerError, codes.Internal,
				"The control plane failed to handle this request. Retry; report the operation ID %s if it persists.", opID))
		}
	}()
	c, err := s.core.Admit(w, r)
	if err == nil && !c.IsAdmin() {
		err = fail(http.StatusForbidden, codes.SCIMForbidden,
			"SCIM provisioning needs an API key of an administrator of the account; the key's owner %s is not one.", c.Key.OwnerID)
	}
	if err == nil {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		err = h(w, r, c)
	}
	if err != nil {
		s.writeError(w, r, err)
	}
}

// decode reads the JSON body into v. Attribute names are matched without
// regard to case (RFC 7643 §2.1), as encoding/json does for struct fields.
func decode(r *http.Request, v any) error {
	err := json.NewDecoder(r.Body).Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return fail(http.StatusRequestEntityTooLarge, codes.SCIMBodyTooLarge, "The request body is over %d bytes.", tooBig.Limit)
	case err != nil:
		return invalid(codes.SCIMInvalidSyntax, "The request body is not a SCIM resource in JSON: %s.", controlplane.Truncate(err.Error(), 200))
	}
	return nil
}

// writeJSON writes v as an application/scim+json response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"schemas":["`+schemaError+`"],"status":"500","detail":"TG_500: encoding the response failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// baseURL is the URL prefix of resource locations, ending in /scim/v2.
func (s *Server) baseURL(r *http.Request) string {
	base := strings.TrimRight(s.cfg.BaseURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + strings.TrimSuffix(PathPrefix, "/")
}

// page reads startIndex and count (RFC 7644 §3.4.2.4): startIndex below
// 1 is 1; count defaults to and is capped at store.MaxPageSize, and a
// negative count is 0.
func page(r *http.Request) (store.SCIMPage, error) {
	p := store.SCIMPage{StartIndex: 1, Count: store.MaxPageSize}
	for name, dst := range map[string]*int{"startIndex": &p.StartIndex, "count": &p.Count} {
		v := r.URL.Query().Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, invalid(codes.SCIMInvalidValue, "%s must be an integer, not %q.", name, controlplane.Truncate(v, 40))
		}
		*dst = n
	}
	p.StartIndex = max(p.StartIndex, 1)
	p.Count = min(max(p.Count, 0), store.MaxPageSize)
	return p, nil
}
