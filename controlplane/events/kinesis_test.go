package events

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/tollgate/tollgate/controlplane/store"
	"github.com/tollgate/tollgate/internal/kinesalite"
)

// Kinesis against kinesalite: events put with PutRecords (1203: three
// calls), read back with GetShardIterator/GetRecords, compared; the
// destination's test event arrives too.
func TestKinesisSinkKinesalite(t *testing.T) {
	url := kinesalite.Start(t, "../../test/kinesalite", "", "")
	creds := AWSCreds{AccessKeyID: "AKIDKINESIS", SecretAccessKey: "kinesis-secret"}
	isolateAWSEnv(t, aws.Credentials{AccessKeyID: "AKIDNOTUSED", SecretAccessKey: "x"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDREADER", SecretAccessKey: "r"}, nil
		})})
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("tg-events"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		d, err := client.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("tg-events")})
		if err == nil && d.StreamDescription.StreamStatus == kinesistypes.StreamStatusActive {
			break
		}
		if i > 100 {
			t.Fatalf("stream not active: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	target := map[string]any{"auth": AWSAuth{Creds: &creds},
		"stream_arn": "arn:aws:kinesis:us-east-1:123456789012:stream/tg-events", "endpoint": url}
	s := testSink(t, "kinesis", target)
	evs := testEvents(1203, 40, func(int) time.Time { return time.Now() })
	if n, err := s.Send(ctx, evs); err != nil || n != len(evs) {
		t.Fatalf("Send: %d of %d, %v", n, len(evs), err)
	}

	// The "send test event" path of the destination.
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "cp.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := New(Config{AllowHTTPWebhooks: true, EgressAllow: LoopbackPrefixes}, st)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"kinesis": target})
	testID, err := d.SendTest(ctx, &store.EventDestination{ID: "ed_kin", AccountID: "acct_1", Target: raw})
	if err != nil {
		t.Fatalf("SendTest: %v", err)
	}

	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("tg-events")})
	if err != nil || len(shards.Shards) != 1 {
		t.Fatalf("ListShards: %v %v", shards, err)
	}
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("tg-events"),
		ShardId: shards.Shards[0].ShardId, ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	var got []kinesistypes.Record
	iter := it.ShardIterator
	for i := 0; i < 50 && iter != nil && len(got) < len(evs)+1; i++ {
		r, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1000)})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Records...)
		iter = r.NextShardIterator
	}
	if len(got) != len(evs)+1 {
		t.Fatalf("read %d records back, want %d", len(got), len(evs)+1)
	}
	for i, ev := range evs {
		if aws.ToString(got[i].PartitionKey) != ev.ID || string(got[i].Data) != string(ev.Body) {
			t.Fatalf("record %d: key %s data %s, want %s %s", i, aws.ToString(got[i].PartitionKey), got[i].Data, ev.ID, ev.Body)
		}
	}
	var last map[string]any
	if err := json.Unmarshal(got[len(evs)].Data, &last); err != nil || last["event_id"] != testID || last["event_type"] != TestEventType {
		t.Fatalf("test event: %s (%v), want id %s", got[len(evs)].Data, err, testID)
	}
}

// kinesisFailServer stands in for Kinesis where kinesalite cannot: it
// enforces PutRecords' limits (500 records, 1 MiB per record with its
// key, 5 MiB per call) and fails, once each, the records fails picks.
func kinesisFailServer(t *testing.T, creds aws.Credentials, fails func(string) bool) (*awsTestServer, map[string]int, map[string]int, *[]int) {
	srv := newAWSTestServer(t, "kinesis", "us-east-1", creds)
	attempts, stored := map[string]int{}, map[string]int{}
	var calls []int
	srv.handle = func(op string, body []byte) (int, any) {
		var in struct {
			StreamName string
			Records    []struct {
				Data         []byte
				PartitionKey string
			}
		}
		if op != "PutRecords" || json.Unmarshal(body, &in) != nil || in.StreamName != "tg-events" {
			return 400, awsErr("ValidationException", "bad request")
		}
		total := 0
		for _, r := range in.Records {
			sz := len(r.Data) + len(r.PartitionKey)
			if sz > 1<<20 {
				t.Errorf("a record of %d bytes", sz)
			}
			total += sz
		}
		if len(in.Records) == 0 || len(in.Records) > 500 || total > 5<<20 {
			t.Errorf("a call of %d records, %d bytes", len(in.Records), total)
			return 400, awsErr("ValidationException", "limits")
		}
		calls = append(calls, len(in.Records))
		var res []map[string]any
		failed := 0
		for _, r := range in.Records {
			attempts[r.PartitionKey]++
			if attempts[r.PartitionKey] == 1 && fails(r.PartitionKey) {
				failed++
				res = append(res, map[string]any{"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"})
				continue
			}
			stored[r.PartitionKey]++
			res = append(res, map[string]any{"SequenceNumber": "1", "ShardId": "shardId-000000000000"})
		}
		return 200, map[string]any{"FailedRecordCount": failed, "Records": res}
	}
	return srv, attempts, stored, &calls
}

// Kinesis partial failures: only the records with an ErrorCode are put
// again; calls stay within 500 records and 5 MiB; a record over 1 MiB is
// skipped, not sent, and does not hold up the rest.
func TestKinesisSinkPartialFailuresAndLimits(t *testing.T) {
	creds := aws.Credentials{AccessKeyID: "AKIDKINESIS", SecretAccessKey: "kinesis-secret"}
	isolateAWSEnv(t, aws.Credentials{AccessKeyID: "AKIDNOTUSED", SecretAccessKey: "x"})
	fails := func(id string) bool { return strings.HasSuffix(id, "1") }
	srv, attempts, stored, calls := kinesisFailServer(t, creds, fails)
	s := testSink(t, "kinesis", map[string]any{"auth": AWSAuth{Creds: &AWSCreds{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey}},
		"stream_arn": "arn:aws:kinesis:us-east-1:123456789012:stream/tg-events", "endpoint": srv.srv.URL})
	now := func(int) time.Time { return time.Now() }
	small := testEvents(1001, 20, now)
	big := testEvents(8, 900<<10, now) // 5 fit in 5 MiB
	huge := testEvents(1, 1<<20, now)  // over 1 MiB: skipped
	for i := range big {
		big[i].ID = "big" + big[i].ID
	}
	huge[0].ID = "huge"
	batch := append(append(append([]outgoing{}, small...), huge...), big...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if n, err := s.Send(ctx, batch); err != nil || n != len(batch) {
		t.Fatalf("Send: %d of %d, %v", n, len(batch), err)
	}
	srv.mu.Lock()
	for _, ev := range append(small, big...) {
		want := 1
		if fails(ev.ID) {
			want = 2
		}
		if stored[ev.ID] != 1 || attempts[ev.ID] != want {
			t.Fatalf("%s stored %d times, sent %d, want once and %d", ev.ID, stored[ev.ID], attempts[ev.ID], want)
		}
	}
	if attempts["huge"] != 0 {
		t.Errorf("the 1 MiB+ record was sent")
	}
	// 1001 small: 500, 500, 1 (+ resends of the failed); big: 5 and 3.
	if (*calls)[0] != 500 || len(*calls) < 5 {
		t.Errorf("calls %v", *calls)
	}
	srv.mu.Unlock()

	// A record that keeps failing: after awsRetryAttempts the calls
	// before it count, the rest is given back.
	srv.mu.Lock()
	srv.handle = func(op string, body []byte) (int, any) {
		return 200, map[string]any{"FailedRecordCount": 1, "Records": []map[string]any{{"ErrorCode": "InternalFailure", "ErrorMessage": "boom"}}}
	}
	srv.mu.Unlock()
	n, err := s.Send(ctx, testEvents(1, 10, now))
	if err == nil || n != 0 || !strings.Contains(err.Error(), "InternalFailure") {
		t.Fatalf("a record failing for good: %d, %v", n, err)
	}
}
