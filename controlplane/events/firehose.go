package events

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	firehosetypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"go.uber.org/zap"
)

// Firehose PutRecordBatch limits, from the API reference
// (https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html):
// each call carries up to 500 records; each record up to 1,000 KiB before
// base64 encoding; the whole call up to 4 MiB. AWS says these cannot be
// changed.
const (
	FirehoseMaxRecords     = 500
	FirehoseMaxRecordBytes = 1000 << 10
	FirehoseMaxCallBytes   = 4 << 20
)

// firehoseSink puts events into a Firehose stream with PutRecordBatch: one
// record per event, its data the event's JSON and a newline (Firehose
// concatenates records, so the newline keeps them apart at the
// destination; event_id lets readers drop repeats). A call's records that
// the service reports as failed (FailedPutCount, an ErrorCode per entry of
// RequestResponses) are sent again, only those, before the next call.
type firehoseSink struct {
	client *firehose.Client
	stream string
	log    *zap.Logger
}

func newFirehoseSink(t *AWSTarget, o sinkOptions) (*firehoseSink, error) {
	region, name, ok := awsName(t.DeliveryStreamARN, "firehose", "deliverystream/")
	if !ok {
		return nil, fmt.Errorf("firehose delivery stream ARN %q", t.DeliveryStreamARN)
	}
	cfg, err := awsConfig(context.Background(), t, region, o)
	if err != nil {
		return nil, err
	}
	client := firehose.NewFromConfig(cfg, func(fo *firehose.Options) {
		if t.Endpoint != "" {
			fo.BaseEndpoint = aws.String(t.Endpoint)
		}
	})
	return &firehoseSink{client: client, stream: name, log: o.log}, nil
}

// Send implements sink.
func (s *firehoseSink) Send(ctx context.Context, batch []outgoing) (int, error) {
	size := func(i int) int { return len(batch[i].Body) + 1 }
	l := awsLimits{maxRecords: FirehoseMaxRecords, maxRecordBytes: FirehoseMaxRecordBytes, maxCallBytes: FirehoseMaxCallBytes}
	put := func(ctx context.Context, idx []int) ([]int, string, error) {
		recs := make([]firehosetypes.Record, len(idx))
		for j, i := range idx {
			data := make([]byte, 0, len(batch[i].Body)+1)
			recs[j] = firehosetypes.Record{Data: append(append(data, batch[i].Body...), '\n')}
		}
		out, err := s.client.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String(s.stream), Records: recs})
		if err != nil {
			return nil, "", fmt.Errorf("firehose PutRecordBatch to %s: %w", s.stream, err)
		}
		if aws.ToInt32(out.FailedPutCount) == 0 {
			return nil, "", nil
		}
		if len(out.RequestResponses) != len(recs) {
			return nil, "", fmt.Errorf("firehose PutRecordBatch to %s answered %d results for %d records", s.stream, len(out.RequestResponses), len(recs))
		}
		var failed []int
		why := ""
		for j, r := range out.RequestResponses {
			if r.ErrorCode != nil {
				failed = append(failed, j)
				why = aws.ToString(r.ErrorCode) + ": " + aws.ToString(r.ErrorMessage)
			}
		}
		return failed, why, nil
	}
	return awsSend(ctx, batch, size, l, nil, put, func(ev outgoing) {
		s.log.Warn("skipping an event larger than a Firehose record may be", zap.String("event_id", ev.ID), zap.Int("bytes", len(ev.Body)))
	})
}

// Close implements sink.
func (s *firehoseSink) Close() error { return nil }
