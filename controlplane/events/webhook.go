package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// webhookSink POSTs each event to a URL, signed per the Standard Webhooks
// specification (standardwebhooks.com): headers webhook-id (the event ID,
// the same on every retry), webhook-timestamp (Unix seconds) and
// webhook-signature ("v1,<base64 HMAC-SHA256>" per secret, space
// separated) over "<id>.<timestamp>.<body>". Any 2xx acknowledges.
type webhookSink struct {
	url    string
	keys   [][]byte
	client *http.Client
	now    func() time.Time
}

func newWebhookSink(t *WebhookTarget, o sinkOptions) (*webhookSink, error) {
	s := &webhookSink{url: t.URL, client: webhookClient(o), now: time.Now}
	for _, sec := range t.Secrets {
		k, err := webhookKey(sec)
		if err != nil {
			return nil, fmt.Errorf("webhook secret: %w", err)
		}
		s.keys = append(s.keys, k)
	}
	return s, nil
}

// WebhookSignature returns the webhook-signature header value for a
// message: "v1,<base64>" per key, space separated, over
// "<id>.<timestamp>.<body>" (Standard Webhooks).
func WebhookSignature(keys [][]byte, id string, timestamp int64, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(strconv.FormatInt(timestamp, 10)))
		m.Write([]byte{'.'})
		m.Write(body)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	}
	return strings.Join(sigs, " ")
}

// Send implements sink: one request per event, in order.
func (s *webhookSink) Send(ctx context.Context, batch []outgoing) (int, error) {
	for i, ev := range batch {
		if err := s.post(ctx, ev); err != nil {
			return i, err
		}
	}
	return len(batch), nil
}

func (s *webhookSink) post(ctx context.Context, ev outgoing) error {
	ts := s.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(ev.Body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tollgate-Events/1")
	req.Header.Set("webhook-id", ev.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", WebhookSignature(s.keys, ev.ID, ts, ev.Body))
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook POST to %s: %w", hostOf(s.url), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", hostOf(s.url), resp.Status)
	}
	return nil
}

// Close implements sink.
func (s *webhookSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
