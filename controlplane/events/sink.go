package events

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// outgoing is one event ready to send: its stable ID, type and JSON body.
type outgoing struct {
	ID   string
	Type string
	Body []byte
}

// sink sends events to one target. Send delivers batch in order and
// returns how many, from the start, the target acknowledged; with an error
// when that is fewer than all. A sink is used by one goroutine at a time.
type sink interface {
	Send(ctx context.Context, batch []outgoing) (int, error)
	Close() error
}

// sinkOptions are what sinks need from the Deliverer's Config.
type sinkOptions struct {
	fileDir string
	rootCAs *x509.CertPool
	timeout time.Duration
	// log receives the records an AWS sink skips (too large to send).
	log *zap.Logger
	// egress refuses connections to forbidden addresses (egress.go).
	egress Egress
}

// newSink returns the sink of a target this version delivers to.
func newSink(t *Target, o sinkOptions) (sink, error) {
	switch {
	case t.NATS != nil:
		return newNATSSink(t.NATS, o)
	case t.Webhook != nil:
		return newWebhookSink(t.Webhook, o)
	case t.File != nil:
		return newFileSink(t.File, o)
	case t.Kinesis != nil:
		return newKinesisSink(t.Kinesis, o)
	case t.Firehose != nil:
		return newFirehoseSink(t.Firehose, o)
	case t.CloudwatchLogs != nil:
		return newCloudWatchSink(t.CloudwatchLogs, o)
	}
	return nil, t.ErrNotDelivered()
}

// webhookClient is the HTTP client of webhook sinks: TLS verified against
// the system roots (or rootCAs), no redirects followed, bounded time,
// every connection direct (no proxy from the environment: the egress rule
// judges the address actually dialled) and checked by o.egress.
func webhookClient(o sinkOptions) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.rootCAs}
	tr.MaxIdleConnsPerHost = 2
	tr.Proxy = nil
	tr.DialContext = o.egress.dialer(o.timeout).DialContext
	return &http.Client{
		Transport: tr,
		Timeout:   o.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
