package restapi

import (
	"context"
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// botUserJSON is the bot_users (service_users) object
// (docs/api-compatibility.md#bot-users).
type botUserJSON struct {
	ID        string `json:"id"`
	URI       string `json:"uri"`
	Name      string `json:"name"`
	Active    bool   `json:"active"`
	CreatedAt string `json:"created_at"`
}

// botUserAPI serves /bot_users and, under the hosted platform's older
// name, /service_users.
type botUserAPI struct{ *Server }

// routes registers /bot_users and /service_users.
func (s *botUserAPI) routes(mux *http.ServeMux) {
	for _, coll := range []string{"bot_users", "service_users"} {
		s.route(mux, "/"+coll, methods{
			http.MethodGet:  s.listBotUsers(coll),
			http.MethodPost: s.createBotUser(coll),
		})
		s.route(mux, "/"+coll+"/{id}", methods{
			http.MethodGet:    s.getBotUser(coll),
			http.MethodPatch:  s.updateBotUser(coll),
			http.MethodDelete: s.deleteBotUser,
		})
	}
}

type botUserCreateBody struct {
	Name   string `json:"name"`
	Active *bool  `json:"active"` // default true
}

type botUserUpdateBody struct {
	Name   *string `json:"name"`
	Active *bool   `json:"active"`
}

func (s *botUserAPI) botUserJSON(r *http.Request, coll string, b *store.BotUser) botUserJSON {
	return botUserJSON{ID: b.ID, URI: s.baseURL(r) + "/" + coll + "/" + b.ID, Name: b.Name, Active: b.Active, CreatedAt: timestamp(b.CreatedAt)}
}

// botUserRenderer renders bot users with URIs under coll.
func (s *botUserAPI) botUserRenderer(coll string) func(*http.Request, *store.BotUser) botUserJSON {
	return func(r *http.Request, b *store.BotUser) botUserJSON { return s.botUserJSON(r, coll, b) }
}

func (s *botUserAPI) createBotUser(coll string) controlplane.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
		var body botUserCreateBody
		if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
			return err
		}
		if err := c.RequireTeamManager(); err != nil {
			return err
		}
		active := body.Active == nil || *body.Active
		b, err := s.store.CreateBotUser(r.Context(), c.Actor, c.AccountID(), store.BotUserCreate{Name: body.Name, Active: active})
		if err != nil {
			return err
		}
		controlplane.WriteJSON(w, http.StatusCreated, s.botUserJSON(r, coll, b))
		return nil
	}
}

// getBotUser is GET /<coll>/{id}, coll being bot_users or service_users.
func (s *botUserAPI) getBotUser(coll string) controlplane.HandlerFunc {
	return getOne(ids.PrefixBotUser, "bot user", s.store.GetBotUser, s.botUserRenderer(coll))
}

// listBotUsers is GET /<coll> (items under coll).
func (s *botUserAPI) listBotUsers(coll string) controlplane.HandlerFunc {
	return listPage(s.Server, coll, ids.PrefixBotUser, s.store.ListBotUsers, s.botUserRenderer(coll),
		func(b *store.BotUser) string { return b.ID })
}

func (s *botUserAPI) updateBotUser(coll string) controlplane.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
		var body botUserUpdateBody
		id, err := s.beginWrite(w, r, ids.PrefixBotUser, nil, &body)
		if err != nil {
			return err
		}
		if err := c.RequireTeamManager(); err != nil {
			return err
		}
		b, err := s.store.UpdateBotUser(r.Context(), c.Actor, c.AccountID(), id, store.BotUserUpdate{Name: body.Name, Active: body.Active})
		if err != nil {
			return controlplane.NotFound(err, "bot user", id)
		}
		controlplane.WriteJSON(w, http.StatusOK, s.botUserJSON(r, coll, b))
		return nil
	}
}

// deleteBotUser is DELETE /bot_users/{id} (and /service_users/{id}): team
// managers and administrators.
func (s *botUserAPI) deleteBotUser(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixBotUser, "bot user", func(_ context.Context, c *controlplane.Caller, _ string) error {
		return c.RequireTeamManager()
	}, s.store.DeleteBotUser)(w, r, c)
}
