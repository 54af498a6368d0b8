package controlplane

import (
	"net/http"

	"github.com/tollgate/tollgate/config"
	"github.com/tollgate/tollgate/controlplane/store"
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

func (s *Server) createBotUser(coll string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		if err := onlyParams(r.URL.Query()); err != nil {
			return err
		}
		var body botUserCreateBody
		if err := s.decodeBody(w, r, &body); err != nil {
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

func (s *Server) getBotUser(coll string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		id, err := objectPathID(r, config.PrefixBotUser)
		if err != nil {
			return err
		}
		b, err := s.store.GetBotUser(r.Context(), c.accountID(), id)
		if err != nil {
			return notFound(err, "bot user", id)
		}
		writeJSON(w, http.StatusOK, s.botUserJSON(r, coll, b))
		return nil
	}
}

func (s *Server) listBotUsers(coll string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		page, err := listParams(r, config.PrefixBotUser)
		if err != nil {
			return err
		}
		bots, more, err := s.store.ListBotUsers(r.Context(), c.accountID(), page)
		if err != nil {
			return err
		}
		items := make([]botUserJSON, len(bots))
		last := ""
		for i := range bots {
			items[i] = s.botUserJSON(r, coll, &bots[i])
			last = bots[i].ID
		}
		s.listResponse(w, r, coll, items, more, last, page)
		return nil
	}
}

func (s *Server) updateBotUser(coll string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		id, err := pathID(r, config.PrefixBotUser)
		if err != nil {
			return err
		}
		if err := onlyParams(r.URL.Query()); err != nil {
			return err
		}
		var body botUserUpdateBody
		if err := s.decodeBody(w, r, &body); err != nil {
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

func (s *Server) deleteBotUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := objectPathID(r, config.PrefixBotUser)
	if err != nil {
		return err
	}
	if err := c.requireTeamManager(); err != nil {
		return err
	}
	if err := s.store.DeleteBotUser(r.Context(), c.actor, c.accountID(), id); err != nil {
		return notFound(err, "bot user", id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
