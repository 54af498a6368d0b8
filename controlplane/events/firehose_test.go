package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// firehoseTestServer enforces PutRecordBatch's documented limits and fails
// the records failFirst picks the first time each is sent.
type firehoseTestServer struct {
	*awsTestServer
	mu        sync.Mutex
	attempts  map[string]int // by event_id
	stored    map[string]int // accepted copies, by event_id
	calls     []int          // records per call
	failFirst func(id string) bool
}

func newFirehoseTestServer(t *testing.T, creds aws.Credentials, failFirst func(string) bool) *firehoseTestServer {
	f := &firehoseTestServer{awsTestServer: newAWSTestServer(t, "firehose", "eu-west-1", creds),
		attempts: map[string]int{}, stored: map[string]int{}, failFirst: failFirst}
	f.handle = f.serve
	return f
}

func (f *firehoseTestServer) serve(op string, body []byte) (int, any) {
	if op != "PutRecordBatch" {
		return 400, awsErr("UnknownOperationException", op)
	}
	var in struct {
		DeliveryStreamName string
		Records            []struct{ Data []byte }
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return 400, awsErr("SerializationException", err.Error())
	}
	if in.DeliveryStreamName != "tg-events" {
		return 400, awsErr("ResourceNotFoundException", "no stream "+in.DeliveryStreamName)
	}
	total := 0
	for _, r := range in.Records {
		if len(r.Data) > FirehoseMaxRecordBytes {
			f.t.Errorf("a record of %d bytes", len(r.Data))
			return 400, awsErr("InvalidArgumentException", "record too large")
		}
		total += len(r.Data)
	}
	if len(in.Records) == 0 || len(in.Records) > 500 || total > 4<<20 {
		f.t.Errorf("a call of %d records, %d bytes", len(in.Records), total)
		return 400, awsErr("InvalidArgumentException", "batch over the limits")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, len(in.Records))
	var resp []map[string]any
	failed := 0
	for i, r := range in.Records {
		if !strings.HasSuffix(string(r.Data), "}\n") {
			f.t.Errorf("record %d does not end in a newline", i)
		}
		var ev struct {
			ID string `json:"event_id"`
		}
		_ = json.Unmarshal(r.Data, &ev)
		f.attempts[ev.ID]++
		if f.attempts[ev.ID] == 1 && f.failFirst(ev.ID) {
			failed++
			resp = append(resp, map[string]any{"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."})
			continue
		}
		f.stored[ev.ID]++
		resp = append(resp, map[string]any{"RecordId": fmt.Sprintf("rec-%d", len(f.stored))})
	}
	return 200, map[string]any{"FailedPutCount": failed, "Encrypted": false, "RequestResponses": resp}
}

func firehoseTarget(t *testing.T, endpoint string, auth AWSAuth) *Target {
	raw, _ := json.Marshal(map[string]any{"firehose": map[string]any{"auth": auth,
		"delivery_stream_arn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/tg-events", "endpoint": endpoint}})
	tg, err := ParseTarget(raw, TargetOptions{AllowHTTP: true, Egress: Egress{Allow: LoopbackPrefixes}})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// Firehose: batches within 500 records and 4 MiB, each failed record sent
// again (only those), every event stored exactly once.
func TestFirehoseSinkLimitsAndPartialFailures(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKIDFIREHOSE", SecretAccessKey: "fh-secret"}
	isolateAWSEnv(t, aws.Credentials{AccessKeyID: "AKIDNOTUSED", SecretAccessKey: "x"})
	fails := func(id string) bool { return id[len(id)-1] == '3' || id[len(id)-1] == '7' }
	srv := newFirehoseTestServer(t, creds, fails)
	s, err := newSink(firehoseTarget(t, srv.srv.URL, AWSAuth{Creds: &AWSCreds{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}}), testSinkOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	small := testEvents(1203, 50, func(int) time.Time { return time.Now() })
	big := testEvents(9, 900<<10, func(int) time.Time { return time.Now() }) // 4 fit in 4 MiB
	for i := range big {
		big[i].ID = "big_" + big[i].ID
		big[i].Body = []byte(strings.Replace(string(big[i].Body), `"ev_`, `"big_ev_`, 1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, batch := range [][]outgoing{small, big} {
		n, err := s.Send(ctx, batch)
		if err != nil || n != len(batch) {
			t.Fatalf("Send: %d of %d, %v", n, len(batch), err)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, ev := range append(small, big...) {
		if srv.stored[ev.ID] != 1 {
			t.Errorf("%s stored %d times", ev.ID, srv.stored[ev.ID])
		}
		want := 1
		if fails(ev.ID) {
			want = 2
		}
		if srv.attempts[ev.ID] != want {
			t.Errorf("%s sent %d times, want %d", ev.ID, srv.attempts[ev.ID], want)
		}
	}
	if len(srv.calls) < 3+3 || srv.calls[0] != 500 {
		t.Errorf("calls of %v records: want the 1203 small events in calls of 500 and the big ones ≤ 4 per call", srv.calls)
	}
}

// A role ARN is assumed through STS (sts_endpoint) with the control
// plane's default credentials; the temporary keys sign the puts.
func TestFirehoseSinkAssumesRole(t *testing.T) {
	base := aws.Credentials{AccessKeyID: "AKIDBASE", SecretAccessKey: "base-secret"}
	isolateAWSEnv(t, base)
	srv := newFirehoseTestServer(t, base, func(string) bool { return false })
	srv.region = "eu-west-1"
	s := testSink(t, "firehose", map[string]any{
		"auth":                AWSAuth{Role: &AWSRole{RoleARN: "arn:aws:iam::123456789012:role/tollgate-writer"}},
		"delivery_stream_arn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/tg-events",
		"endpoint":            srv.srv.URL, "sts_endpoint": srv.srv.URL})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if n, err := s.Send(ctx, testEvents(3, 10, func(int) time.Time { return time.Now() })); err != nil || n != 3 {
		t.Fatalf("Send: %d, %v", n, err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.assumed) != 1 || srv.assumed[0] != "arn:aws:iam::123456789012:role/tollgate-writer" || len(srv.stored) != 3 {
		t.Fatalf("assumed %v, stored %d", srv.assumed, len(srv.stored))
	}
}

// Wrong keys: the server refuses the signature and Send reports it.
func TestFirehoseSinkBadSignature(t *testing.T) {
	isolateAWSEnv(t, aws.Credentials{AccessKeyID: "AKIDNOTUSED", SecretAccessKey: "x"})
	srv := newFirehoseTestServer(t, aws.Credentials{AccessKeyID: "AKIDFIREHOSE", SecretAccessKey: "right"}, func(string) bool { return false })
	s, err := newSink(firehoseTarget(t, srv.srv.URL, AWSAuth{Creds: &AWSCreds{AccessKeyID: "AKIDFIREHOSE", SecretAccessKey: "wrong"}}), testSinkOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := s.Send(ctx, testEvents(2, 10, func(int) time.Time { return time.Now() }))
	if err == nil || n != 0 || !strings.Contains(err.Error(), "InvalidSignature") {
		t.Fatalf("Send with the wrong secret: %d, %v", n, err)
	}
	srv.mu.Lock()
	if srv.badSigs == 0 {
		t.Fatal("the server saw no bad signature")
	}
	srv.badSigs = 0 // expected here
	srv.mu.Unlock()
}
