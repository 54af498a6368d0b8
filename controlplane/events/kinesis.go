package events

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"
)

// Kinesis Data Streams PutRecords limits, from the API reference
// (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html):
// each call carries up to 500 records; each record up to 1 MiB, counting its
// partition key and data blob; the whole call up to 5 MiB, partition keys
// included.
const (
	KinesisMaxRecords     = 500
	KinesisMaxRecordBytes = 1 << 20
	KinesisMaxCallBytes   = 5 << 20
)

// kinesisSink puts events into a Kinesis data stream with PutRecords: one
// record per event, its data the event's JSON (which carries event_id, for
// consumers to drop repeats), its partition key the event ID. A call's
// records that the service reports as failed (FailedRecordCount, an
// ErrorCode per record: ProvisionedThroughputExceededException,
// InternalFailure) are sent again, only those, before the next call.
type kinesisSink struct {
	client *kinesis.Client
	stream string
	log    *zap.Logger
}

func newKinesisSink(t *AWSTarget, o sinkOptions) (*kinesisSink, error) {
	region, name, ok := awsName(t.StreamARN, "kinesis", "stream/")
	if !ok {
		return nil, fmt.Errorf("kinesis stream ARN %q", t.StreamARN)
	}
	cfg, err := awsConfig(context.Background(), t, region, o)
	if err != nil {
		return nil, err
	}
	client := kinesis.NewFromConfig(cfg, func(ko *kinesis.Options) {
		if t.Endpoint != "" {
			ko.BaseEndpoint = aws.String(t.Endpoint)
		}
	})
	return &kinesisSink{client: client, stream: name, log: o.log}, nil
}

// Send implements sink.
func (s *kinesisSink) Send(ctx context.Context, batch []outgoing) (int, error) {
	size := func(i int) int { return len(batch[i].ID) + len(batch[i].Body) }
	l := awsLimits{maxRecords: KinesisMaxRecords, maxRecordBytes: KinesisMaxRecordBytes, maxCallBytes: KinesisMaxCallBytes}
	put := func(ctx context.Context, idx []int) ([]int, string, error) {
		recs := make([]kinesistypes.PutRecordsRequestEntry, len(idx))
		for j, i := range idx {
			recs[j] = kinesistypes.PutRecordsRequestEntry{Data: batch[i].Body, PartitionKey: aws.String(batch[i].ID)}
		}
		out, err := s.client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(s.stream), Records: recs})
		if err != nil {
			return nil, "", fmt.Errorf("kinesis PutRecords to %s: %w", s.stream, err)
		}
		if aws.ToInt32(out.FailedRecordCount) == 0 {
			return nil, "", nil
		}
		if len(out.Records) != len(recs) {
			return nil, "", fmt.Errorf("kinesis PutRecords to %s answered %d results for %d records", s.stream, len(out.Records), len(recs))
		}
		var failed []int
		why := ""
		for j, r := range out.Records {
			if r.ErrorCode != nil {
				failed = append(failed, j)
				why = aws.ToString(r.ErrorCode) + ": " + aws.ToString(r.ErrorMessage)
			}
		}
		return failed, why, nil
	}
	return awsSend(ctx, batch, size, l, nil, put, func(ev outgoing) {
		s.log.Warn("skipping an event larger than a Kinesis record may be", zap.String("event_id", ev.ID), zap.Int("bytes", len(ev.Body)))
	})
}

// Close implements sink.
func (s *kinesisSink) Close() error { return nil }
