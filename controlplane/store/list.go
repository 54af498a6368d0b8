package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
)

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

// listPage runs base (a SELECT whose WHERE clause already holds args) for one
// page, newest first by idCol, and reports whether older objects remain.
func listPage[T any](ctx context.Context, db *sql.DB, base, idCol string, args []any, page Page,
	scan func(scanner) (T, error)) ([]T, bool, error) {
	q := base
	if page.BeforeID != "" {
		args = append(args, page.BeforeID)
		q += " AND " + idCol + " < $" + strconv.Itoa(len(args))
	}
	n := page.limit()
	args = append(args, n+1)
	q += " ORDER BY " + idCol + " DESC LIMIT $" + strconv.Itoa(len(args))
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("listing: %w", err)
	}
	defer rows.Close()
	out := make([]T, 0, n)
	more := false
	for rows.Next() {
		if len(out) == n {
			more = true
			break
		}
		v, err := scan(rows)
		if err != nil {
			return nil, false, fmt.Errorf("listing: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("listing: %w", err)
	}
	return out, more, nil
}
