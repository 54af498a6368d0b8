package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"go.uber.org/zap"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Dialect names the SQL database behind a Store.
type Dialect string

// Dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Options are Open's optional settings.
type Options struct {
	// Logger receives structured logs. Default: no logs.
	Logger *zap.Logger
	// Now is the clock for created_at stamps. Default: time.Now.
	Now func() time.Time
	// BusyTimeout is how long an SQLite connection waits for a lock held by
	// another process before failing. Default 5s. Ignored for PostgreSQL.
	BusyTimeout time.Duration
	// MaxReadConns bounds the pool of reading connections. Default 8.
	MaxReadConns int
	// ChangeHistory is how many revisions of the snapshot change log are
	// kept (Changes); an edge further behind gets a whole snapshot.
	// Pruning runs every 64th revision, in that mutation's transaction.
	// Default 10,000.
	ChangeHistory uint64
}

// Store is the control plane's database. It is safe for concurrent use.
// Open it with Open and release it with Close.
type Store struct {
	dialect Dialect
	rdb     *sql.DB // readers
	wdb     *sql.DB // the writer; the same *sql.DB as rdb for PostgreSQL
	log     *zap.Logger
	now     func() time.Time
	history uint64 // Options.ChangeHistory

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after every commit

	trafficStmts sync.Map // int → *sql.Stmt: traffic inserts by row count (traffic.go)
}

// Open connects to the database named by dsn, migrates its schema to the
// newest version and returns the Store. A dsn that starts with postgres:// or
// postgresql:// names a PostgreSQL database (pgx DSN syntax; add
// search_path=<schema> to use a schema other than public). Anything else is
// the path of an SQLite database file (created if missing; its directory must
// exist; it may not contain '?'), or a "file:" URI. SQLite runs in WAL mode with
// foreign keys on, synchronous=FULL and a busy timeout.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if opts.MaxReadConns <= 0 {
		opts.MaxReadConns = 8
	}
	if opts.ChangeHistory == 0 {
		opts.ChangeHistory = 10_000
	}
	s := &Store{log: opts.Logger, now: opts.Now, history: opts.ChangeHistory, changed: make(chan struct{})}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://"):
		s.dialect = Postgres
		s.rdb, err = sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("opening PostgreSQL: %w", err)
		}
		s.rdb.SetMaxOpenConns(opts.MaxReadConns + 2)
		s.rdb.SetMaxIdleConns(opts.MaxReadConns + 2)
		s.rdb.SetConnMaxIdleTime(5 * time.Minute)
		s.wdb = s.rdb
	case dsn == "":
		return nil, fmt.Errorf("%w: empty; give an SQLite file path or a postgres:// URL", ErrUnsupportedDSN)
	default:
		s.dialect = SQLite
		if err := s.openSQLite(dsn, opts); err != nil {
			return nil, err
		}
	}
	if err := s.rdb.PingContext(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("connecting to %s store: %w", s.dialect, err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// openSQLite opens the reader and writer pools of one SQLite file.
func (s *Store) openSQLite(dsn string, opts Options) error {
	path, query, _ := strings.Cut(dsn, "?")
	if !strings.HasPrefix(path, "file:") {
		// A plain path: escape what a "file:" URI would interpret.
		path = "file:" + strings.NewReplacer("%", "%25", "#", "%23").Replace(path)
	}
	if strings.Contains(path, ":memory:") || strings.Contains(query, "mode=memory") {
		return fmt.Errorf("%w: an in-memory SQLite database cannot be shared by the store's connections; use a file", ErrUnsupportedDSN)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupportedDSN, err)
	}
	ms := opts.BusyTimeout.Milliseconds()
	q.Set("_busy_timeout", fmt.Sprint(ms))
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", "FULL")
	reader := url.Values{}
	for k, v := range q {
		reader[k] = v
	}
	q.Set("_txlock", "immediate")
	s.wdb, err = sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("opening SQLite %s: %w", path, err)
	}
	// One writer connection: in-process writers queue on the pool instead of
	// spinning on SQLITE_BUSY; other processes are covered by busy_timeout.
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.rdb, err = sql.Open("sqlite", path+"?"+reader.Encode())
	if err != nil {
		_ = s.wdb.Close()
		return fmt.Errorf("opening SQLite %s: %w", path, err)
	}
	s.rdb.SetMaxOpenConns(opts.MaxReadConns)
	s.rdb.SetMaxIdleConns(opts.MaxReadConns)
	return nil
}

// Dialect returns which database the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes the database connections. Calls blocked on the store return
// errors afterwards.
func (s *Store) Close() error {
	var err error
	if s.wdb != nil && s.wdb != s.rdb {
		err = s.wdb.Close()
	}
	if s.rdb != nil {
		if cerr := s.rdb.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Revision returns the newest committed store revision. It starts at 0 in an
// empty store and grows by one with every mutation, whichever process made
// it.
func (s *Store) Revision(ctx context.Context) (uint64, error) {
	var v int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT value FROM revision WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading store revision: %w", err)
	}
	return uint64(v), nil
}

// Changed returns a channel that is closed after the next mutation this
// Store commits. Mutations by other processes sharing the database do not
// close it: poll Revision for those.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// notify wakes everyone waiting on Changed.
func (s *Store) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}
