package restapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/controlplane/events"
	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/ids"
)

// Event subscriptions, their sources, event destinations and event types
// (docs/events.md). Paths and fields are the hosted platform's
// (@ngrok/ngrok-api's eventSubscriptions, eventSources, eventDestinations);
// a source's filter and fields, the nats, webhook and file targets, a
// destination's tollgate_delivery status, POST /event_destinations/{id}/test
// and GET /event_types are Tollgate's. Anyone in the account reads; the
// read/write role changes and tests.

// EventTester sends a destination one synthetic event
// (events.Deliverer.SendTest).
type EventTester interface {
	SendTest(ctx context.Context, dest *store.EventDestination) (string, error)
}

type eventSourceJSON struct {
	Type   string   `json:"type"`
	URI    string   `json:"uri"`
	Filter string   `json:"filter"`
	Fields []string `json:"fields"`
}

type eventSubscriptionJSON struct {
	ID           string            `json:"id"`
	URI          string            `json:"uri"`
	CreatedAt    string            `json:"created_at"`
	Metadata     string            `json:"metadata"`
	Description  string            `json:"description"`
	Sources      []eventSourceJSON `json:"sources"`
	Destinations []refJSON         `json:"destinations"`
}

type deliveryJSON struct {
	Delivered     int64   `json:"delivered"`
	Dropped       int64   `json:"dropped"`
	Pending       int64   `json:"pending"`
	LagSeconds    float64 `json:"lag_seconds"`
	Failures      int     `json:"failures"`
	LastSuccessAt *string `json:"last_success_at"`
	LastErrorAt   *string `json:"last_error_at"`
	LastError     string  `json:"last_error"`
	NextAttemptAt *string `json:"next_attempt_at"`
	// TrafficDropped: by traffic event type, {"edge": n, "outbox": m}
	// (events.DeliveryStatus.TrafficDropped); {} when none.
	TrafficDropped map[string]trafficDroppedJSON `json:"traffic_dropped"`
}

type trafficDroppedJSON struct {
	Edge   int64 `json:"edge"`
	Outbox int64 `json:"outbox"`
}

type eventDestinationJSON struct {
	ID          string          `json:"id"`
	URI         string          `json:"uri"`
	CreatedAt   string          `json:"created_at"`
	Metadata    string          `json:"metadata"`
	Description string          `json:"description"`
	Format      string          `json:"format"`
	Target      json.RawMessage `json:"target"`
	Delivery    *deliveryJSON   `json:"tollgate_delivery"`
}

type eventSourceBody struct {
	SubscriptionID string    `json:"subscription_id"` // @ngrok/ngrok-api sends it; must be the path's
	Type           string    `json:"type"`
	Filter         *string   `json:"filter"`
	Fields         *[]string `json:"fields"`
}

type eventSubscriptionCreateBody struct {
	Metadata       string            `json:"metadata"`
	Description    string            `json:"description"`
	Sources        []eventSourceBody `json:"sources"`
	DestinationIDs []string          `json:"destination_ids"`
}

type eventSubscriptionUpdateBody struct {
	Metadata       *string            `json:"metadata"`
	Description    *string            `json:"description"`
	Sources        *[]eventSourceBody `json:"sources"`
	DestinationIDs *[]string          `json:"destination_ids"`
}

type eventDestinationCreateBody struct {
	Metadata    string          `json:"metadata"`
	Description string          `json:"description"`
	Format      string          `json:"format"`
	Target      json.RawMessage `json:"target"`
}

type eventDestinationUpdateBody struct {
	Metadata    *string         `json:"metadata"`
	Description *string         `json:"description"`
	Format      *string         `json:"format"`
	Target      json.RawMessage `json:"target"`
}

// eventAPI serves the event resources.
type eventAPI struct{ *Server }

func (s *eventAPI) routes(mux *http.ServeMux) {
	s.route(mux, "/event_destinations", methods{http.MethodGet: s.listDestinations, http.MethodPost: s.createDestination})
	s.route(mux, "/event_destinations/{id}", methods{http.MethodGet: s.getDestination, http.MethodPatch: s.updateDestination,
		http.MethodDelete: deleteOne(ids.PrefixEventDest, "event destination", controlplane.WriterAccess, s.store.DeleteEventDestination)})
	s.route(mux, "/event_destinations/{id}/test", methods{http.MethodPost: s.testDestination})
	s.route(mux, "/event_subscriptions", methods{http.MethodGet: s.listSubscriptions, http.MethodPost: s.createSubscription})
	s.route(mux, "/event_subscriptions/{id}", methods{http.MethodGet: s.getSubscription, http.MethodPatch: s.updateSubscription,
		http.MethodDelete: deleteOne(ids.PrefixEventSub, "event subscription", controlplane.WriterAccess, s.store.DeleteEventSubscription)})
	s.route(mux, "/event_subscriptions/{id}/sources", methods{http.MethodGet: s.listSources, http.MethodPost: s.createSource})
	s.route(mux, "/event_subscriptions/{id}/sources/{type}", methods{http.MethodGet: s.getSource, http.MethodPatch: s.updateSource,
		http.MethodDelete: s.deleteSource})
	s.route(mux, "/event_types", methods{http.MethodGet: s.listTypes})
}

// ---- rendering ----

func (s *Server) subscriptionURI(r *http.Request, id string) string {
	return s.baseURL(r) + "/event_subscriptions/" + id
}

func (s *Server) sourceJSON(r *http.Request, subID string, src store.EventSource) eventSourceJSON {
	fields := src.Fields
	if fields == nil {
		fields = []string{}
	}
	return eventSourceJSON{Type: src.Type, URI: s.subscriptionURI(r, subID) + "/sources/" + url.PathEscape(src.Type),
		Filter: src.Filter, Fields: fields}
}

func (s *Server) subscriptionJSON(r *http.Request, x *store.EventSubscription) eventSubscriptionJSON {
	out := eventSubscriptionJSON{ID: x.ID, URI: s.subscriptionURI(r, x.ID), CreatedAt: timestamp(x.CreatedAt),
		Metadata: x.Metadata, Description: x.Description, Sources: []eventSourceJSON{}, Destinations: []refJSON{}}
	for _, src := range x.Sources {
		out.Sources = append(out.Sources, s.sourceJSON(r, x.ID, src))
	}
	for _, id := range x.DestinationIDs {
		out.Destinations = append(out.Destinations, refJSON{ID: id, URI: s.baseURL(r) + "/event_destinations/" + id})
	}
	return out
}

// destinationJSON renders a destination without the target's secrets and
// with its delivery status (when readable).
func (s *Server) destinationJSON(r *http.Request, d *store.EventDestination) eventDestinationJSON {
	out := eventDestinationJSON{ID: d.ID, URI: s.baseURL(r) + "/event_destinations/" + d.ID, CreatedAt: timestamp(d.CreatedAt),
		Metadata: d.Metadata, Description: d.Description, Format: d.Format, Target: store.RedactTarget(d.Target)}
	st, err := events.Status(r.Context(), s.store, d, s.cfg.EventTargets)
	if err != nil {
		return out
	}
	opt := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		v := t.UTC().Format(time.RFC3339)
		return &v
	}
	dj := &deliveryJSON{Delivered: st.Delivered, Dropped: st.Dropped, Pending: st.Pending, Failures: st.Failures,
		LastSuccessAt: opt(st.LastSuccessAt), LastErrorAt: opt(st.LastErrorAt), LastError: st.LastError,
		NextAttemptAt: opt(st.NextAttemptAt), LagSeconds: st.Lag.Seconds()}
	dj.TrafficDropped = map[string]trafficDroppedJSON{}
	for typ, d := range st.TrafficDropped {
		dj.TrafficDropped[typ] = trafficDroppedJSON{Edge: d.Edge, Outbox: d.Outbox}
	}
	out.Delivery = dj
	return out
}

// ---- checks ----

// checkFormat checks a destination's format: JSON (the hosted platform's
// only one); "" is JSON.
func checkFormat(f *string) error {
	if *f == "" {
		*f = events.FormatJSON
	}
	if *f != events.FormatJSON {
		return controlplane.BadRequest(codes.EventTargetInvalid, "format must be JSON, not %q.", controlplane.Truncate(*f, 40))
	}
	return nil
}

// checkSource checks a source's type, filter (type-checked CEL) and fields
// (events.CheckSource, shared with the dashboard).
func checkSource(b eventSourceBody) (store.EventSource, error) {
	return events.CheckSource(b.Type, b.Filter, b.Fields)
}

func checkSources(bs []eventSourceBody) ([]store.EventSource, error) {
	out := make([]store.EventSource, 0, len(bs))
	for _, b := range bs {
		if b.SubscriptionID != "" {
			return nil, controlplane.BadRequest(codes.APIUnknownParam, "A source in sources takes type, filter and fields only.")
		}
		src, err := checkSource(b)
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, nil
}

// ---- destinations ----

func (s *eventAPI) createDestination(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body eventDestinationCreateBody
	if _, err := s.beginWrite(w, r, "", c.RequireWrite, &body); err != nil {
		return err
	}
	if err := checkFormat(&body.Format); err != nil {
		return err
	}
	if _, err := events.ParseTarget(body.Target, s.cfg.EventTargets); err != nil {
		return err
	}
	d, err := s.store.CreateEventDestination(r.Context(), c.Actor, c.AccountID(), store.EventDestinationCreate{
		Description: body.Description, Metadata: body.Metadata, Format: body.Format, Target: body.Target})
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.destinationJSON(r, d))
	return nil
}

func (s *eventAPI) getDestination(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixEventDest, "event destination", s.store.GetEventDestination, s.destinationJSON)(w, r, c)
}

func (s *eventAPI) listDestinations(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "event_destinations", ids.PrefixEventDest, s.store.ListEventDestinations, s.destinationJSON,
		func(v *store.EventDestination) string { return v.ID })(w, r, c)
}

func (s *eventAPI) updateDestination(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body eventDestinationUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixEventDest, c.RequireWrite, &body)
	if err != nil {
		return err
	}
	if body.Format != nil {
		if err := checkFormat(body.Format); err != nil {
			return err
		}
	}
	if body.Target != nil {
		if _, err := events.ParseTarget(body.Target, s.cfg.EventTargets); err != nil {
			return err
		}
	}
	d, err := s.store.UpdateEventDestination(r.Context(), c.Actor, c.AccountID(), id, store.EventDestinationUpdate{
		Description: body.Description, Metadata: body.Metadata, Format: body.Format, Target: body.Target})
	if err != nil {
		return controlplane.NotFound(err, "event destination", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.destinationJSON(r, d))
	return nil
}

// testDestination is POST /event_destinations/{id}/test: one synthetic
// event (test_event.v0) sent now; 200 {"delivered": true, "event_id"}, or
// 502 with codes.EventTestFailed and the reason.
func (s *eventAPI) testDestination(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, err := objectPathID(r, ids.PrefixEventDest)
	if err != nil {
		return err
	}
	if err := c.RequireWrite(); err != nil {
		return err
	}
	d, err := s.store.GetEventDestination(r.Context(), c.AccountID(), id)
	if err != nil {
		return controlplane.NotFound(err, "event destination", id)
	}
	if s.cfg.EventTester == nil {
		return controlplane.Errorf(http.StatusServiceUnavailable, codes.EventTestFailed, "This control plane delivers no events.")
	}
	if t, err := events.ParseTarget(d.Target, s.cfg.EventTargets); err == nil && !t.Delivered() {
		return t.ErrNotDelivered()
	}
	evID, err := s.cfg.EventTester.SendTest(r.Context(), d)
	if err != nil {
		return &controlplane.Error{Status: http.StatusBadGateway, Code: codes.EventTestFailed,
			Msg: "The test event was not delivered: " + controlplane.Truncate(err.Error(), 500), Cause: err}
	}
	controlplane.WriteJSON(w, http.StatusOK, map[string]any{"delivered": true, "event_id": evID})
	return nil
}

// ---- subscriptions ----

func (s *eventAPI) createSubscription(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body eventSubscriptionCreateBody
	if _, err := s.beginWrite(w, r, "", c.RequireWrite, &body); err != nil {
		return err
	}
	srcs, err := checkSources(body.Sources)
	if err != nil {
		return err
	}
	x, err := s.store.CreateEventSubscription(r.Context(), c.Actor, c.AccountID(), store.EventSubscriptionCreate{
		Description: body.Description, Metadata: body.Metadata, Sources: srcs, DestinationIDs: body.DestinationIDs})
	if err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.subscriptionJSON(r, x))
	return nil
}

func (s *eventAPI) getSubscription(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return getOne(ids.PrefixEventSub, "event subscription", s.store.GetEventSubscription, s.subscriptionJSON)(w, r, c)
}

func (s *eventAPI) listSubscriptions(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	return listPage(s.Server, "event_subscriptions", ids.PrefixEventSub, s.store.ListEventSubscriptions, s.subscriptionJSON,
		func(v *store.EventSubscription) string { return v.ID })(w, r, c)
}

func (s *eventAPI) updateSubscription(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body eventSubscriptionUpdateBody
	id, err := s.beginWrite(w, r, ids.PrefixEventSub, c.RequireWrite, &body)
	if err != nil {
		return err
	}
	in := store.EventSubscriptionUpdate{Description: body.Description, Metadata: body.Metadata, DestinationIDs: body.DestinationIDs}
	if body.Sources != nil {
		srcs, err := checkSources(*body.Sources)
		if err != nil {
			return err
		}
		in.Sources = &srcs
	}
	x, err := s.store.UpdateEventSubscription(r.Context(), c.Actor, c.AccountID(), id, in)
	if err != nil {
		return controlplane.NotFound(err, "event subscription", id)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.subscriptionJSON(r, x))
	return nil
}

// ---- sources ----

// sourcePath returns the subscription ID and, when the path has one, the
// source type of a source request.
func sourcePath(r *http.Request) (string, string, error) {
	id, err := pathID(r, ids.PrefixEventSub)
	if err != nil {
		return "", "", err
	}
	typ := r.PathValue("type")
	if typ != "" {
		if err := events.CheckType(typ); err != nil {
			return "", "", err
		}
	}
	return id, typ, nil
}

func (s *eventAPI) listSources(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, _, err := sourcePath(r)
	if err != nil {
		return err
	}
	if err := noBody(r); err != nil {
		return err
	}
	x, err := s.store.GetEventSubscription(r.Context(), c.AccountID(), id)
	if err != nil {
		return controlplane.NotFound(err, "event subscription", id)
	}
	out := make([]eventSourceJSON, 0, len(x.Sources))
	for _, src := range x.Sources {
		out = append(out, s.sourceJSON(r, id, src))
	}
	controlplane.WriteJSON(w, http.StatusOK, map[string]any{"sources": out, "uri": s.subscriptionURI(r, id) + "/sources"})
	return nil
}

func (s *eventAPI) createSource(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body eventSourceBody
	id, err := s.beginWrite(w, r, ids.PrefixEventSub, c.RequireWrite, &body)
	if err != nil {
		return err
	}
	if body.SubscriptionID != "" && body.SubscriptionID != id {
		return controlplane.BadRequest(codes.APIInvalidParam, "subscription_id in the body must be the path's, %s.", id)
	}
	src, err := checkSource(body)
	if err != nil {
		return err
	}
	if _, err := s.store.AddEventSource(r.Context(), c.Actor, c.AccountID(), id, src); err != nil {
		return controlplane.NotFound(err, "event subscription", id)
	}
	controlplane.WriteJSON(w, http.StatusCreated, s.sourceJSON(r, id, src))
	return nil
}

func (s *eventAPI) getSource(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, typ, err := sourcePath(r)
	if err != nil {
		return err
	}
	if err := noBody(r); err != nil {
		return err
	}
	src, err := s.store.GetEventSource(r.Context(), c.AccountID(), id, typ)
	if err != nil {
		return controlplane.NotFound(err, "event source", id+"/sources/"+typ)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.sourceJSON(r, id, *src))
	return nil
}

func (s *eventAPI) updateSource(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	var body eventSourceBody
	id, err := s.beginWrite(w, r, ids.PrefixEventSub, c.RequireWrite, &body)
	if err != nil {
		return err
	}
	_, typ, err := sourcePath(r)
	if err != nil {
		return err
	}
	if (body.SubscriptionID != "" && body.SubscriptionID != id) || (body.Type != "" && body.Type != typ) {
		return controlplane.BadRequest(codes.APIInvalidParam, "subscription_id and type in the body must be the path's, %s and %s.", id, typ)
	}
	body.Type = typ
	if _, err := checkSource(body); err != nil {
		return err
	}
	src, err := s.store.UpdateEventSource(r.Context(), c.Actor, c.AccountID(), id, typ, store.EventSourceUpdate{Filter: body.Filter, Fields: body.Fields})
	if err != nil {
		return controlplane.NotFound(err, "event source", id+"/sources/"+typ)
	}
	controlplane.WriteJSON(w, http.StatusOK, s.sourceJSON(r, id, *src))
	return nil
}

func (s *eventAPI) deleteSource(w http.ResponseWriter, r *http.Request, c *controlplane.Caller) error {
	id, typ, err := sourcePath(r)
	if err != nil {
		return err
	}
	if err := noBody(r); err != nil {
		return err
	}
	if err := c.RequireWrite(); err != nil {
		return err
	}
	if err := s.store.DeleteEventSource(r.Context(), c.Actor, c.AccountID(), id, typ); err != nil {
		return controlplane.NotFound(err, "event source", id+"/sources/"+typ)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listTypes is GET /event_types: every event type a source may select.
func (s *eventAPI) listTypes(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	if err := noBody(r); err != nil {
		return err
	}
	controlplane.WriteJSON(w, http.StatusOK, map[string]any{"event_types": events.Types(), "uri": s.baseURL(r) + "/event_types", "next_page_uri": nil})
	return nil
}
