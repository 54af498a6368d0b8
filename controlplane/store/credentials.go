package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tollgate/tollgate/ids"
)

// credentialTables are the tables of credentials a principal owns, with the
// object name their audit events use.
var credentialTables = []struct{ name, event string }{
	{"authtokens", "credential"},
	{"api_keys", "api_key"},
	{"ssh_credentials", "ssh_credential"},
}

// deleteCredentialsOf deletes every credential owned by principal id, writes
// one deletion audit event per credential and returns their IDs.
func (t *tx) deleteCredentialsOf(ctx context.Context, ownerID string) ([]string, error) {
	var all []string
	for _, tbl := range credentialTables {
		rows, err := t.query(ctx, `DELETE FROM `+tbl.name+` WHERE owner_id = $1 RETURNING id, account_id`, ownerID)
		if err != nil {
			return nil, fmt.Errorf("deleting %s of %s: %w", tbl.name, ownerID, err)
		}
		type del struct{ id, account string }
		var dels []del
		for rows.Next() {
			var d del
			if err := rows.Scan(&d.id, &d.account); err != nil {
				rows.Close()
				return nil, fmt.Errorf("deleting %s of %s: %w", tbl.name, ownerID, err)
			}
			dels = append(dels, d)
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("deleting %s of %s: %w", tbl.name, ownerID, err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("deleting %s of %s: %w", tbl.name, ownerID, err)
		}
		for _, d := range dels {
			t.audit(tbl.event+"_deleted.v0", d.account, d.id, map[string]any{"reason": "owner_deleted", "owner_id": ownerID})
			all = append(all, d.id)
		}
	}
	return all, nil
}

// deleteReturningIDs runs a DELETE ... RETURNING id and collects the IDs.
func (t *tx) deleteReturningIDs(ctx context.Context, q string, args ...any) ([]string, error) {
	ids, err := t.strings(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("deleting: %w", err)
	}
	return ids, nil
}

// checkOwner verifies that ownerID is a user member or a bot user of the
// account, returning ErrOwnerNotFound otherwise.
func (t *tx) checkOwner(ctx context.Context, accountID, ownerID string) error {
	if err := checkID(ownerID, ids.PrefixUser, ids.PrefixBotUser); err != nil {
		return err
	}
	var one int
	err := t.queryRow(ctx, `SELECT 1 FROM bot_users WHERE id = $1 AND account_id = $2
		UNION ALL SELECT 1 FROM memberships WHERE user_id = $1 AND account_id = $2`, ownerID, accountID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("owner %s in account %s: %w", ownerID, accountID, ErrOwnerNotFound)
	}
	if err != nil {
		return fmt.Errorf("checking owner %s: %w", ownerID, err)
	}
	return nil
}

// deleteOne deletes one row by id and account from table, or returns
// ErrNotFound naming what.
func (t *tx) deleteOne(ctx context.Context, table, what, accountID, id string) error {
	res, err := t.exec(ctx, `DELETE FROM `+table+` WHERE id = $1 AND account_id = $2`, id, accountID)
	if err != nil {
		return fmt.Errorf("deleting %s %s: %w", what, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %s: %w", what, id, ErrNotFound)
	}
	return nil
}
