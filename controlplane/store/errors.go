package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors. Compare with errors.Is; they are wrapped with context.
var (
	// ErrNotFound means the object does not exist in the given account.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a uniqueness constraint refused the change (for
	// example an e-mail address or SSH key fingerprint already in use).
	ErrConflict = errors.New("store: conflict")
	// ErrOwnerNotFound means a credential's owner_id is not a user or bot
	// user of the account.
	ErrOwnerNotFound = errors.New("store: owner is not a principal of the account")
	// ErrUnsupportedDSN means Open could not tell which database a DSN names.
	ErrUnsupportedDSN = errors.New("store: unsupported DSN")
)

// isUniqueViolation reports whether err is a unique or primary-key
// constraint failure in either dialect.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		c := sqErr.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}
