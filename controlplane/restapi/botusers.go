package controlplane

import (
	"context"
	"net/http"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// botUserJSON is the bot_users (service_users) object
// (reference/platform-behaviour.md §1.5).
type botUserJSON struct {
	ID        string `json:"id"`
	URI       string `json:"uri"`
	Name      string `json:"name"`
	Active    bool   `json:"active"`
	CreatedAt string `json:"created_at"`
}

type botUserCreateBody struct {
	Name   string `json:"name"`
	Active *bool  `json:"active"` // default true
}

type botUserUpdateBody struct {
	Name   *string `json:"name"`
	Active *bool   `json:"active"`
}

func (s *Server) botUserJSON(r *http.Request, coll string, b *store.BotUser) botUserJSON {
	return botUserJSON{ID: b.ID, URI: s.baseURL(r) + "/" + coll + "/" + b.ID, Name: b.Name, Active: b.Active, CreatedAt: timestamp(b.CreatedAt)}
}

// botUserRenderer renders bot users with URIs under coll.
func (s *Server) botUserRenderer(coll string) func(*http.Request, *store.BotUser) botUserJSON {
	return func(r *http.Request, b *store.BotUser) botUserJSON { return s.botUserJSON(r, coll, b) }
}

func (s *Server) createBotUser(coll string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		var body botUserCreateBody
		if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
			return err
		}
		if err := c.requireTeamManager(); err != nil {
			return err
		}
		active := body.Active == nil || *body.Active
		b, err := s.store.CreateBotUser(r.Context(), c.actor, c.accountID(), store.BotUserCreate{Name: body.Name, Active: active})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, s.botUserJSON(r, coll, b))
		return nil
	}
}

// getBotUser is GET /<coll>/{id}, coll being bot_users or service_users.
func (s *Server) getBotUser(coll string) handlerFunc {
	return getOne(ids.PrefixBotUser, "bot user", s.store.GetBotUser, s.botUserRenderer(coll))
}

// listBotUsers is GET /<coll> (items under coll).
func (s *Server) listBotUsers(coll string) handlerFunc {
	return listPage(s, coll, ids.PrefixBotUser, s.store.ListBotUsers, s.botUserRenderer(coll),
		func(b *store.BotUser) string { return b.ID })
}

func (s *Server) updateBotUser(coll string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		var body botUserUpdateBody
		id, err := s.beginWrite(w, r, ids.PrefixBotUser, nil, &body)
		if err != nil {
			return err
		}
		if err := c.requireTeamManager(); err != nil {
			return err
		}
		b, err := s.store.UpdateBotUser(r.Context(), c.actor, c.accountID(), id, store.BotUserUpdate{Name: body.Name, Active: body.Active})
		if err != nil {
			return notFound(err, "bot user", id)
		}
		writeJSON(w, http.StatusOK, s.botUserJSON(r, coll, b))
		return nil
	}
}

// deleteBotUser is DELETE /bot_users/{id} (and /service_users/{id}): team
// managers and administrators.
func (s *Server) deleteBotUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	return deleteOne(ids.PrefixBotUser, "bot user", func(_ context.Context, c *caller, _ string) error {
		return c.requireTeamManager()
	}, s.store.DeleteBotUser)(w, r, c)
}
