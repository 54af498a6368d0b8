package store

import (
	"context"
	"database/sql"

	"github.com/tollgate/tollgate/config"
)

// readIPPolicies fills the snapshot's IP policies and restrictions.
func readIPPolicies(ctx context.Context, q *sql.Tx, d *config.SnapshotData) error { return nil }
