package events

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsSink publishes events to a JetStream subject: one message per event,
// its body the event's JSON, the Nats-Msg-Id header its event ID (so the
// stream's duplicate window drops a batch sent twice), and a
// Tollgate-Event-Type header. A message counts as delivered when the
// stream acknowledged it.
type natsSink struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
}

func newNATSSink(t *NATSTarget, o sinkOptions) (*natsSink, error) {
	opts := []nats.Option{nats.Name("tollgate-events"), nats.Timeout(o.timeout),
		nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false),
		// Every connection, also to the servers a cluster advertises,
		// goes through the egress rule.
		nats.SetCustomDialer(o.egress.dialer(o.timeout))}
	if o.rootCAs != nil {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.rootCAs}))
	}
	nc, err := nats.Connect(t.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", hostOf(t.URL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream on %s: %w", hostOf(t.URL), err)
	}
	return &natsSink{nc: nc, js: js, subject: t.Subject}, nil
}

// Send implements sink: every event published at once, then each
// acknowledgement awaited in order.
func (s *natsSink) Send(ctx context.Context, batch []outgoing) (int, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	var pubErr error
	for _, ev := range batch {
		msg := nats.NewMsg(s.subject)
		msg.Data = ev.Body
		msg.Header.Set("Tollgate-Event-Type", ev.Type)
		f, err := s.js.PublishMsgAsync(msg, jetstream.WithMsgID(ev.ID))
		if err != nil {
			pubErr = err
			break
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
				err = fmt.Errorf("no JetStream stream captures subject %s: %w", s.subject, err)
			}
			return i, fmt.Errorf("publishing to NATS: %w", err)
		case <-ctx.Done():
			return i, fmt.Errorf("publishing to NATS: %w", ctx.Err())
		}
	}
	if pubErr != nil {
		return len(futures), fmt.Errorf("publishing to NATS: %w", pubErr)
	}
	return len(batch), nil
}

// Close implements sink.
func (s *natsSink) Close() error {
	s.nc.Close()
	return nil
}
