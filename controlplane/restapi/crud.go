package restapi

import (
	"context"
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
)

// getOne answers GET /<collection>/{id} for the objects of the caller's
// account: the path ID must carry prefix (TG_2601 otherwise), the request
// has no body (TG_211), and an object of another account, or none, is a 404
// that names what and the ID.
func getOne[T, J any](prefix, what string, get func(ctx context.Context, accountID, id string) (*T, error),
	render func(*http.Request, *T) J) controlplane.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
		id, err := objectPathID(r, prefix)
		if err != nil {
			return err
		}
		v, err := get(r.Context(), c.AccountID(), id)
		if err != nil {
			return controlplane.NotFound(err, what, id)
		}
		controlplane.WriteJSON(w, http.StatusOK, render(r, v))
		return nil
	}
}

// listPage answers GET /<collection>: one page of the caller's account's
// objects, newest first (listParams: before_id with prefix, limit 1–100),
// under key with uri and next_page_uri (docs/api-compatibility.md#conventions).
func listPage[T, J any](s *Server, key, prefix string,
	list func(ctx context.Context, accountID string, page store.Page) ([]T, bool, error),
	render func(*http.Request, *T) J, idOf func(*T) string) controlplane.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
		page, err := listParams(r, prefix)
		if err != nil {
			return err
		}
		objs, more, err := list(r.Context(), c.AccountID(), page)
		if err != nil {
			return err
		}
		items := make([]J, len(objs))
		last := ""
		for i := range objs {
			items[i] = render(r, &objs[i])
			last = idOf(&objs[i])
		}
		s.listResponse(w, r, key, items, more, last, page)
		return nil
	}
}

// objectPathID checks a request on one object that takes no body (get,
// delete): the path ID with prefix, and no body.
func objectPathID(r *http.Request, prefix string) (string, error) {
	id, err := pathID(r, prefix)
	if err != nil {
		return "", err
	}
	return id, noBody(r)
}

// beginWrite runs the checks a create or an update starts with: the path
// ID (when prefix is set), no query parameters, allow (when set: a role
// check that must refuse the caller before the body is read), then the body
// decoded into body. Operations that check the caller's role against the
// body or the object run that check after beginWrite returns.
func (s *Server) beginWrite(w http.ResponseWriter, r *http.Request, prefix string, allow func() error, body any) (string, error) {
	var id string
	if prefix != "" {
		var err error
		if id, err = pathID(r, prefix); err != nil {
			return "", err
		}
	}
	if err := onlyParams(r.URL.Query()); err != nil {
		return "", err
	}
	if allow != nil {
		if err := allow(); err != nil {
			return "", err
		}
	}
	return id, s.decodeBody(w, r, body)
}

// deleteOne answers DELETE /<collection>/{id} for the objects of the
// caller's account: the path ID must carry prefix (TG_2601 otherwise), the
// request has no body (TG_211), access decides whether the caller may
// delete it, and an object of another account, or none, is a 404 that
// names what and the ID. Success is 204 with no body.
func deleteOne(prefix, what string, access controlplane.AccessCheck,
	del func(ctx context.Context, actor store.Actor, accountID, id string) error) controlplane.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
		id, err := objectPathID(r, prefix)
		if err != nil {
			return err
		}
		if err := access(r.Context(), c, id); err != nil {
			return err
		}
		if err := del(r.Context(), c.Actor, c.AccountID(), id); err != nil {
			return controlplane.NotFound(err, what, id)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
