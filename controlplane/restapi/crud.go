package controlplane

import (
	"context"
	"net/http"

	"github.com/tollgate/tollgate/controlplane/store"
)

// getOne answers GET /<collection>/{id} for the objects of the caller's
// account: the path ID must carry prefix (TG_2601 otherwise), the request
// has no body (TG_211), and an object of another account, or none, is a 404
// that names what and the ID.
func getOne[T, J any](prefix, what string, get func(ctx context.Context, accountID, id string) (*T, error),
	render func(*http.Request, *T) J) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		id, err := objectPathID(r, prefix)
		if err != nil {
			return err
		}
		v, err := get(r.Context(), c.accountID(), id)
		if err != nil {
			return notFound(err, what, id)
		}
		writeJSON(w, http.StatusOK, render(r, v))
		return nil
	}
}

// listPage answers GET /<collection>: one page of the caller's account's
// objects, newest first (listParams: before_id with prefix, limit 1–100),
// under key with uri and next_page_uri (reference/platform-behaviour.md
// §1.1).
func listPage[T, J any](s *Server, key, prefix string,
	list func(ctx context.Context, accountID string, page store.Page) ([]T, bool, error),
	render func(*http.Request, *T) J, idOf func(*T) string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		page, err := listParams(r, prefix)
		if err != nil {
			return err
		}
		objs, more, err := list(r.Context(), c.accountID(), page)
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

// accessCheck refuses a caller who may not change or delete object id of
// their account.
type accessCheck func(ctx context.Context, c *caller, id string) error

// writerAccess lets the read/write roles change any object of the account
// (requireWrite).
func writerAccess(_ context.Context, c *caller, _ string) error { return c.requireWrite() }

// ownerAccess is the accessCheck of a credential: it reads the credential
// with get (a missing one is a 404 that names what and the ID), then
// refuses a caller who is neither its owner nor an administrator
// (requireOwnerOrAdmin).
func ownerAccess[T any](what string, get func(ctx context.Context, accountID, id string) (*T, error),
	owner func(*T) string) accessCheck {
	return func(ctx context.Context, c *caller, id string) error {
		v, err := get(ctx, c.accountID(), id)
		if err != nil {
			return notFound(err, what, id)
		}
		return c.requireOwnerOrAdmin(owner(v))
	}
}

// deleteOne answers DELETE /<collection>/{id} for the objects of the
// caller's account: the path ID must carry prefix (TG_2601 otherwise), the
// request has no body (TG_211), access decides whether the caller may
// delete it, and an object of another account, or none, is a 404 that
// names what and the ID. Success is 204 with no body.
func deleteOne(prefix, what string, access accessCheck,
	del func(ctx context.Context, actor store.Actor, accountID, id string) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		id, err := objectPathID(r, prefix)
		if err != nil {
			return err
		}
		if err := access(r.Context(), c, id); err != nil {
			return err
		}
		if err := del(r.Context(), c.actor, c.accountID(), id); err != nil {
			return notFound(err, what, id)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
