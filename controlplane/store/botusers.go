package store

import (
	"context"
	"fmt"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/ids"
)

// BotUserCreate is the input of CreateBotUser.
type BotUserCreate struct {
	Name   string
	Active bool
}

// BotUserUpdate is the input of UpdateBotUser; nil fields stay as they are.
type BotUserUpdate struct {
	Name   *string
	Active *bool
}

const botUserColumns = `SELECT p.id, b.account_id, p.name, p.active, p.created_at
	FROM bot_users b JOIN principals p ON p.id = b.id`

// getBotUser reads bot user id of the account through q.
func getBotUser(ctx context.Context, q queryer, accountID, id string) (*BotUser, error) {
	return getRow(q.QueryRowContext(ctx, botUserColumns+` WHERE b.id = $1 AND b.account_id = $2`, id, accountID),
		"bot user", id, scanBotUser)
}

func scanBotUser(r scanner) (BotUser, error) {
	var b BotUser
	var created int64
	err := r.Scan(&b.ID, &b.AccountID, &b.Name, &b.Active, &created)
	b.CreatedAt = fromMicros(created)
	return b, err
}

// CreateBotUser creates a bot user in an account.
func (s *Store) CreateBotUser(ctx context.Context, actor Actor, accountID string, in BotUserCreate) (*BotUser, error) {
	if err := ValidateName(in.Name); err != nil {
		return nil, err
	}
	var b *BotUser
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		b, err = t.createBotUser(ctx, accountID, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// CreateBotUserWithAuthtoken creates a bot user and an authtoken owned by
// it in one unit of work — a machine's identity and its credential, or
// neither — and returns the authtoken's token, which is not stored and
// cannot be shown again. tok.OwnerID is ignored.
func (s *Store) CreateBotUserWithAuthtoken(ctx context.Context, actor Actor, accountID string, in BotUserCreate, tok AuthtokenCreate) (*BotUser, *Authtoken, authn.Token, error) {
	if err := ValidateName(in.Name); err != nil {
		return nil, nil, "", err
	}
	if err := tok.validate(); err != nil {
		return nil, nil, "", err
	}
	var (
		b      *BotUser
		a      *Authtoken
		secret authn.Token
	)
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if b, err = t.createBotUser(ctx, accountID, in); err != nil {
			return err
		}
		tok.OwnerID = b.ID
		a, secret, err = t.createAuthtoken(ctx, accountID, tok)
		return err
	})
	if err != nil {
		return nil, nil, "", err
	}
	return b, a, secret, nil
}

// createBotUser inserts a bot user whose name is already validated.
func (t *tx) createBotUser(ctx context.Context, accountID string, in BotUserCreate) (*BotUser, error) {
	if err := t.exists(ctx, `SELECT 1 FROM accounts WHERE id = $1`, accountID, "account"); err != nil {
		return nil, err
	}
	b := &BotUser{ID: ids.New(ids.PrefixBotUser), AccountID: accountID, Name: in.Name,
		Active: in.Active, CreatedAt: fromMicros(t.stamp())}
	if _, err := t.exec(ctx, `INSERT INTO principals (id, kind, name, active, created_at) VALUES ($1, 'bot', $2, $3, $4)`,
		b.ID, b.Name, b.Active, t.stamp()); err != nil {
		return nil, fmt.Errorf("creating bot user: %w", err)
	}
	if _, err := t.exec(ctx, `INSERT INTO bot_users (id, account_id) VALUES ($1, $2)`, b.ID, accountID); err != nil {
		return nil, fmt.Errorf("creating bot user: %w", err)
	}
	t.audit("bot_user_created.v0", accountID, b.ID, map[string]any{"name": b.Name, "active": b.Active})
	return b, nil
}

// GetBotUser returns a bot user of the account.
func (s *Store) GetBotUser(ctx context.Context, accountID, id string) (*BotUser, error) {
	return getBotUser(ctx, s.rdb, accountID, id)
}

// ListBotUsers returns one page of the account's bot users, newest first,
// and whether more remain.
func (s *Store) ListBotUsers(ctx context.Context, accountID string, page Page) ([]BotUser, bool, error) {
	return listPage(ctx, s.rdb, botUserColumns+` WHERE b.account_id = $1`, "b.id", []any{accountID}, page, scanBotUser)
}

// UpdateBotUser renames, deactivates or reactivates a bot user. A
// deactivated bot user's credentials stop working (API keys at once,
// authtokens through the next snapshot) but are kept.
func (s *Store) UpdateBotUser(ctx context.Context, actor Actor, accountID, id string, in BotUserUpdate) (*BotUser, error) {
	if in.Name != nil {
		if err := ValidateName(*in.Name); err != nil {
			return nil, err
		}
	}
	var b *BotUser
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		var err error
		if b, err = getBotUser(ctx, t.sql, accountID, id); err != nil {
			return err
		}
		changes := map[string]any{}
		setField(&b.Name, in.Name, "name", changes)
		setField(&b.Active, in.Active, "active", changes)
		if len(changes) == 0 {
			return nil // nothing to do: no revision, no event
		}
		if _, err := t.exec(ctx, `UPDATE principals SET name = $1, active = $2 WHERE id = $3`, b.Name, b.Active, id); err != nil {
			return fmt.Errorf("updating bot user %s: %w", id, err)
		}
		t.audit("bot_user_updated.v0", accountID, id, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// DeleteBotUser deletes a bot user and every credential it owns, in one
// transaction.
func (s *Store) DeleteBotUser(ctx context.Context, actor Actor, accountID, id string) error {
	_, err := s.update(ctx, actor, func(ctx context.Context, t *tx) error {
		if _, err := getBotUser(ctx, t.sql, accountID, id); err != nil {
			return err
		}
		deleted, err := t.deleteCredentialsOf(ctx, id)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `DELETE FROM bot_users WHERE id = $1`, id); err != nil {
			return fmt.Errorf("deleting bot user %s: %w", id, err)
		}
		if _, err := t.exec(ctx, `DELETE FROM principals WHERE id = $1`, id); err != nil {
			return fmt.Errorf("deleting bot user %s: %w", id, err)
		}
		t.audit("bot_user_deleted.v0", accountID, id, map[string]any{"deleted_credentials": nonNil(deleted)})
		return nil
	})
	return err
}
