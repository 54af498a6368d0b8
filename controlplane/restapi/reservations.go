package restapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// TCPAddrPool is one region's range of TCP addresses that the control plane
// assigns reserved addresses from (controlplane.TCPAddrPool).
type TCPAddrPool = controlplane.TCPAddrPool

// reservationAPI serves /reserved_domains and /reserved_addrs.
type reservationAPI struct{ *Server }

// routes registers /reserved_domains and /reserved_addrs
// (docs/api-compatibility.md#reservations). Every member may read;
// creating, changing and releasing need the read/write developer role.
func (s *reservationAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/reserved_domains", methods{http.MethodGet: s.listReservedDomains, http.MethodPost: s.createReservedDomain})
	s.route(mux, "/reserved_domains/{id}", methods{
		http.MethodGet:    s.getReservedDomain,
		http.MethodPatch:  s.updateReservedDomain,
		http.MethodDelete: s.deleteReservedDomain,
	})
	s.route(mux, "/reserved_domains/{id}/certificate_management_policy", methods{http.MethodDelete: s.deleteReservedDomainCertPolicy})
	s.route(mux, "/reserved_domains/{id}/certificate", methods{http.MethodDelete: s.deleteReservedDomainCertificate})
	s.route(mux, "/reserved_addrs", methods{http.MethodGet: s.listReservedAddrs, http.MethodPost: s.createReservedAddr})
	s.route(mux, "/reserved_addrs/{id}", methods{
		http.MethodGet:    s.getReservedAddr,
		http.MethodPatch:  s.updateReservedAddr,
		http.MethodDelete: s.deleteReservedAddr,
	})
}

// optional is a body field that tells absent (Set false), null (Set and
// Null) and a value apart.
type optional[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// UnmarshalJSON records that the field was present and decodes it.
func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// certPolicyJSON is certificate_management_policy.
type certPolicyJSON struct {
	Authority      string `json:"authority"`
	PrivateKeyType string `json:"private_key_type"`
}

// reservedDomainJSON is the reserved_domains object
// (docs/api-compatibility.md#reserved-domains). cname_target is the public
// hostname of the domain's region (controlplane.CNAMETarget), null when none
// is configured or the domain resolves to the edges already;
// acme_challenge_cname_target and certificate are null: Tollgate delegates
// no _acme-challenge names and stores no uploaded certificates. certificate_management_status
// is what the edges reported (null without a policy). min_tls_version is
// null for the edge default; hsts (Tollgate's extension) null for none.
type reservedDomainJSON struct {
	ID                          string          `json:"id"`
	URI                         string          `json:"uri"`
	CreatedAt                   string          `json:"created_at"`
	Description                 string          `json:"description"`
	Metadata                    string          `json:"metadata"`
	Domain                      string          `json:"domain"`
	Region                      string          `json:"region"`
	CNAMETarget                 *string         `json:"cname_target"`
	Certificate                 *refJSON        `json:"certificate"`
	CertificateManagementPolicy *certPolicyJSON `json:"certificate_management_policy"`
	CertificateManagementStatus any             `json:"certificate_management_status"`
	ACMEChallengeCNAMETarget    *string         `json:"acme_challenge_cname_target"`
	MinTLSVersion               *string         `json:"min_tls_version"`
	HSTS                        *hstsJSON       `json:"hsts"`
}

// reservedDomainCreateBody is POST /reserved_domains. An absent
// certificate_management_policy means Let's Encrypt with an RSA key; null
// means no automatic certificate. certificate_id must be null or absent.
type reservedDomainCreateBody struct {
	Domain                      string                    `json:"domain"`
	Region                      string                    `json:"region"` // "" = the server's DefaultRegion
	Description                 string                    `json:"description"`
	Metadata                    string                    `json:"metadata"`
	CertificateID               *string                   `json:"certificate_id"`
	CertificateManagementPolicy optional[json.RawMessage] `json:"certificate_management_policy"`
	MinTLSVersion               optional[string]          `json:"min_tls_version"`
	HSTS                        optional[json.RawMessage] `json:"hsts"` // hstsJSON or null; absent = none
}

// reservedDomainUpdateBody is PATCH /reserved_domains/{id}. A null
// certificate_management_policy removes the policy; a null or ""
// min_tls_version restores the edge default; a null hsts removes it; region
// may only repeat the current one.
type reservedDomainUpdateBody struct {
	Description                 *string                   `json:"description"`
	Metadata                    *string                   `json:"metadata"`
	Region                      *string                   `json:"region"`
	CertificateID               *string                   `json:"certificate_id"`
	CertificateManagementPolicy optional[json.RawMessage] `json:"certificate_management_policy"`
	MinTLSVersion               optional[string]          `json:"min_tls_version"`
	HSTS                        optional[json.RawMessage] `json:"hsts"`
}

func (s *reservationAPI) reservedDomainJSON(r *http.Request, d *store.ReservedDomain) reservedDomainJSON {
	out := reservedDomainJSON{ID: d.ID, URI: s.baseURL(r) + "/reserved_domains/" + d.ID, CreatedAt: timestamp(d.CreatedAt),
		Description: d.Description, Metadata: d.Metadata, Domain: d.Domain, Region: d.Region}
	if t := controlplane.CNAMETarget(s.cfg.PublicHostnames, d.Domain, d.Region); t != "" {
		out.CNAMETarget = &t
	}
	if d.CertPolicy != nil {
		out.CertificateManagementPolicy = &certPolicyJSON{Authority: d.CertPolicy.Authority, PrivateKeyType: d.CertPolicy.PrivateKeyType}
	}
	if d.MinTLSVersion != "" {
		v := d.MinTLSVersion
		out.MinTLSVersion = &v
	}
	if d.CertPolicy != nil {
		out.CertificateManagementStatus = s.certStatusJSON(r, d)
	}
	out.HSTS = hstsOut(d.HSTS)
	return out
}

// certStatusJSON is certificate_management_status
// (docs/api-compatibility.md#reserved-domains): renews_at, and provisioning_job
// while a certificate is being obtained or obtaining it failed.
type certStatusJSON struct {
	RenewsAt        *string          `json:"renews_at"`
	ProvisioningJob *provisioningJob `json:"provisioning_job"`
}

type provisioningJob struct {
	ErrorCode *string `json:"error_code"`
	Msg       string  `json:"msg"`
	StartedAt string  `json:"started_at"`
	RetriesAt *string `json:"retries_at"`
}

// certStatusJSON renders what the edges reported for d's certificate
// (store.GetCertificateStatus). No report yet means provisioning has
// started at the reservation's creation; a read failure is logged and
// shown the same way, so that a listing never fails on it.
func (s *reservationAPI) certStatusJSON(r *http.Request, d *store.ReservedDomain) *certStatusJSON {
	st, err := s.store.GetCertificateStatus(r.Context(), d.Domain)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("reading certificate status", zap.String("domain", d.Domain), zap.Error(err))
		}
		return &certStatusJSON{ProvisioningJob: &provisioningJob{
			Msg: "The certificate is being provisioned.", StartedAt: timestamp(d.CreatedAt)}}
	}
	out := &certStatusJSON{}
	if !st.RenewsAt.IsZero() {
		v := timestamp(st.RenewsAt)
		out.RenewsAt = &v
	}
	if st.JobErrorCode != "" || st.NotAfter.IsZero() {
		job := &provisioningJob{Msg: st.JobMsg, StartedAt: timestamp(d.CreatedAt)}
		if !st.JobStartedAt.IsZero() {
			job.StartedAt = timestamp(st.JobStartedAt)
		}
		if st.JobErrorCode != "" {
			code := st.JobErrorCode
			job.ErrorCode = &code
		}
		if !st.JobRetriesAt.IsZero() {
			v := timestamp(st.JobRetriesAt)
			job.RetriesAt = &v
		}
		if job.Msg == "" {
			job.Msg = "The certificate is being provisioned."
		}
		out.ProvisioningJob = job
	}
	return out
}

// rules are the reservation settings shared with the dashboard.
func (s *reservationAPI) rules() controlplane.Reservations {
	return controlplane.Reservations{DefaultRegion: s.cfg.DefaultRegion, TCPAddrPools: s.cfg.TCPAddrPools}
}

// noCertificateID refuses a certificate_id: Tollgate does not store uploaded
// certificates (docs/api-compatibility.md#reserved-domains makes it exclusive with the policy).
func noCertificateID(id *string) error {
	if id == nil {
		return nil
	}
	return controlplane.BadRequest(codes.CertificateUnsupported,
		"certificate_id is not supported: Tollgate obtains certificates itself. Leave it out and use certificate_management_policy.")
}

// parseCertPolicy decodes a certificate_management_policy object:
// {"authority": "letsencrypt", "private_key_type": "rsa"|"ecdsa"}, either
// field optional. Unknown fields get TG_214, wrong shapes TG_213, bad
// values codes.CertPolicyInvalid.
func parseCertPolicy(raw json.RawMessage) (*store.CertPolicy, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, controlplane.BadRequest(codes.APIBodyInvalid,
			`certificate_management_policy must be an object such as {"authority": "letsencrypt", "private_key_type": "rsa"}, or null.`)
	}
	var p store.CertPolicy
	for k, v := range fields {
		var dst *string
		switch k {
		case "authority":
			dst = &p.Authority
		case "private_key_type":
			dst = &p.PrivateKeyType
		default:
			return nil, controlplane.BadRequest(codes.APIUnknownParam,
				"Unknown field %q in certificate_management_policy: use authority and private_key_type.", controlplane.Truncate(k, 60))
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return nil, controlplane.BadRequest(codes.APIBodyInvalid, "certificate_management_policy.%s must be a string.", k)
		}
	}
	p, err := store.ValidateCertPolicy(p)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

func (s *reservationAPI) createReservedDomain(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body reservedDomainCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	if err := c.RequireWrite(); err != nil {
		return err
	}
	if err := noCertificateID(body.CertificateID); err != nil {
		return err
	}
	in := s.rules().DomainCreate(store.ReservedDomainCreate{Domain: body.Domain, Region: body.Region, Description: body.Description,
		Metadata: body.Metadata, CertPolicy: store.DefaultCertPolicy(), MinTLSVersion: body.MinTLSVersion.Value})
	if h, err := hstsIn(body.HSTS); err != nil {
		return err
	} else if h != nil {
		in.HSTS = *h
	}
	if p := body.CertificateManagementPolicy; p.Set {
		in.CertPolicy = nil
		if !p.Null {
			var err error
			if in.CertPolicy, err = parseCertPolicy(p.Value); err != nil {
				return err
			}
		}
	}
	d, err := s.store.CreateReservedDomain(r.Context(), c.Actor, c.AccountID(), in)
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.reservedDomainJSON(r, d))
	return nil
}

// getReservedDomain is GET /reserved_domains/{id}.
func (s *reservationAPI) getReservedDomain(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixReservedDomain, "reserved domain", s.store.GetReservedDomain, s.reservedDomainJSON)(w, r, c)
}

// listReservedDomains is GET /reserved_domains.
func (s *reservationAPI) listReservedDomains(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "reserved_domains", ids.PrefixReservedDomain, s.store.ListReservedDomains, s.reservedDomainJSON,
		func(v *store.ReservedDomain) string { return v.ID })(w, r, c)
}

func (s *reservationAPI) updateReservedDomain(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body reservedDomainUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixReservedDomain, nil, &body)
	if err != nil {
		return err
	}
	if err := c.RequireWrite(); err != nil {
		return err
	}
	if err := noCertificateID(body.CertificateID); err != nil {
		return err
	}
	in := store.ReservedDomainUpdate{Description: body.Description, Metadata: body.Metadata, Region: body.Region}
	if p := body.CertificateManagementPolicy; p.Set {
		in.SetCertPolicy = true
		if !p.Null {
			if in.CertPolicy, err = parseCertPolicy(p.Value); err != nil {
				return err
			}
		}
	}
	if v := body.MinTLSVersion; v.Set {
		in.MinTLSVersion = &v.Value // null leaves Value "": the edge default
	}
	if in.HSTS, err = hstsIn(body.HSTS); err != nil {
		return err
	}
	d, err := s.store.UpdateReservedDomain(r.Context(), c.Actor, c.AccountID(), id, in)
	if err != nil {
		return controlplane.NotFound(err, "reserved domain", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.reservedDomainJSON(r, d))
	return nil
}

// deleteReservedDomain is DELETE /reserved_domains/{id}.
func (s *reservationAPI) deleteReservedDomain(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixReservedDomain, "reserved domain", controlplane.WriterAccess, s.store.DeleteReservedDomain)(w, r, c)
}

// deleteReservedDomainCertPolicy removes the domain's certificate
// management policy: the edges stop obtaining certificates for it.
func (s *reservationAPI) deleteReservedDomainCertPolicy(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixReservedDomain, "reserved domain", controlplane.WriterAccess,
		func(ctx context.Context, actor store.Actor, accountID, id string) error {
			_, err := s.store.UpdateReservedDomain(ctx, actor, accountID, id, store.ReservedDomainUpdate{SetCertPolicy: true})
			return err
		})(w, r, c)
}

// deleteReservedDomainCertificate detaches an uploaded certificate. Tollgate
// attaches none, so for a domain of the account it succeeds and changes
// nothing.
func (s *reservationAPI) deleteReservedDomainCertificate(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixReservedDomain, "reserved domain", controlplane.WriterAccess,
		func(ctx context.Context, _ store.Actor, accountID, id string) error {
			_, err := s.store.GetReservedDomain(ctx, accountID, id)
			return err
		})(w, r, c)
}

// reservedAddrJSON is the reserved_addrs object
// (docs/api-compatibility.md#reserved-addrs); the legacy
// endpoint_configuration is always null.
type reservedAddrJSON struct {
	ID                    string   `json:"id"`
	URI                   string   `json:"uri"`
	CreatedAt             string   `json:"created_at"`
	Description           string   `json:"description"`
	Metadata              string   `json:"metadata"`
	Addr                  string   `json:"addr"`
	Region                string   `json:"region"`
	EndpointConfiguration *refJSON `json:"endpoint_configuration"`
}

// reservedAddrCreateBody is POST /reserved_addrs. Without addr, one is
// assigned from the region's TCPAddrPool.
type reservedAddrCreateBody struct {
	Description string `json:"description"`
	Metadata    string `json:"metadata"`
	Addr        string `json:"addr"`
	Region      string `json:"region"`
}

// reservedAddrUpdateBody is PATCH /reserved_addrs/{id}; region may only
// repeat the current one.
type reservedAddrUpdateBody struct {
	Description *string `json:"description"`
	Metadata    *string `json:"metadata"`
	Region      *string `json:"region"`
}

func (s *reservationAPI) reservedAddrJSON(r *http.Request, a *store.ReservedAddr) reservedAddrJSON {
	return reservedAddrJSON{ID: a.ID, URI: s.baseURL(r) + "/reserved_addrs/" + a.ID, CreatedAt: timestamp(a.CreatedAt),
		Description: a.Description, Metadata: a.Metadata, Addr: a.Addr, Region: a.Region}
}

func (s *reservationAPI) createReservedAddr(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body reservedAddrCreateBody
	if _, err := s.beginWrite(w, r, "", nil, &body); err != nil {
		return err
	}
	if err := c.RequireWrite(); err != nil {
		return err
	}
	in, err := s.rules().AddrCreate(store.ReservedAddrCreate{Addr: body.Addr, Region: body.Region,
		Description: body.Description, Metadata: body.Metadata})
	if err != nil {
		return err
	}
	// A misconfigured pool fails here as a 500, logged with its cause.
	a, err := s.store.CreateReservedAddr(r.Context(), c.Actor, c.AccountID(), in)
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.reservedAddrJSON(r, a))
	return nil
}

// getReservedAddr is GET /reserved_addrs/{id}.
func (s *reservationAPI) getReservedAddr(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixReservedAddr, "reserved address", s.store.GetReservedAddr, s.reservedAddrJSON)(w, r, c)
}

// listReservedAddrs is GET /reserved_addrs.
func (s *reservationAPI) listReservedAddrs(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "reserved_addrs", ids.PrefixReservedAddr, s.store.ListReservedAddrs, s.reservedAddrJSON,
		func(v *store.ReservedAddr) string { return v.ID })(w, r, c)
}

func (s *reservationAPI) updateReservedAddr(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body reservedAddrUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixReservedAddr, nil, &body)
	if err != nil {
		return err
	}
	if err := c.RequireWrite(); err != nil {
		return err
	}
	a, err := s.store.UpdateReservedAddr(r.Context(), c.Actor, c.AccountID(), id,
		store.ReservedAddrUpdate{Description: body.Description, Metadata: body.Metadata, Region: body.Region})
	if err != nil {
		return controlplane.NotFound(err, "reserved address", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.reservedAddrJSON(r, a))
	return nil
}

// deleteReservedAddr is DELETE /reserved_addrs/{id}.
func (s *reservationAPI) deleteReservedAddr(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return deleteOne(ids.PrefixReservedAddr, "reserved address", controlplane.WriterAccess, s.store.DeleteReservedAddr)(w, r, c)
}
