package store

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.uber.org/zap"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// migrate brings the schema to the newest version. On PostgreSQL it holds a
// session advisory lock, keyed by the schema, so that several control-plane
// processes starting together migrate once.
func (s *Store) migrate(ctx context.Context) error {
	var (
		dialect goose.Dialect
		dir     string
		opts    = []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	)
	switch s.dialect {
	case SQLite:
		dialect, dir = goose.DialectSQLite3, "migrations/sqlite"
	case Postgres:
		dialect, dir = goose.DialectPostgres, "migrations/postgres"
		var schema string
		if err := s.wdb.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return fmt.Errorf("migrating store: reading current schema: %w", err)
		}
		h := fnv.New64a()
		_, _ = h.Write([]byte("tollgate:" + schema))
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(int64(h.Sum64()>>1)),
			lock.WithLockTimeout(1, 300),
		)
		if err != nil {
			return fmt.Errorf("migrating store: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("migrating store: %w", err)
	}
	p, err := goose.NewProvider(dialect, s.wdb, sub, opts...)
	if err != nil {
		return fmt.Errorf("migrating store: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrating store: %w", err)
	}
	for _, r := range results {
		s.log.Info("store migration applied", zap.String("dialect", string(s.dialect)),
			zap.Int64("version", r.Source.Version), zap.Duration("took", r.Duration))
	}
	return nil
}
