package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwltypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"go.uber.org/zap"
)

// CloudWatch Logs PutLogEvents limits, from the API reference
// (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html):
// up to 10,000 events per call; up to 1,048,576 bytes per call, counted as
// the UTF-8 bytes of every message plus 26 bytes per event; events in
// chronological order by timestamp; one call spanning at most 24 hours;
// each event at most 256 KB (taken here as 262,144 bytes including the 26
// bytes of overhead, the stricter reading).
const (
	CloudWatchMaxEvents      = 10000
	CloudWatchMaxCallBytes   = 1048576
	CloudWatchEventOverhead  = 26
	CloudWatchMaxEventBytes  = 256 << 10
	CloudWatchMaxBatchSpanMs = int64(24 * time.Hour / time.Millisecond)
)

// cloudWatchSink puts events into a log stream of a CloudWatch Logs log
// group with PutLogEvents: one log event per event, its message the
// event's JSON (event_id lets readers drop repeats), its timestamp the
// event's event_timestamp (the send time when that is missing). The log
// stream (the target's log_stream_name, default DefaultLogStreamName) is
// created on first use. Within a call events are sorted by timestamp;
// events the service rejects as too new (rejectedLogEventsInfo
// tooNewLogEventStartIndex) are sent again, only those; events rejected as
// too old or expired can never be accepted and are skipped with a warning.
type cloudWatchSink struct {
	client        *cloudwatchlogs.Client
	group, stream string
	log           *zap.Logger
	streamReady   bool
	now           func() time.Time
}

func newCloudWatchSink(t *AWSTarget, o sinkOptions) (*cloudWatchSink, error) {
	region, name, ok := awsName(t.LogGroupARN, "logs", "log-group:")
	if !ok {
		return nil, fmt.Errorf("cloudwatch_logs log group ARN %q", t.LogGroupARN)
	}
	cfg, err := awsConfig(context.Background(), t, region, o)
	if err != nil {
		return nil, err
	}
	client := cloudwatchlogs.NewFromConfig(cfg, func(co *cloudwatchlogs.Options) {
		if t.Endpoint != "" {
			co.BaseEndpoint = aws.String(t.Endpoint)
		}
	})
	stream := t.LogStreamName
	if stream == "" {
		stream = DefaultLogStreamName
	}
	return &cloudWatchSink{client: client, group: name, stream: stream, log: o.log, now: time.Now}, nil
}

// eventMillis returns the event's event_timestamp in Unix milliseconds.
func eventMillis(body []byte, now time.Time) int64 {
	var ev struct {
		At string `json:"event_timestamp"`
	}
	if json.Unmarshal(body, &ev) == nil {
		if t, err := time.Parse(time.RFC3339Nano, ev.At); err == nil {
			return t.UnixMilli()
		}
	}
	return now.UnixMilli()
}

func (s *cloudWatchSink) ensureStream(ctx context.Context) error {
	if s.streamReady {
		return nil
	}
	_, err := s.client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(s.group), LogStreamName: aws.String(s.stream)})
	var exists *cwltypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("cloudwatch_logs CreateLogStream %s in %s: %w", s.stream, s.group, err)
	}
	s.streamReady = true
	return nil
}

// Send implements sink.
func (s *cloudWatchSink) Send(ctx context.Context, batch []outgoing) (int, error) {
	if err := s.ensureStream(ctx); err != nil {
		return 0, err
	}
	now := s.now()
	ts := make([]int64, len(batch))
	for i, ev := range batch {
		ts[i] = eventMillis(ev.Body, now)
	}
	size := func(i int) int { return len(batch[i].Body) + CloudWatchEventOverhead }
	l := awsLimits{maxRecords: CloudWatchMaxEvents, maxRecordBytes: CloudWatchMaxEventBytes, maxCallBytes: CloudWatchMaxCallBytes}
	// fits is asked about first, first+1, … in turn: it keeps the run's
	// earliest and latest timestamps.
	runFirst, lo, hi := -1, int64(0), int64(0)
	fits := func(first, i int) bool {
		if first != runFirst || i == first {
			runFirst, lo, hi = first, ts[first], ts[first]
		}
		nlo, nhi := min(lo, ts[i]), max(hi, ts[i])
		if nhi-nlo > CloudWatchMaxBatchSpanMs {
			return false
		}
		lo, hi = nlo, nhi
		return true
	}
	put := func(ctx context.Context, idx []int) ([]int, string, error) {
		// Chronological order within the call; order[j] is the position
		// in idx of the call's j-th event.
		order := make([]int, len(idx))
		for j := range order {
			order[j] = j
		}
		sort.SliceStable(order, func(a, b int) bool { return ts[idx[order[a]]] < ts[idx[order[b]]] })
		evs := make([]cwltypes.InputLogEvent, len(idx))
		for j, o := range order {
			i := idx[o]
			evs[j] = cwltypes.InputLogEvent{Message: aws.String(string(batch[i].Body)), Timestamp: aws.Int64(ts[i])}
		}
		out, err := s.client.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(s.group),
			LogStreamName: aws.String(s.stream), LogEvents: evs})
		if err != nil {
			var nf *cwltypes.ResourceNotFoundException
			if errors.As(err, &nf) {
				s.streamReady = false // made again on the next send
			}
			return nil, "", fmt.Errorf("cloudwatch_logs PutLogEvents to %s/%s: %w", s.group, s.stream, err)
		}
		r := out.RejectedLogEventsInfo
		if r == nil {
			return nil, "", nil
		}
		n := int32(len(evs))
		dropTo := int32(-1) // events [0, dropTo] are rejected for good
		for _, end := range []*int32{r.TooOldLogEventEndIndex, r.ExpiredLogEventEndIndex} {
			if end != nil && *end >= 0 {
				dropTo = max(dropTo, min(*end, n-1))
			}
		}
		for j := int32(0); j <= dropTo; j++ {
			s.log.Warn("CloudWatch Logs rejected an event as too old or expired; it is skipped",
				zap.String("event_id", batch[idx[order[j]]].ID), zap.Int64("timestamp_ms", ts[idx[order[j]]]))
		}
		var failed []int
		if r.TooNewLogEventStartIndex != nil && *r.TooNewLogEventStartIndex >= 0 {
			for j := max(*r.TooNewLogEventStartIndex, dropTo+1); j < n; j++ {
				failed = append(failed, order[j])
			}
		}
		sort.Ints(failed)
		return failed, "events rejected as more than 2 hours in the future (tooNewLogEventStartIndex)", nil
	}
	return awsSend(ctx, batch, size, l, fits, put, func(ev outgoing) {
		s.log.Warn("skipping an event larger than a CloudWatch Logs event may be", zap.String("event_id", ev.ID), zap.Int("bytes", len(ev.Body)))
	})
}

// Close implements sink.
func (s *cloudWatchSink) Close() error { return nil }
