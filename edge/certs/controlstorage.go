package certs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/snapshot"
)

// Defaults of ControlStorageConfig.
const (
	// DefaultControlTimeout bounds one request to the control plane.
	DefaultControlTimeout = 15 * time.Second
	// DefaultControlRetries is how many times a request that failed for a
	// passing reason (no connection, 5xx, 429) is tried again.
	DefaultControlRetries = 3
	// DefaultLockPoll is how often Lock asks again for a lock another edge
	// holds.
	DefaultLockPoll = time.Second
)

// ControlStorageConfig configures a ControlStorage.
type ControlStorageConfig struct {
	// URL is the control plane's API base URL, http(s)://HOST:PORT
	// (tollgated edge --control). Required.
	URL string
	// Secret is the edge secret (Bearer token of the edge API). Required;
	// never logged.
	Secret string
	// TLS verifies an https URL. Nil: the system roots.
	TLS *tls.Config
	// Transport carries the requests. Nil: a transport of its own with TLS.
	Transport http.RoundTripper
	// Timeout bounds each request. Default DefaultControlTimeout.
	Timeout time.Duration
	// Retries is how many more times a request is tried after a failure
	// worth retrying (no connection, timeout, 5xx, 429), with backoff from
	// 200 ms doubling to 2 s. Default DefaultControlRetries; negative: none.
	Retries int
	// LockPoll is how often Lock retries a lock held elsewhere. Default
	// DefaultLockPoll.
	LockPoll time.Duration
	// Mirror, if set, keeps a local copy of every value read or written,
	// from which Load, Stat and List answer while the control plane is
	// unreachable, so that an edge restarted during a control-plane outage
	// still serves the certificates it had. Writes and locks never go to
	// the mirror alone.
	Mirror certmagic.Storage
	// Logger receives lock-renewal failures. Default: none.
	Logger *zap.Logger
}

// ControlStorage is a certmagic.Storage kept by the control plane and
// reached through its edge API (/edge/v1/certstore/..., authenticated by
// the edge secret), so that edges share certificates, ACME accounts and
// challenge tokens and coordinate issuance without any database
// credentials (DESIGN: "Edges hold only their edge secret").
//
// Locks are leases kept by the control plane: each Lock call acquires the
// lock with a random token and renews it every third of the lease (the
// control plane's edgeapi.Config.CertLockTTL, one minute by default) until
// Unlock; a crashed or partitioned edge stops renewing and its lock
// expires, after which another edge takes it (certmagic.Locker: "blocks
// until the named lock is released or becomes stale"). Create it with
// NewControlStorage; safe for concurrent use; Close stops the renewals.
type ControlStorage struct {
	base     string // URL without a trailing slash
	secret   string
	hc       *http.Client
	retries  int
	lockPoll time.Duration
	mirror   certmagic.Storage
	log      *zap.Logger

	// downUntil (Unix nanoseconds) is set when a request found the
	// control plane unreachable after its retries: until then requests
	// are tried once, so an edge starting during an outage reaches its
	// mirror without waiting out the backoff of every read.
	downUntil atomic.Int64

	mu   sync.Mutex
	held map[string]*heldLock // lock name → this process's acquisition
}

// downFor is how long requests are tried once after the control plane
// was found unreachable.
const downFor = 5 * time.Second

// heldLock is one lock this process holds and renews.
type heldLock struct {
	token string
	stop  chan struct{} // closed by Unlock or Close
	done  chan struct{} // closed when the renewal goroutine returns
}

var (
	_ certmagic.Storage          = (*ControlStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*ControlStorage)(nil)
)

// NewControlStorage checks cfg and returns the storage. It has no side
// effects: nothing is sent until a method is called.
func NewControlStorage(cfg ControlStorageConfig) (*ControlStorage, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: control URL %q must be http(s)://HOST:PORT", ErrInvalidConfig, cfg.URL)
	}
	if cfg.Secret == "" {
		return nil, fmt.Errorf("%w: the edge secret is required", ErrInvalidConfig)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultControlTimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultControlRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.LockPoll <= 0 {
		cfg.LockPoll = DefaultLockPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg.TLS
		t.MaxIdleConnsPerHost = 4
		tr = t
	}
	return &ControlStorage{
		base:     strings.TrimSuffix(u.String(), "/"),
		secret:   cfg.Secret,
		hc:       &http.Client{Transport: tr, Timeout: cfg.Timeout},
		retries:  cfg.Retries,
		lockPoll: cfg.LockPoll,
		mirror:   cfg.Mirror,
		log:      cfg.Logger.Named("certstore"),
		held:     make(map[string]*heldLock),
	}, nil
}

// String identifies the storage in certmagic's logs.
func (cs *ControlStorage) String() string { return "tollgate-control:" + cs.base }

// Store writes value at key on the control plane (at most
// snapshot.MaxCertValue bytes), then in the mirror.
func (cs *ControlStorage) Store(ctx context.Context, key string, value []byte) error {
	if err := snapshot.CheckCertKey(key); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	if len(value) > snapshot.MaxCertValue {
		return fmt.Errorf("storing %s: %w", key, ErrCertValueTooLarge)
	}
	if _, err := cs.call(ctx, http.MethodPut, "/edge/v1/certstore/value", url.Values{"key": {key}}, value, http.StatusNoContent); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	cs.mirrorStore(key, value)
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist. While
// the control plane is unreachable it answers from the mirror.
func (cs *ControlStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if err := snapshot.CheckCertKey(key); err != nil {
		return nil, fmt.Errorf("loading %s: %w", key, err)
	}
	v, err := cs.call(ctx, http.MethodGet, "/edge/v1/certstore/value", url.Values{"key": {key}}, nil, http.StatusOK)
	switch {
	case err == nil:
		cs.mirrorStore(key, v)
		return v, nil
	case errors.Is(err, fs.ErrNotExist):
		cs.mirrorDelete(key)
	case cs.mirror != nil && errors.Is(err, ErrControlUnavailable):
		if mv, merr := cs.mirror.Load(ctx, key); merr == nil {
			return mv, nil
		}
	}
	return nil, fmt.Errorf("loading %s: %w", key, err)
}

// Delete removes key and every key under it; a missing key is not an
// error.
func (cs *ControlStorage) Delete(ctx context.Context, key string) error {
	if err := snapshot.CheckCertKey(key); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	if _, err := cs.call(ctx, http.MethodDelete, "/edge/v1/certstore/value", url.Values{"key": {key}}, nil, http.StatusNoContent); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	cs.mirrorDelete(key)
	return nil
}

// Exists reports whether key is a value or a directory of keys.
func (cs *ControlStorage) Exists(ctx context.Context, key string) bool {
	_, err := cs.Stat(ctx, key)
	return err == nil
}

// Stat describes key, or returns an error wrapping fs.ErrNotExist.
func (cs *ControlStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if err := snapshot.CheckCertKey(key); err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	b, err := cs.call(ctx, http.MethodGet, "/edge/v1/certstore/stat", url.Values{"key": {key}}, nil, http.StatusOK)
	if err != nil {
		if cs.mirror != nil && errors.Is(err, ErrControlUnavailable) {
			if ki, merr := cs.mirror.Stat(ctx, key); merr == nil {
				return ki, nil
			}
		}
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	var ki snapshot.CertKeyInfo
	if err := json.Unmarshal(b, &ki); err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: decoding the answer: %w", key, err)
	}
	return certmagic.KeyInfo{Key: ki.Key, Modified: ki.Modified, Size: ki.Size, IsTerminal: ki.IsTerminal}, nil
}

// List returns the keys under path: every key below it with recursive,
// else its immediate children. No key under path is an error wrapping
// fs.ErrNotExist.
func (cs *ControlStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	path = strings.TrimSuffix(path, "/")
	if err := snapshot.CheckCertPrefix(path); err != nil {
		return nil, fmt.Errorf("listing %s: %w", path, err)
	}
	q := url.Values{"prefix": {path}, "recursive": {strconv.FormatBool(recursive)}}
	b, err := cs.call(ctx, http.MethodGet, "/edge/v1/certstore/list", q, nil, http.StatusOK)
	if err != nil {
		if cs.mirror != nil && errors.Is(err, ErrControlUnavailable) {
			if keys, merr := cs.mirror.List(ctx, path, recursive); merr == nil {
				return keys, nil
			}
		}
		return nil, fmt.Errorf("listing %s: %w", path, err)
	}
	var l snapshot.CertKeyList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("listing %s: decoding the answer: %w", path, err)
	}
	return l.Keys, nil
}

// Lock blocks until this process holds the lock name (across every edge of
// the control plane), ctx ends, or the control plane cannot be reached.
// The lock is renewed in the background until Unlock.
func (cs *ControlStorage) Lock(ctx context.Context, name string) error {
	if err := snapshot.CheckCertLockName(name); err != nil {
		return fmt.Errorf("locking %s: %w", name, err)
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	for {
		ans, err := cs.lockCall(ctx, "acquire", name, token)
		if err != nil {
			return fmt.Errorf("locking %s: %w", name, err)
		}
		if ans.Acquired {
			h := &heldLock{token: token, stop: make(chan struct{}), done: make(chan struct{})}
			cs.mu.Lock()
			if old := cs.held[name]; old != nil {
				// Unreachable while certmagic pairs Lock and Unlock: the
				// control plane refuses a second token for a held lock.
				close(old.stop)
			}
			cs.held[name] = h
			cs.mu.Unlock()
			ttl := time.Duration(ans.TTLMilli) * time.Millisecond
			go cs.renewLoop(name, h, ttl)
			return nil
		}
		t := time.NewTimer(cs.lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// renewLoop renews a held lock every third of its lease until h.stop is
// closed, or the lock is lost.
func (cs *ControlStorage) renewLoop(name string, h *heldLock, ttl time.Duration) {
	defer close(h.done)
	every := max(ttl/3, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		_, err := cs.lockCall(ctx, "renew", name, h.token)
		cancel()
		switch {
		case errors.Is(err, ErrLockLost):
			cs.log.Warn("certificate lock lost: it expired before this edge could renew it", zap.String("lock", name))
			return
		case err != nil:
			cs.log.Warn("renewing certificate lock", zap.String("lock", name), zap.Error(err))
		}
	}
}

// RenewLockLease checks that this process still holds name and renews it
// (certmagic.LockLeaseRenewer). The lease stays the control plane's lock
// TTL whatever leaseDuration asks: the background renewal keeps the lock
// while this process lives, and a longer lease would only keep a crashed
// edge's lock longer. It fails with an error wrapping ErrLockLost when
// the lock is not held.
func (cs *ControlStorage) RenewLockLease(ctx context.Context, name string, _ time.Duration) error {
	cs.mu.Lock()
	h := cs.held[name]
	cs.mu.Unlock()
	if h == nil {
		return fmt.Errorf("renewing lock %s: %w", name, ErrLockLost)
	}
	if _, err := cs.lockCall(ctx, "renew", name, h.token); err != nil {
		return fmt.Errorf("renewing lock %s: %w", name, err)
	}
	return nil
}

// Unlock releases a lock this process holds. Releasing a lock it does not
// hold is not an error.
func (cs *ControlStorage) Unlock(ctx context.Context, name string) error {
	cs.mu.Lock()
	h := cs.held[name]
	delete(cs.held, name)
	cs.mu.Unlock()
	if h == nil {
		return nil
	}
	close(h.stop)
	<-h.done
	if _, err := cs.lockCall(ctx, "release", name, h.token); err != nil {
		return fmt.Errorf("releasing lock %s: %w", name, err)
	}
	return nil
}

// Close stops renewing every lock this process holds and releases them
// (best effort, within ctx). Locks it could not release expire.
func (cs *ControlStorage) Close(ctx context.Context) {
	cs.mu.Lock()
	held := cs.held
	cs.held = make(map[string]*heldLock)
	cs.mu.Unlock()
	for name, h := range held {
		close(h.stop)
		<-h.done
		_, _ = cs.lockCall(ctx, "release", name, h.token)
	}
}

// lockCall posts a lock operation ("acquire", "renew", "release").
func (cs *ControlStorage) lockCall(ctx context.Context, op, name, token string) (snapshot.CertLockAnswer, error) {
	body, _ := json.Marshal(snapshot.CertLockRequest{Name: name, Token: token})
	want := http.StatusOK
	if op == "release" {
		want = http.StatusNoContent
	}
	b, err := cs.call(ctx, http.MethodPost, "/edge/v1/certstore/locks/"+op, nil, body, want)
	if err != nil {
		return snapshot.CertLockAnswer{}, err
	}
	var ans snapshot.CertLockAnswer
	if want == http.StatusOK {
		if err := json.Unmarshal(b, &ans); err != nil {
			return ans, fmt.Errorf("decoding the lock answer: %w", err)
		}
	}
	return ans, nil
}

// StatusReporter returns a StatusReporter that sends certificate status
// to the control plane (PUT /edge/v1/certificates/status), where the
// reserved_domains API shows it, as reported by an edge of region.
func (cs *ControlStorage) StatusReporter(region string) StatusReporter {
	return controlStatus{cs: cs, region: region}
}

// controlStatus is ControlStorage.StatusReporter.
type controlStatus struct {
	cs     *ControlStorage
	region string
}

// ReportCertificateStatus implements StatusReporter.
func (c controlStatus) ReportCertificateStatus(ctx context.Context, st Status) error {
	body, _ := json.Marshal(snapshot.CertStatusReport{
		Region: c.region, Domain: st.Domain, NotAfter: st.NotAfter, RenewsAt: st.RenewsAt, Issuer: st.Issuer,
		JobErrorCode: st.JobErrorCode, JobMsg: st.JobMsg, JobStartedAt: st.JobStartedAt, JobRetriesAt: st.JobRetriesAt,
	})
	_, err := c.cs.call(ctx, http.MethodPut, "/edge/v1/certificates/status", nil, body, http.StatusNoContent)
	return err
}

// maxAnswer bounds what the edge reads of one answer.
const maxAnswer = snapshot.MaxCertValue + 64<<10

// call sends one request, retrying failures worth retrying, and returns
// the body of an answer with status want. A 404 is an error wrapping
// fs.ErrNotExist; a 409 one wrapping ErrLockLost; no answer (after the
// retries) one wrapping ErrControlUnavailable; any other status an
// *APIError.
func (cs *ControlStorage) call(ctx context.Context, method, path string, q url.Values, body []byte, want int) ([]byte, error) {
	u := cs.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var last error
	backoff := 200 * time.Millisecond
	retries := cs.retries
	if time.Now().UnixNano() < cs.downUntil.Load() {
		retries = 0
	}
	for attempt := 0; ; attempt++ {
		b, status, err := cs.once(ctx, method, u, body)
		if err == nil && status < 500 && status != http.StatusTooManyRequests {
			cs.downUntil.Store(0)
		}
		switch {
		case err == nil && status == want:
			return b, nil
		case err == nil && status == http.StatusNotFound:
			return nil, fmt.Errorf("%w (%s)", fs.ErrNotExist, apiErr(status, b))
		case err == nil && status == http.StatusConflict:
			return nil, fmt.Errorf("%w (%s)", ErrLockLost, apiErr(status, b))
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			return nil, apiErr(status, b)
		case err == nil:
			last = apiErr(status, b)
		default:
			last = err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if attempt >= retries {
			cs.downUntil.Store(time.Now().Add(downFor).UnixNano())
			return nil, fmt.Errorf("%w: %w", ErrControlUnavailable, last)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// once sends one request and reads at most maxAnswer bytes of the answer.
func (cs *ControlStorage) once(ctx context.Context, method, u string, body []byte) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+cs.secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	res, err := cs.hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer+1))
	if err != nil {
		return nil, 0, err
	}
	if len(b) > maxAnswer {
		return nil, 0, fmt.Errorf("answer over %d bytes", maxAnswer)
	}
	return b, res.StatusCode, nil
}

// apiErr decodes the API's error body.
func apiErr(status int, b []byte) *APIError {
	e := &APIError{Status: status}
	var body struct {
		Code string `json:"error_code"`
		Msg  string `json:"msg"`
	}
	if json.Unmarshal(b, &body) == nil {
		e.Code, e.Msg = body.Code, body.Msg
	}
	return e
}

// mirrorStore copies a value into the mirror, best effort.
func (cs *ControlStorage) mirrorStore(key string, v []byte) {
	if cs.mirror == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if old, err := cs.mirror.Load(ctx, key); err == nil && bytes.Equal(old, v) {
		return
	}
	if err := cs.mirror.Store(ctx, key, v); err != nil {
		cs.log.Warn("copying a certificate storage value to the local mirror", zap.String("key", key), zap.Error(err))
	}
}

// mirrorDelete removes key from the mirror, best effort.
func (cs *ControlStorage) mirrorDelete(key string) {
	if cs.mirror == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cs.mirror.Delete(ctx, key)
}
