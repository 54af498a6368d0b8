package edgeapi

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/regions"
	"github.com/tollgate/tollgate/snapshot"
)

// DefaultCertLockTTL is Config.CertLockTTL's default: how long an edge's
// certificate lock outlives the edge's last renewal. The edge renews every
// third of it while it holds the lock, so only a crashed edge's lock
// expires, after at most this long.
const DefaultCertLockTTL = time.Minute

// lockTokenPrefix keeps edge lock tokens apart from the holders of the
// control plane's own store.CertStorage in the shared lock table.
const lockTokenPrefix = "edge:"

// maxStatusReport bounds the body of a certificate status report.
const maxStatusReport = 64 << 10

// certRoutes registers the certificate storage routes (doc.go).
func (s *Server) certRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /edge/v1/certstore/value", s.edgeOnly(s.serveCertLoad))
	mux.HandleFunc("PUT /edge/v1/certstore/value", s.edgeOnly(s.serveCertStore))
	mux.HandleFunc("DELETE /edge/v1/certstore/value", s.edgeOnly(s.serveCertDelete))
	mux.HandleFunc("GET /edge/v1/certstore/stat", s.edgeOnly(s.serveCertStat))
	mux.HandleFunc("GET /edge/v1/certstore/list", s.edgeOnly(s.serveCertList))
	mux.HandleFunc("POST /edge/v1/certstore/locks/acquire", s.edgeOnly(s.serveCertLockAcquire))
	mux.HandleFunc("POST /edge/v1/certstore/locks/renew", s.edgeOnly(s.serveCertLockRenew))
	mux.HandleFunc("POST /edge/v1/certstore/locks/release", s.edgeOnly(s.serveCertLockRelease))
	mux.HandleFunc("PUT /edge/v1/certificates/status", s.edgeOnly(s.serveCertStatus))
}

// certLockTTL is the configured lock lifetime.
func (s *Server) certLockTTL() time.Duration {
	if s.cfg.CertLockTTL > 0 {
		return s.cfg.CertLockTTL
	}
	return DefaultCertLockTTL
}

// certStorage returns the store's certmagic storage; its data methods hold
// no state (locks go through Store.AcquireCertLock and friends instead).
func (s *Server) certStorage() *store.CertStorage {
	return s.store.CertStorage(store.CertStorageOptions{Logger: s.log})
}

// certKey reads and checks the key parameter.
func certKey(r *http.Request) (string, error) {
	key := r.URL.Query().Get("key")
	if err := snapshot.CheckCertKey(key); err != nil {
		return "", controlplane.BadRequest(codes.CertStoreKey, "The certificate storage key is refused: %v.", err)
	}
	return key, nil
}

// certStoreFailed answers a store error: 404 for a missing key, else 503
// (the edge retries; the cause goes to the log).
func (s *Server) certStoreFailed(r *http.Request, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return controlplane.Errorf(http.StatusNotFound, codes.CertStoreNotFound, "Nothing is stored at %q.", key)
	}
	if r.Context().Err() == nil {
		s.log.Warn("certificate storage", zap.String("key", key), zap.Error(err))
	}
	return controlplane.Errorf(http.StatusServiceUnavailable, codes.EdgeUnavailable,
		"The control plane cannot reach its certificate storage; the edge retries.")
}

// serveCertLoad is GET /edge/v1/certstore/value?key=K.
func (s *Server) serveCertLoad(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	key, err := certKey(r)
	if err != nil {
		return err
	}
	v, err := s.certStorage().Load(r.Context(), key)
	if err != nil {
		return s.certStoreFailed(r, key, err)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(v)
	return nil
}

// serveCertStore is PUT /edge/v1/certstore/value?key=K with the value as
// the body (at most snapshot.MaxCertValue bytes).
func (s *Server) serveCertStore(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	key, err := certKey(r)
	if err != nil {
		return err
	}
	if r.ContentLength > snapshot.MaxCertValue {
		return tooLarge()
	}
	v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, snapshot.MaxCertValue))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tooLarge()
		}
		return controlplane.BadRequest(codes.EdgeBadRequest, "The value could not be read: %v", err)
	}
	if err := s.certStorage().Store(r.Context(), key, v); err != nil {
		return s.certStoreFailed(r, key, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func tooLarge() error {
	return controlplane.Errorf(http.StatusRequestEntityTooLarge, codes.CertStoreTooLarge,
		"A certificate storage value is at most %d bytes.", snapshot.MaxCertValue)
}

// serveCertDelete is DELETE /edge/v1/certstore/value?key=K: the key and
// every key under it; a missing key is not an error.
func (s *Server) serveCertDelete(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	key, err := certKey(r)
	if err != nil {
		return err
	}
	if err := s.certStorage().Delete(r.Context(), key); err != nil {
		return s.certStoreFailed(r, key, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// serveCertStat is GET /edge/v1/certstore/stat?key=K.
func (s *Server) serveCertStat(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	key, err := certKey(r)
	if err != nil {
		return err
	}
	ki, err := s.certStorage().Stat(r.Context(), key)
	if err != nil {
		return s.certStoreFailed(r, key, err)
	}
	controlplane.WriteJSON(w, http.StatusOK, snapshot.CertKeyInfo{
		Key: ki.Key, Modified: ki.Modified.UTC(), Size: ki.Size, IsTerminal: ki.IsTerminal,
	})
	return nil
}

// serveCertList is GET /edge/v1/certstore/list?prefix=P[&recursive=true].
func (s *Server) serveCertList(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if err := snapshot.CheckCertPrefix(prefix); err != nil {
		return controlplane.BadRequest(codes.CertStoreKey, "The certificate storage prefix is refused: %v.", err)
	}
	keys, err := s.certStorage().List(r.Context(), prefix, q.Get("recursive") == "true")
	if err != nil {
		return s.certStoreFailed(r, prefix, err)
	}
	controlplane.WriteJSON(w, http.StatusOK, snapshot.CertKeyList{Keys: keys})
	return nil
}

// lockRequest decodes and checks a lock request body.
func lockRequest(w http.ResponseWriter, r *http.Request) (snapshot.CertLockRequest, error) {
	var req snapshot.CertLockRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil {
		return req, controlplane.BadRequest(codes.EdgeBadRequest, "The lock request is not valid JSON: %v", err)
	}
	if err := snapshot.CheckCertLockName(req.Name); err != nil {
		return req, controlplane.BadRequest(codes.CertStoreKey, "The lock is refused: %v.", err)
	}
	if err := snapshot.CheckCertLockToken(req.Token); err != nil {
		return req, controlplane.BadRequest(codes.CertStoreKey, "The lock is refused: %v.", err)
	}
	return req, nil
}

// serveCertLockAcquire is POST /edge/v1/certstore/locks/acquire: one try,
// never waiting (the edge polls).
func (s *Server) serveCertLockAcquire(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	req, err := lockRequest(w, r)
	if err != nil {
		return err
	}
	ttl := s.certLockTTL()
	ok, err := s.store.AcquireCertLock(r.Context(), req.Name, lockTokenPrefix+req.Token, ttl)
	if err != nil {
		return s.certStoreFailed(r, req.Name, err)
	}
	controlplane.WriteJSON(w, http.StatusOK, snapshot.CertLockAnswer{Acquired: ok, TTLMilli: ttl.Milliseconds()})
	return nil
}

// serveCertLockRenew is POST /edge/v1/certstore/locks/renew: 409 when the
// token no longer holds the lock.
func (s *Server) serveCertLockRenew(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	req, err := lockRequest(w, r)
	if err != nil {
		return err
	}
	ttl := s.certLockTTL()
	if err := s.store.RenewCertLock(r.Context(), req.Name, lockTokenPrefix+req.Token, ttl); err != nil {
		if errors.Is(err, store.ErrLockLost) {
			return controlplane.Errorf(http.StatusConflict, codes.CertLockLost,
				"The lock %q is no longer held with this token: it expired and may be held by another edge.", req.Name)
		}
		return s.certStoreFailed(r, req.Name, err)
	}
	controlplane.WriteJSON(w, http.StatusOK, snapshot.CertLockAnswer{Acquired: true, TTLMilli: ttl.Milliseconds()})
	return nil
}

// serveCertLockRelease is POST /edge/v1/certstore/locks/release.
func (s *Server) serveCertLockRelease(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	req, err := lockRequest(w, r)
	if err != nil {
		return err
	}
	if err := s.store.ReleaseCertLock(r.Context(), req.Name, lockTokenPrefix+req.Token); err != nil {
		return s.certStoreFailed(r, req.Name, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// serveCertStatus is PUT /edge/v1/certificates/status: an edge's
// certificate status for one name, shown by the reserved_domains API.
func (s *Server) serveCertStatus(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	var rep snapshot.CertStatusReport
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxStatusReport)).Decode(&rep); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return controlplane.Errorf(http.StatusRequestEntityTooLarge, codes.CertStoreTooLarge,
				"A certificate status report is at most %d bytes.", maxStatusReport)
		}
		return controlplane.BadRequest(codes.EdgeBadRequest, "The certificate status is not valid JSON: %v", err)
	}
	if rep.Domain == "" || len(rep.Domain) > 255 {
		return controlplane.BadRequest(codes.EdgeBadRequest, "A certificate status needs a domain of at most 255 bytes.")
	}
	if _, err := regions.Parse(rep.Region); err != nil {
		return controlplane.BadRequest(codes.EdgeBadRequest, "A certificate status's region must be a region code: %v", err)
	}
	err := s.store.PutCertificateStatus(r.Context(), store.CertificateStatus{
		Domain: rep.Domain, NotAfter: rep.NotAfter, RenewsAt: rep.RenewsAt, Issuer: rep.Issuer,
		JobErrorCode: rep.JobErrorCode, JobMsg: rep.JobMsg, JobStartedAt: rep.JobStartedAt,
		JobRetriesAt: rep.JobRetriesAt, Region: rep.Region,
	})
	if err != nil {
		return s.certStoreFailed(r, rep.Domain, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
