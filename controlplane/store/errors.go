package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tollgate/tollgate/codes"
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
	// ErrExistingUser means an invited e-mail address belongs to a user
	// already, so accepting the invitation needs proof of being that user
	// (InvitationAccept.ExistingUserID).
	ErrExistingUser = errors.New("store: the invited address belongs to an existing user")
	// ErrUnsupportedDSN means Open could not tell which database a DSN names.
	ErrUnsupportedDSN = errors.New("store: unsupported DSN")
	// ErrChangesPruned means Changes was asked for the changes after a
	// revision that the change log no longer covers (pruned, older than the
	// log, or newer than the store): the caller needs a whole snapshot.
	ErrChangesPruned = errors.New("store: the change log does not reach back to that revision")
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

// ConflictError is an ErrConflict (errors.Is matches it) that carries a
// user-facing code and message, for conflicts the caller can act on: a name
// reserved already, a duplicate IP rule, the last administrator.
type ConflictError struct {
	Code    codes.Code
	Message string
}

func conflict(code codes.Code, format string, args ...any) *ConflictError {
	return &ConflictError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error returns "<message> [<code>]".
func (e *ConflictError) Error() string { return e.Message + " [" + string(e.Code) + "]" }

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
