package edgeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/tollgate/tollgate/codes"
	"github.com/tollgate/tollgate/controlplane"
	"github.com/tollgate/tollgate/traffic"
)

// TrafficIngester takes an edge's traffic batch into the event outbox
// (events.Deliverer.IngestTraffic).
type TrafficIngester interface {
	IngestTraffic(ctx context.Context, b traffic.Batch) (traffic.Answer, error)
}

// Bounds of POST /edge/v1/traffic: the body as sent (gzip or not), and
// decompressed.
const (
	maxTrafficBody     = 8 << 20
	maxTrafficBodyJSON = 32 << 20
)

// trafficEncodings are the batch encodings besides JSON this control
// plane decodes, listed in every answer (traffic.Answer.Encodings).
var trafficEncodings = []string{traffic.BinaryEncoding}

func (s *Server) trafficRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /edge/v1/traffic", s.edgeOnly(s.serveTraffic))
}

// serveTraffic is POST /edge/v1/traffic: a traffic.Batch, as JSON or in
// the binary encoding (Content-Type traffic.BinaryMediaType), optionally
// with Content-Encoding: gzip, answered with the traffic.Answer. An empty
// batch asks only which accounts want traffic. Without an ingester (no
// event delivery configured) every batch is answered with no wants.
func (s *Server) serveTraffic(w http.ResponseWriter, r *http.Request, _ *controlplane.Caller) error {
	var body io.Reader = http.MaxBytesReader(w, r.Body, maxTrafficBody)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return controlplane.BadRequest(codes.EdgeBadRequest, "The traffic batch is not valid gzip: %v", err)
		}
		defer zr.Close()
		body = io.LimitReader(zr, maxTrafficBodyJSON+1)
	}
	var b traffic.Batch
	tooLarge := func(err error) error {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return controlplane.Errorf(http.StatusRequestEntityTooLarge, codes.EdgeBadRequest, "A traffic batch is at most %d bytes; send smaller batches.", maxTrafficBody)
		}
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == traffic.BinaryMediaType {
		data, err := io.ReadAll(body)
		if err != nil {
			if e := tooLarge(err); e != nil {
				return e
			}
			return controlplane.BadRequest(codes.EdgeBadRequest, "Reading the traffic batch: %v", err)
		}
		if len(data) > maxTrafficBodyJSON {
			return controlplane.Errorf(http.StatusRequestEntityTooLarge, codes.EdgeBadRequest, "A traffic batch is at most %d bytes decompressed; send smaller batches.", maxTrafficBodyJSON)
		}
		if err := b.UnmarshalBinary(data); err != nil {
			return controlplane.BadRequest(codes.EdgeBadRequest, "The traffic batch is not valid (%s): %v", traffic.BinaryMediaType, err)
		}
	} else if err := json.NewDecoder(body).Decode(&b); err != nil {
		if e := tooLarge(err); e != nil {
			return e
		}
		return controlplane.BadRequest(codes.EdgeBadRequest, "The traffic batch is not valid JSON (at most %d bytes decompressed): %v", maxTrafficBodyJSON, err)
	}
	if s.cfg.Traffic == nil {
		controlplane.WriteJSON(w, http.StatusOK, traffic.Answer{Wants: map[string][]string{}, Encodings: trafficEncodings})
		return nil
	}
	ans, err := s.cfg.Traffic.IngestTraffic(r.Context(), b)
	ans.Encodings = trafficEncodings
	var ce *codes.Error
	if errors.As(err, &ce) {
		return controlplane.BadRequest(ce.Code, "%s", ce.Message)
	}
	if err != nil {
		return storeUnavailable(s, r, err)
	}
	controlplane.WriteJSON(w, http.StatusOK, ans)
	return nil
}
