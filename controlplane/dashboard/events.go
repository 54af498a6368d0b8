package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/events"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// EventTester sends a destination one synthetic event
// (events.Deliverer.SendTest), as restapi.EventTester.
type EventTester interface {
	SendTest(ctx context.Context, dest *store.EventDestination) (string, error)
}

// destinationView is one event destination with its redacted target and
// delivery status (nil when the store has none yet).
type destinationView struct {
	store.EventDestination
	Target string // JSON, secrets redacted (store.RedactTarget)
	Status *events.DeliveryStatus
}

// eventsView is the events page: destinations and subscriptions (newest
// 100 of each), and the outcome of the last test event.
type eventsView struct {
	Destinations  []destinationView
	Subscriptions []store.EventSubscription
	Types         []string // source types, for the subscription form
	More          bool
	TestedID      string // the destination just tested
	TestedEventID string // its test event's ID, when delivered
}

// eventsView builds the events page (GET /events).
func (s *eventPages) eventsView(r *http.Request, c *dashCaller) (*eventsView, error) {
	ds, more1, err := s.store.ListEventDestinations(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return nil, err
	}
	subs, more2, err := s.store.ListEventSubscriptions(r.Context(), c.AccountID(), store.Page{})
	if err != nil {
		return nil, err
	}
	v := &eventsView{Subscriptions: subs, More: more1 || more2}
	for _, t := range events.Types() {
		v.Types = append(v.Types, t.Type)
	}
	for i := range ds {
		dv := destinationView{EventDestination: ds[i], Target: string(store.RedactTarget(ds[i].Target))}
		if st, err := events.Status(r.Context(), s.store, &ds[i], s.cfg.EventTargets); err == nil {
			dv.Status = st
		}
		v.Destinations = append(v.Destinations, dv)
	}
	return v, nil
}

// destinationTarget builds a target object from the create form: kind
// webhook (url, secret), nats (url, subject), file (path) or json (the
// target object as the API takes it, for the AWS and Datadog kinds).
func destinationTarget(f map[string][]string) (json.RawMessage, error) {
	get := func(k string) string {
		if v := f[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	var t any
	switch kind := get("kind"); kind {
	case "webhook":
		w := events.WebhookTarget{URL: get("url")}
		if sec := get("secret"); sec != "" {
			w.Secrets = []string{sec}
		}
		t = events.Target{Webhook: &w}
	case "nats":
		t = events.Target{NATS: &events.NATSTarget{URL: get("url"), Subject: get("subject")}}
	case "file":
		t = events.Target{File: &events.FileTarget{Path: get("path")}}
	case "json":
		return json.RawMessage(get("target")), nil
	default:
		return nil, controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput,
			"kind must be webhook, nats, file or json, not %q.", controlplane.Truncate(kind, 40))
	}
	return json.Marshal(t)
}

// dashCreateDestination is POST /events/destinations {kind, description,
// and the kind's fields}: a JSON-format destination whose target
// events.ParseTarget checks, as the API's POST /event_destinations.
// Read/write roles only.
func (s *eventPages) dashCreateDestination(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	target, err := destinationTarget(r.PostForm)
	if err == nil {
		_, err = events.ParseTarget(target, s.cfg.EventTargets)
	}
	if err == nil {
		_, err = s.store.CreateEventDestination(r.Context(), c.Actor, c.AccountID(), store.EventDestinationCreate{
			Description: strings.TrimSpace(r.PostForm.Get("description")), Format: events.FormatJSON, Target: target})
	}
	return s.afterEventsChange(w, r, c, err)
}

// dashTestDestination is POST /events/destinations/{id}/test: one
// test_event.v0 sent now, as the API's POST /event_destinations/{id}/test;
// the page shows the event's ID, or why it was not delivered (502,
// codes.EventTestFailed). Read/write roles only.
func (s *eventPages) dashTestDestination(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id := r.PathValue("id")
	if err := controlplane.CheckID(id, ids.PrefixEventDest); err != nil {
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%q is not an event destination ID (ed_...).", controlplane.Truncate(id, 60))
	}
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	d, err := s.store.GetEventDestination(r.Context(), c.AccountID(), id)
	if err != nil {
		return controlplane.NotFound(err, "event destination", id)
	}
	var evID string
	switch t, perr := events.ParseTarget(d.Target, s.cfg.EventTargets); {
	case s.cfg.EventTester == nil:
		err = controlplane.Errorf(http.StatusServiceUnavailable, codes.EventTestFailed, "This control plane delivers no events.")
	case perr == nil && !t.Delivered():
		err = t.ErrNotDelivered()
	default:
		if evID, err = s.cfg.EventTester.SendTest(r.Context(), d); err != nil {
			err = &controlplane.Error{Status: http.StatusBadGateway, Code: codes.EventTestFailed,
				Msg: "The test event was not delivered: " + controlplane.Truncate(err.Error(), 500), Cause: err}
		}
	}
	v, verr := s.eventsView(r, c)
	if verr != nil {
		return verr
	}
	v.TestedID = id
	if err != nil {
		ae := controlplane.AsError(err)
		return s.page(w, r, c, ae.Status, "events", "Events", v, ae)
	}
	v.TestedEventID = evID
	return s.page(w, r, c, http.StatusOK, "events", "Events", v, nil)
}

// dashDeleteDestination is POST /events/destinations/{id}/delete, as the
// API's DELETE /event_destinations/{id}: one a subscription names is
// refused (409, codes.EventDestinationInUse). Read/write
// roles only.
func (s *eventPages) dashDeleteDestination(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	return s.dashDelete(w, r, c, ids.PrefixEventDest, "event destination", s.store.DeleteEventDestination)
}

// dashDeleteSubscription is POST /events/subscriptions/{id}/delete, as the
// API's DELETE /event_subscriptions/{id}. Read/write roles only.
func (s *eventPages) dashDeleteSubscription(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	return s.dashDelete(w, r, c, ids.PrefixEventSub, "event subscription", s.store.DeleteEventSubscription)
}

func (s *eventPages) dashDelete(w http.ResponseWriter, r *http.Request, c *dashCaller, prefix, what string,
	del func(ctx context.Context, actor store.Actor, accountID, id string) error) error {
	id := r.PathValue("id")
	if err := controlplane.CheckID(id, prefix); err != nil {
		return controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%q is not an %s ID (%s_...).", controlplane.Truncate(id, 60), what, prefix)
	}
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	if err := del(r.Context(), c.Actor, c.AccountID(), id); err != nil {
		// the page again with the reason (a destination a subscription names: 409)
		return afterAction(s.Server, w, r, c, "events", "Events", s.eventsView, controlplane.NotFound(err, what, id), nil)
	}
	http.Redirect(w, r, "/events", http.StatusSeeOther)
	return nil
}

// dashCreateSubscription is POST /events/subscriptions {description,
// destination_id (repeated), type, filter, fields}: a subscription with
// one source, checked by events.CheckSource as the API's sources are (a
// filter that does not compile shows the compiler's message and stores
// nothing). fields are separated by commas or new lines; an empty filter
// or fields is unset. Read/write roles only.
func (s *eventPages) dashCreateSubscription(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	if err := c.RequireWrite(); err != nil {
		return dashForbidden(err)
	}
	src, err := formSource(r)
	if err == nil {
		_, err = s.store.CreateEventSubscription(r.Context(), c.Actor, c.AccountID(), store.EventSubscriptionCreate{
			Description: strings.TrimSpace(r.PostForm.Get("description")), Sources: []store.EventSource{src},
			DestinationIDs: r.PostForm["destination_id"]})
	}
	return s.afterEventsChange(w, r, c, err)
}

// formSource reads a source from a form's type, filter and fields (split
// at commas or new lines; an empty filter or fields is unset) and checks
// it with events.CheckSource, as the API's sources are.
func formSource(r *http.Request) (store.EventSource, error) {
	var filter *string
	if f := strings.TrimSpace(r.PostForm.Get("filter")); f != "" {
		filter = &f
	}
	var fields *[]string
	if fs := splitACL(r.PostForm.Get("fields")); len(fs) > 0 {
		fields = &fs
	}
	return events.CheckSource(strings.TrimSpace(r.PostForm.Get("type")), filter, fields)
}

// afterEventsChange redirects to the events page after a change, or shows
// it again with the reason it was refused.
func (s *eventPages) afterEventsChange(w http.ResponseWriter, r *http.Request, c *dashCaller, err error) error {
	if err != nil {
		return afterAction(s.Server, w, r, c, "events", "Events", s.eventsView, err, nil)
	}
	http.Redirect(w, r, "/events", http.StatusSeeOther)
	return nil
}

// subscriptionPath checks the {id} of a subscription's path and the
// caller's write role.
func subscriptionPath(r *http.Request, c *dashCaller) (string, error) {
	id := r.PathValue("id")
	if err := controlplane.CheckID(id, ids.PrefixEventSub); err != nil {
		return "", controlplane.Errorf(http.StatusBadRequest, codes.DashboardBadInput, "%q is not an event subscription ID (esb_...).", controlplane.Truncate(id, 60))
	}
	if err := c.RequireWrite(); err != nil {
		return "", dashForbidden(err)
	}
	return id, nil
}

// dashAddSource is POST /events/subscriptions/{id}/sources {type, filter,
// fields}: one more source, checked as the API's POST
// /event_subscriptions/{id}/sources (a filter that does not compile shows
// the compiler's message, TG_5410; a type the subscription has is a 409,
// TG_5416; nothing is stored). Read/write roles only.
func (s *eventPages) dashAddSource(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := subscriptionPath(r, c)
	if err != nil {
		return err
	}
	src, err := formSource(r)
	if err == nil {
		if _, err = s.store.AddEventSource(r.Context(), c.Actor, c.AccountID(), id, src); err != nil {
			err = controlplane.NotFound(err, "event subscription", id)
		}
	}
	return redirectAfter(s.Server, w, r, c, "events", "Events", s.eventsView, err, "/events", "source-added", id)
}

// dashDeleteSource is POST /events/subscriptions/{id}/sources/{type}/delete,
// as the API's DELETE /event_subscriptions/{id}/sources/{type}. Read/write
// roles only.
func (s *eventPages) dashDeleteSource(w http.ResponseWriter, r *http.Request, c *dashCaller) error {
	id, err := subscriptionPath(r, c)
	if err != nil {
		return err
	}
	typ := r.PathValue("type")
	if err := events.CheckType(typ); err != nil {
		return err
	}
	if err = s.store.DeleteEventSource(r.Context(), c.Actor, c.AccountID(), id, typ); err != nil {
		err = controlplane.NotFound(err, "event source", id+"/sources/"+typ)
	}
	return redirectAfter(s.Server, w, r, c, "events", "Events", s.eventsView, err, "/events", "source-removed", id)
}
