// Package events delivers an account's events to the destinations its
// event subscriptions name (docs/events.md): the event types, CEL filters
// and field selection of sources, the targets of destinations (NATS
// JetStream, a Standard Webhooks HTTPS endpoint, a JSON-lines file, and
// through aws-sdk-go-v2 Kinesis, Firehose and CloudWatch Logs within each
// API's documented limits), and the Deliverer that reads the store's event
// outbox and sends.
//
// Invariants:
//   - delivery is at least once: a destination's position in the outbox
//     moves only past events it acknowledged (or that no source selected),
//     and only while this process holds the destination's lease;
//   - every event carries a stable ID (event_id; Nats-Msg-Id; webhook-id;
//     the Kinesis partition key) so
//     that a receiver can drop repeats;
//   - one destination's failures never delay another's: each is sent to
//     in its own goroutine with its own backoff;
//   - secrets of targets never leave the store but to the target itself:
//     API renderings, audit records and events leave them out.
package events
