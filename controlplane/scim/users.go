package scim

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// listUsers answers GET /Users: the account's members, filtered by
// userName, emails.value, externalId or id (eq), paged by startIndex and
// count. No match is an empty list, not a 404.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var f store.SCIMUserFilter
	if err := listFilter(r.URL.Query().Get("filter"), map[string]*string{
		"username": &f.Email, "emails.value": &f.Email, "externalid": &f.ExternalID, "id": &f.ID}); err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	users, total, err := s.store.SCIMListUsers(r.Context(), c.AccountID(), f, p)
	if err != nil {
		return err
	}
	items := make([]any, len(users))
	for i := range users {
		items[i] = s.userOut(r, &users[i])
	}
	writeList(w, p, total, items)
	return nil
}

// createUser answers POST /Users: the user with userName (an e-mail
// address; reused when one exists) becomes a member with the default roles
// (201). A member already: 409 uniqueness.
func (s *Server) createUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	in := store.SCIMUserInput{Active: true}
	if err := s.decodeUser(r, &in); err != nil {
		return err
	}
	if in.Email == "" {
		return invalid(codes.SCIMUserName, "userName is required: the user's e-mail address.")
	}
	u, err := s.store.SCIMCreateUser(r.Context(), c.Actor, c.AccountID(), in)
	if err != nil {
		return err
	}
	out := s.userOut(r, u)
	w.Header().Set("Location", out.Meta.Location)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// decodeUser applies a User body (POST or PUT) onto in: a path-less
// replace, so absent attributes keep their value.
func (s *Server) decodeUser(r *http.Request, in *store.SCIMUserInput) error {
	var body json.RawMessage
	if err := decode(r, &body); err != nil {
		return err
	}
	var nameHint string
	if err := applyObject("replace", body, schemaUser, userSetter(in, &nameHint)); err != nil {
		return err
	}
	if in.DisplayName == "" {
		in.DisplayName = nameHint
	}
	return nil
}

// userID reads the path's id: a user ID, else 404.
func userID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if _, _, err := ids.Split(id, ids.PrefixUser); err != nil {
		return "", fail(http.StatusNotFound, codes.SCIMNotFound, "There is no User %q in this account.", controlplane.Truncate(id, 100))
	}
	return id, nil
}

// getUser answers GET /Users/{id}.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := userID(r)
	if err != nil {
		return err
	}
	u, err := s.store.SCIMGetUser(r.Context(), c.AccountID(), id)
	if err != nil {
		return controlplane.NotFound(err, "User", id)
	}
	writeJSON(w, http.StatusOK, s.userOut(r, u))
	return nil
}

// replaceUser answers PUT /Users/{id} (RFC 7644 §3.5.1, as Okta sends
// it): the attributes given replace the user's.
func (s *Server) replaceUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := userID(r)
	if err != nil {
		return err
	}
	var body json.RawMessage
	if err := decode(r, &body); err != nil {
		return err
	}
	return s.updateUser(w, r, c, id, func(in *store.SCIMUserInput) error {
		var hint string
		return applyObject("replace", body, schemaUser, userSetter(in, &hint))
	})
}

// patchUser answers PATCH /Users/{id} (RFC 7644 §3.5.2; patch.go).
func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := userID(r)
	if err != nil {
		return err
	}
	var req patchRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	return s.updateUser(w, r, c, id, func(in *store.SCIMUserInput) error {
		var hint string
		return applyOps(req.Operations, schemaUser, userSetter(in, &hint))
	})
}

// updateUser changes user id with apply, in one unit of work, and answers
// the user as they are after it.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller, id string,
	apply func(*store.SCIMUserInput) error) error {
	u, err := s.store.SCIMUpdateUser(r.Context(), c.Actor, c.AccountID(), id, func(cur store.SCIMUserInput) (store.SCIMUserInput, error) {
		err := apply(&cur)
		return cur, err
	})
	if err != nil {
		return controlplane.NotFound(err, "User", id)
	}
	writeJSON(w, http.StatusOK, s.userOut(r, u))
	return nil
}

// deleteUser answers DELETE /Users/{id}: the user leaves the account,
// with their credentials there (204).
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := userID(r)
	if err != nil {
		return err
	}
	if _, err := s.store.SCIMDeleteUser(r.Context(), c.Actor, c.AccountID(), id); err != nil {
		return controlplane.NotFound(err, "User", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// excluded reports whether attribute attr is in the request's
// excludedAttributes.
func excluded(r *http.Request, attr string) bool {
	for _, a := range strings.Split(r.URL.Query().Get("excludedAttributes"), ",") {
		if strings.EqualFold(strings.TrimSpace(a), attr) {
			return true
		}
	}
	return false
}
