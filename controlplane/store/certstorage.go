package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// ErrBadCertKey is returned by CertStorage.Store for an empty key or one
// ending in "/".
var ErrBadCertKey = errors.New("store: bad certificate storage key")

// ErrLockLost is returned by CertStorage.RenewLockLease when the lock is no
// longer held by this storage (it expired and another holder took it).
var ErrLockLost = errors.New("store: certificate lock lost")

// Defaults of CertStorageOptions.
const (
	// DefaultCertLockTTL is how long an issuance lock outlives its holder's
	// last refresh.
	DefaultCertLockTTL = 2 * time.Minute
	// DefaultCertLockPoll is how often a waiting Lock retries.
	DefaultCertLockPoll = 250 * time.Millisecond
)

// CertStorageOptions tunes a CertStorage. Zero values take the defaults.
type CertStorageOptions struct {
	// LockTTL is how long a lock stays valid without a refresh; the holder
	// refreshes it every LockTTL/3 until Unlock, so only a dead holder's lock
	// expires. Default DefaultCertLockTTL.
	LockTTL time.Duration
	// LockPoll is how often Lock retries a lock someone else holds. Default
	// DefaultCertLockPoll.
	LockPoll time.Duration
	// Logger receives lock-refresh failures. Default: the store's logger.
	Logger *zap.Logger
}

// CertStorage is a certmagic.Storage (with lock leases) kept in the
// control-plane store: certificates, private keys, ACME accounts and
// challenge tokens, under certmagic's slash-separated keys. Every edge that
// uses a CertStorage over the same database shares certificates and
// coordinates issuance through Lock, so N edges obtain a certificate once
// and a restart re-issues nothing.
//
// Locks are rows with a holder and an expiry: the holder refreshes its locks
// in the background until Unlock, and a lock whose holder died expires after
// LockTTL and is taken over. Create it with Store.CertStorage; safe for
// concurrent use. Each CertStorage is one holder: two Managers in one process
// may share it (Lock is exclusive within it too).
type CertStorage struct {
	s      *Store
	holder string
	ttl    time.Duration
	poll   time.Duration
	log    *zap.Logger

	mu   sync.Mutex
	held map[string]chan struct{} // lock name → closed on Unlock
}

var (
	_ certmagic.Storage          = (*CertStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*CertStorage)(nil)
)

// CertStorage returns a certmagic.Storage backed by this store. It has no
// side effects until used.
func (s *Store) CertStorage(opts CertStorageOptions) *CertStorage {
	if opts.LockTTL <= 0 {
		opts.LockTTL = DefaultCertLockTTL
	}
	if opts.LockPoll <= 0 {
		opts.LockPoll = DefaultCertLockPoll
	}
	if opts.Logger == nil {
		opts.Logger = s.log
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &CertStorage{
		s:      s,
		holder: hex.EncodeToString(b[:]),
		ttl:    opts.LockTTL,
		poll:   opts.LockPoll,
		log:    opts.Logger.Named("certstorage"),
		held:   make(map[string]chan struct{}),
	}
}

// String identifies the storage in certmagic's logs.
func (cs *CertStorage) String() string { return "tollgate-store:" + string(cs.s.dialect) }

// Store writes value at key, replacing any previous value.
func (cs *CertStorage) Store(ctx context.Context, key string, value []byte) error {
	if err := checkCertKey(key); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	_, err := cs.s.wdb.ExecContext(ctx,
		`INSERT INTO certmagic_data (key, value, modified) VALUES ($1, $2, $3)
		 ON CONFLICT (key) DO UPDATE SET value = excluded.value, modified = excluded.modified`,
		key, value, cs.s.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (cs *CertStorage) Load(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := cs.s.rdb.QueryRowContext(ctx, `SELECT value FROM certmagic_data WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("loading %s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", key, err)
	}
	return v, nil
}

// Delete removes key and, when key is a "directory", every key under
// key+"/". Deleting a missing key is not an error.
func (cs *CertStorage) Delete(ctx context.Context, key string) error {
	if err := checkCertKey(key); err != nil {
		return err
	}
	lo, hi := prefixRange(key)
	_, err := cs.s.wdb.ExecContext(ctx,
		`DELETE FROM certmagic_data WHERE key = $1 OR (key >= $2 AND key < $3)`, key, lo, hi)
	if err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// Exists reports whether key holds a value or is a directory of keys.
func (cs *CertStorage) Exists(ctx context.Context, key string) bool {
	_, err := cs.Stat(ctx, key)
	return err == nil
}

// List returns the keys under path ("a/b" lists "a/b/..."): with recursive,
// every key below it; without, its immediate children (values and
// directories). No key under path is an error wrapping fs.ErrNotExist.
func (cs *CertStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	path = strings.TrimSuffix(path, "/")
	lo, hi := prefixRange(path)
	rows, err := cs.s.rdb.QueryContext(ctx,
		`SELECT key FROM certmagic_data WHERE key >= $1 AND key < $2 ORDER BY key`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", path, err)
	}
	defer rows.Close()
	var keys []string
	seen := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("listing %s: %w", path, err)
		}
		if !recursive {
			rest := k[len(lo):]
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				k = lo + rest[:i]
			}
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("listing %s: %w", path, fs.ErrNotExist)
	}
	return keys, nil
}

// Stat describes key: a value (IsTerminal, with size and modification time)
// or a directory of keys. Neither is an error wrapping fs.ErrNotExist.
func (cs *CertStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	var size, modified int64
	err := cs.s.rdb.QueryRowContext(ctx,
		`SELECT length(value), modified FROM certmagic_data WHERE key = $1`, key).Scan(&size, &modified)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: time.UnixMicro(modified), Size: size, IsTerminal: true}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	lo, hi := prefixRange(strings.TrimSuffix(key, "/"))
	var n int
	if err := cs.s.rdb.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM (SELECT 1 FROM certmagic_data WHERE key >= $1 AND key < $2 LIMIT 1) t`, lo, hi).Scan(&n); err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if n == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// Lock blocks until it holds the lock name, ctx ends, or the database
// fails. A lock held by a dead holder is taken over once it expires. The
// lock is refreshed in the background until Unlock.
func (cs *CertStorage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := cs.tryLock(ctx, name)
		if err != nil {
			return err
		}
		if ok {
			stop := make(chan struct{})
			cs.mu.Lock()
			cs.held[name] = stop
			cs.mu.Unlock()
			go cs.keepLock(name, stop)
			return nil
		}
		t := time.NewTimer(cs.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// tryLock takes name if it is free or expired.
func (cs *CertStorage) tryLock(ctx context.Context, name string) (bool, error) {
	now := cs.s.now()
	res, err := cs.s.wdb.ExecContext(ctx,
		`INSERT INTO certmagic_locks (name, holder, expires_at) VALUES ($1, $2, $3)
		 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		 WHERE certmagic_locks.expires_at < $4`,
		name, cs.holder, now.Add(cs.ttl).UnixMicro(), now.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("taking lock %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("taking lock %s: %w", name, err)
	}
	return n == 1, nil
}

// keepLock refreshes a held lock every ttl/3 until stop is closed.
func (cs *CertStorage) keepLock(name string, stop chan struct{}) {
	t := time.NewTicker(cs.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), cs.ttl/3)
			err := cs.RenewLockLease(ctx, name, cs.ttl)
			cancel()
			if err != nil {
				cs.log.Warn("refreshing certificate lock", zap.String("lock", name), zap.Error(err))
			}
		}
	}
}

// RenewLockLease extends a lock this storage holds to leaseDuration from
// now (certmagic.LockLeaseRenewer). It fails if the lock is no longer ours.
func (cs *CertStorage) RenewLockLease(ctx context.Context, name string, leaseDuration time.Duration) error {
	if leaseDuration < cs.ttl {
		leaseDuration = cs.ttl
	}
	res, err := cs.s.wdb.ExecContext(ctx,
		`UPDATE certmagic_locks SET expires_at = $1 WHERE name = $2 AND holder = $3`,
		cs.s.now().Add(leaseDuration).UnixMicro(), name, cs.holder)
	if err != nil {
		return fmt.Errorf("renewing lock %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("renewing lock %s: %w", name, ErrLockLost)
	}
	return nil
}

// Unlock releases a lock this storage holds. Releasing a lock it does not
// hold (expired and taken over) only stops the refresh.
func (cs *CertStorage) Unlock(ctx context.Context, name string) error {
	cs.mu.Lock()
	if stop, ok := cs.held[name]; ok {
		close(stop)
		delete(cs.held, name)
	}
	cs.mu.Unlock()
	if _, err := cs.s.wdb.ExecContext(ctx,
		`DELETE FROM certmagic_locks WHERE name = $1 AND holder = $2`, name, cs.holder); err != nil {
		return fmt.Errorf("releasing lock %s: %w", name, err)
	}
	return nil
}

// prefixRange returns the half-open key range [dir+"/", dir+"0") of every
// key under dir ('0' follows '/' in byte order).
// The empty dir is the root: every key.
func prefixRange(dir string) (lo, hi string) {
	if dir == "" {
		return "", "\U0010FFFF"
	}
	return dir + "/", dir + "0"
}

// checkCertKey refuses an empty key or one that a prefix scan would
// misread.
func checkCertKey(key string) error {
	if key == "" || strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w: %q", ErrBadCertKey, key)
	}
	return nil
}

// AcquireCertLock takes the certificate lock name for token, a caller's
// identifier of one acquisition (an edge's Lock call through the edge API),
// for ttl from now. It succeeds when the lock is free, expired, or already
// held by token (so a retried request is harmless); it reports false,
// without waiting, when another token holds it. Tokens share the lock
// table with CertStorage's holders; callers keep them distinct (the edge
// API prefixes them).
func (s *Store) AcquireCertLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	now := s.now()
	res, err := s.wdb.ExecContext(ctx,
		`INSERT INTO certmagic_locks (name, holder, expires_at) VALUES ($1, $2, $3)
		 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		 WHERE certmagic_locks.expires_at < $4 OR certmagic_locks.holder = excluded.holder`,
		name, token, now.Add(ttl).UnixMicro(), now.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("taking lock %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("taking lock %s: %w", name, err)
	}
	return n == 1, nil
}

// RenewCertLock extends the lock name held by token to ttl from now. It
// fails with ErrLockLost when token no longer holds it (it expired and was
// taken, or was released).
func (s *Store) RenewCertLock(ctx context.Context, name, token string, ttl time.Duration) error {
	res, err := s.wdb.ExecContext(ctx,
		`UPDATE certmagic_locks SET expires_at = $1 WHERE name = $2 AND holder = $3`,
		s.now().Add(ttl).UnixMicro(), name, token)
	if err != nil {
		return fmt.Errorf("renewing lock %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("renewing lock %s: %w", name, ErrLockLost)
	}
	return nil
}

// ReleaseCertLock releases the lock name if token holds it; releasing a
// lock token does not hold is not an error.
func (s *Store) ReleaseCertLock(ctx context.Context, name, token string) error {
	if _, err := s.wdb.ExecContext(ctx,
		`DELETE FROM certmagic_locks WHERE name = $1 AND holder = $2`, name, token); err != nil {
		return fmt.Errorf("releasing lock %s: %w", name, err)
	}
	return nil
}
