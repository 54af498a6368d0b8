// Package storetest provides databases for store tests: an SQLite file in a
// temporary directory, or a fresh schema in the PostgreSQL named by
// TOLLGATE_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test).
// A PostgreSQL that cannot be reached fails the test: CI provides one.
// Callers open the store themselves (store.Open with DSN(t, d)).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver
)

// DefaultPostgres is the test database when TOLLGATE_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Dialects lists the dialects every store test runs against, as
// store.Dialect spells them (this package does not import store, so that the
// store's own tests can use it).
var Dialects = []string{"sqlite", "postgres"}

// PostgresURL returns the PostgreSQL test database URL.
func PostgresURL() string {
	if v := os.Getenv("TOLLGATE_TEST_POSTGRES"); v != "" {
		return v
	}
	return DefaultPostgres
}

// DSN returns a DSN for a new, empty database of the dialect, removed when
// the test ends: a file in t.TempDir(), or a new schema (search_path set in
// the DSN) dropped in t.Cleanup.
func DSN(t testing.TB, d string) string {
	t.Helper()
	switch d {
	case "sqlite":
		return filepath.Join(t.TempDir(), "tollgate.db")
	case "postgres":
		return postgresSchema(t)
	}
	t.Fatalf("unknown dialect %q", d)
	return ""
}

func postgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v (set TOLLGATE_TEST_POSTGRES)", base, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		t.Fatalf("PostgreSQL at %s is not reachable: %v (the store tests need it; set TOLLGATE_TEST_POSTGRES)", base, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "tg_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		_ = db.Close()
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
		_ = db.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parsing %s: %v", base, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
