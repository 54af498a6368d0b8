package events

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// cloudWatchTestServer enforces PutLogEvents' documented limits
// (count, bytes with 26 bytes per event, chronological order, 24 h span,
// event size) and rejects as too new, once, the first event tooNew picks
// in a call and everything after it.
type cloudWatchTestServer struct {
	*awsTestServer
	mu       sync.Mutex
	streams  map[string]bool
	attempts map[string]int
	stored   map[string]int
	calls    []int
	tooNew   func(id string) bool
}

func (c *cloudWatchTestServer) serve(op string, body []byte) (int, any) {
	var in struct {
		LogGroupName, LogStreamName string
		LogEvents                   []struct {
			Message   string
			Timestamp int64
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return 400, awsErr("SerializationException", err.Error())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if in.LogGroupName != "/tollgate/events" {
		return 400, awsErr("ResourceNotFoundException", "no log group "+in.LogGroupName)
	}
	switch op {
	case "CreateLogStream":
		if c.streams[in.LogStreamName] {
			return 400, awsErr("ResourceAlreadyExistsException", "exists")
		}
		c.streams[in.LogStreamName] = true
		return 200, map[string]any{}
	case "PutLogEvents":
	default:
		return 400, awsErr("UnknownOperationException", op)
	}
	if !c.streams[in.LogStreamName] {
		return 400, awsErr("ResourceNotFoundException", "no log stream "+in.LogStreamName)
	}
	n, total := len(in.LogEvents), 0
	if n == 0 || n > 10000 {
		c.t.Errorf("a call of %d events", n)
		return 400, awsErr("InvalidParameterException", "count")
	}
	for i, e := range in.LogEvents {
		total += len(e.Message) + 26
		if len(e.Message)+26 > 256<<10 {
			c.t.Errorf("an event of %d bytes", len(e.Message))
		}
		if i > 0 && e.Timestamp < in.LogEvents[i-1].Timestamp {
			c.t.Errorf("events out of chronological order at %d", i)
			return 400, awsErr("InvalidParameterException", "order")
		}
	}
	if span := in.LogEvents[n-1].Timestamp - in.LogEvents[0].Timestamp; total > 1048576 || span > 24*3600*1000 {
		c.t.Errorf("a call of %d bytes spanning %d ms", total, span)
		return 400, awsErr("InvalidParameterException", "size or span")
	}
	c.calls = append(c.calls, n)
	reject := -1
	for i, e := range in.LogEvents {
		var ev struct {
			ID string `json:"event_id"`
		}
		_ = json.Unmarshal([]byte(e.Message), &ev)
		c.attempts[ev.ID]++
		if reject < 0 && c.attempts[ev.ID] == 1 && c.tooNew(ev.ID) {
			reject = i
		}
		if reject < 0 {
			c.stored[ev.ID]++
		}
	}
	if reject >= 0 {
		return 200, map[string]any{"rejectedLogEventsInfo": map[string]any{"tooNewLogEventStartIndex": reject}}
	}
	return 200, map[string]any{}
}

func TestCloudWatchSinkLimitsOrderAndRejections(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKIDLOGS", SecretAccessKey: "logs-secret"}
	isolateAWSEnv(t, aws.Credentials{AccessKeyID: "AKIDNOTUSED", SecretAccessKey: "x"})
	c := &cloudWatchTestServer{awsTestServer: newAWSTestServer(t, "logs", "us-west-2", creds),
		streams: map[string]bool{}, attempts: map[string]int{}, stored: map[string]int{},
		tooNew: func(id string) bool { return id == "ev_000100" || id == "ev_010500" }}
	c.handle = c.serve
	s := testSink(t, "cloudwatch_logs", map[string]any{
		"auth":          AWSAuth{Creds: &AWSCreds{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}},
		"log_group_arn": "arn:aws:logs:us-west-2:123456789012:log-group:/tollgate/events:*", "endpoint": c.srv.URL})
	base := time.Now().Add(-110 * time.Hour)
	// 12,000 small events: more than one call holds. Timestamps jitter
	// back and forth (not chronological in the batch) and span 100 hours.
	many := testEvents(12000, 10, func(i int) time.Time {
		return base.Add(time.Duration(i)*30*time.Second + time.Duration(i%3)*time.Minute*-1)
	})
	// 30 events of 100 KiB: 1 MiB per call holds 10.
	big := testEvents(30, 100<<10, func(int) time.Time { return time.Now() })
	for i := range big {
		big[i].ID = "big" + big[i].ID
		var m map[string]any
		_ = json.Unmarshal(big[i].Body, &m)
		m["event_id"] = big[i].ID
		big[i].Body, _ = json.Marshal(m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, batch := range [][]outgoing{many, big} {
		if n, err := s.Send(ctx, batch); err != nil || n != len(batch) {
			t.Fatalf("Send: %d of %d, %v", n, len(batch), err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range append(many, big...) {
		if c.stored[ev.ID] != 1 {
			t.Fatalf("%s stored %d times", ev.ID, c.stored[ev.ID])
		}
	}
	// ev_000050 comes before ev_000100 in time (sent once), ev_002000
	// after it in the same call (rejected with it, sent again).
	if c.attempts["ev_000100"] != 2 || c.attempts["ev_010500"] != 2 || c.attempts["ev_000050"] != 1 || c.attempts["ev_002000"] != 2 || c.attempts["bigev_000001"] != 1 {
		t.Errorf("attempts: %d %d %d %d %d; only the rejected events and those after them in their call are resent",
			c.attempts["ev_000100"], c.attempts["ev_010500"], c.attempts["ev_000050"], c.attempts["ev_002000"], c.attempts["bigev_000001"])
	}
	if len(c.calls) < 4+3 {
		t.Errorf("calls of %v events", c.calls)
	}
	if c.opCounts["CreateLogStream"] != 1 || !c.streams[DefaultLogStreamName] {
		t.Errorf("CreateLogStream called %d times, streams %v", c.opCounts["CreateLogStream"], c.streams)
	}
}
