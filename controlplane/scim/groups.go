package scim

import (
	"encoding/json"
	"net/http"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// listGroups answers GET /Groups: filtered by displayName, externalId or
// id (eq), paged; excludedAttributes=members leaves members out.
func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var f store.SCIMGroupFilter
	if err := listFilter(r.URL.Query().Get("filter"), map[string]*string{
		"displayname": &f.DisplayName, "externalid": &f.ExternalID, "id": &f.ID}); err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	groups, total, err := s.store.SCIMListGroups(r.Context(), c.AccountID(), f, p)
	if err != nil {
		return err
	}
	items := make([]any, len(groups))
	for i := range groups {
		items[i] = s.groupOut(r, &groups[i], !excluded(r, "members"))
	}
	writeList(w, p, total, items)
	return nil
}

// createGroup answers POST /Groups (201): displayName, externalId,
// members and the Tollgate extension's roles.
func (s *Server) createGroup(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body json.RawMessage
	if err := decode(r, &body); err != nil {
		return err
	}
	var g store.SCIMGroup
	if err := applyObject("replace", body, schemaGroup, groupSetter(&g)); err != nil {
		return err
	}
	out, err := s.store.SCIMCreateGroup(r.Context(), c.Actor, c.AccountID(), g)
	if err != nil {
		return err
	}
	res := s.groupOut(r, out, true)
	w.Header().Set("Location", res.Meta.Location)
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// groupID reads the path's id: a group ID, else 404.
func groupID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if _, _, err := ids.Split(id, ids.PrefixSCIMGroup); err != nil {
		return "", fail(http.StatusNotFound, codes.SCIMNotFound, "There is no Group %q in this account.", controlplane.Truncate(id, 100))
	}
	return id, nil
}

// getGroup answers GET /Groups/{id}.
func (s *Server) getGroup(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := groupID(r)
	if err != nil {
		return err
	}
	g, err := s.store.SCIMGetGroup(r.Context(), c.AccountID(), id)
	if err != nil {
		return controlplane.NotFound(err, "Group", id)
	}
	writeJSON(w, http.StatusOK, s.groupOut(r, g, !excluded(r, "members")))
	return nil
}

// replaceGroup answers PUT /Groups/{id}: the attributes given replace the
// group's; members and roles absent keep theirs.
func (s *Server) replaceGroup(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body json.RawMessage
	if err := decode(r, &body); err != nil {
		return err
	}
	return s.updateGroup(w, r, c, func(g *store.SCIMGroup) error {
		return applyObject("replace", body, schemaGroup, groupSetter(g))
	})
}

// patchGroup answers PATCH /Groups/{id} (patch.go): Entra ID and Okta
// add and remove members this way.
func (s *Server) patchGroup(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var req patchRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	return s.updateGroup(w, r, c, func(g *store.SCIMGroup) error {
		return applyOps(req.Operations, schemaGroup, groupSetter(g))
	})
}

// updateGroup changes the path's group with apply in one unit of work
// and answers the group after it.
func (s *Server) updateGroup(w http.ResponseWriter, r *http.Request, c *controlplane.Caller, apply func(*store.SCIMGroup) error) error {
	id, err := groupID(r)
	if err != nil {
		return err
	}
	g, err := s.store.SCIMUpdateGroup(r.Context(), c.Actor, c.AccountID(), id, func(cur store.SCIMGroup) (store.SCIMGroup, error) {
		err := apply(&cur)
		return cur, err
	})
	if err != nil {
		return controlplane.NotFound(err, "Group", id)
	}
	writeJSON(w, http.StatusOK, s.groupOut(r, g, !excluded(r, "members")))
	return nil
}

// deleteGroup answers DELETE /Groups/{id} (204); its members' roles are
// recomputed.
func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := groupID(r)
	if err != nil {
		return err
	}
	if err := s.store.SCIMDeleteGroup(r.Context(), c.Actor, c.AccountID(), id); err != nil {
		return controlplane.NotFound(err, "Group", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
