package store

import (
	"context"
	"database/sql"
	"errors"
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

// queryer is what *sql.DB and *sql.Tx have in common for one-row reads, so
// a read helper serves both the read pool and a unit of work (pass t.sql).
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// getByID reads the object id of the account with columns (a SELECT ...
// FROM without WHERE). A missing object, or one of another account, is
// ErrNotFound wrapped with what and the ID.
func getByID[T any](ctx context.Context, q queryer, columns, what, id, accountID string, scan func(scanner) (T, error)) (*T, error) {
	return getRow(q.QueryRowContext(ctx, columns+` WHERE id = $1 AND account_id = $2`, id, accountID), what, id, scan)
}

// getRow scans row, the object id, with scan. No row is ErrNotFound wrapped
// with what and the ID.
func getRow[T any](row *sql.Row, what, id string, scan func(scanner) (T, error)) (*T, error) {
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s %s: %w", what, id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, id, err)
	}
	return &v, nil
}
