package dashboard

import (
	"net/http"

	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// The reservations page's actions: reserving and releasing domains and TCP
// addresses, with the REST API's rules (read/write roles; the store
// validates names and addresses; controlplane.Reservations completes the
// region and the address pool, as for POST /reserved_addrs).

// reservationsDone renders the reservations page again after a refused
// action, or redirects after a successful one.
func (s *managePages) reservationsDone(w http.ResponseWriter, r *http.Request, c *dashCaller, err error, key, id string) error {
	return redirectAfter(s.Server, w, r, c, "reservations", "Reservations", s.reservationsView, err, "/reservations", key, id)
}

// dashReserveDomain is POST /reservations/domains {domain, region,
// description}: a reserved domain with the default certificate policy
// (Let's Encrypt, RSA), as POST /reserved_domains without a policy.
func (s *managePages) dashReserveDomain(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	in := s.cfg.Reservations.DomainCreate(store.ReservedDomainCreate{Domain: formText(r, "domain"), Region: formText(r, "region"),
		Description: formText(r, "description"), CertPolicy: store.DefaultCertPolicy()})
	d, err := s.store.CreateReservedDomain(r.Context(), c.Actor, c.AccountID(), in)
	return s.reservationsDone(w, r, c, err, "domain-reserved", idOf(d, err, func(d *store.ReservedDomain) string { return d.ID }))
}

// dashReserveAddr is POST /reservations/addrs {region, addr, description}:
// a reserved TCP address, from the region's pool when addr is empty.
func (s *managePages) dashReserveAddr(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	in, err := s.cfg.Reservations.AddrCreate(store.ReservedAddrCreate{Addr: formText(r, "addr"), Region: formText(r, "region"),
		Description: formText(r, "description")})
	id := ""
	if err == nil {
		var a *store.ReservedAddr
		if a, err = s.store.CreateReservedAddr(r.Context(), c.Actor, c.AccountID(), in); err == nil {
			id = a.ID
		}
	}
	return s.reservationsDone(w, r, c, err, "addr-reserved", id)
}

// dashReleaseReservation is POST /reservations/{id}/delete for a reserved
// domain (rd_) or TCP address (ra_), as the API's DELETE.
func (s *managePages) dashReleaseReservation(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := formID(r, "a reserved domain (rd_...) or TCP address (ra_...)", ids.PrefixReservedDomain, ids.PrefixReservedAddr)
	if err != nil {
		return err
	}
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	key := "domain-released"
	if controlplane.CheckID(id, ids.PrefixReservedDomain) == nil {
		err = controlplane.NotFound(s.store.DeleteReservedDomain(r.Context(), c.Actor, c.AccountID(), id), "reserved domain", id)
	} else {
		key = "addr-released"
		err = controlplane.NotFound(s.store.DeleteReservedAddr(r.Context(), c.Actor, c.AccountID(), id), "reserved TCP address", id)
	}
	return s.reservationsDone(w, r, c, err, key, id)
}
