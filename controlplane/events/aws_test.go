package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/codes"
)

// awsTestServer is a local stand-in for an AWS JSON 1.1 service (and STS
// AssumeRole): it verifies every request's SigV4 signature by signing the
// same request again with the SDK's own signer and comparing, then hands
// the operation to handle. Requests signed wrongly get a 403 and fail the
// test.
type awsTestServer struct {
	t       *testing.T
	srv     *httptest.Server
	service string // signing name: firehose, logs
	region  string

	mu       sync.Mutex
	keys     map[string]aws.Credentials // by access key ID: who may call
	badSigs  int
	assumed  []string // role ARNs assumed
	handle   func(op string, body []byte) (int, any)
	opCounts map[string]int
}

func newAWSTestServer(t *testing.T, service, region string, creds aws.Credentials) *awsTestServer {
	s := &awsTestServer{t: t, service: service, region: region, keys: map[string]aws.Credentials{creds.AccessKeyID: creds}, opCounts: map[string]int{}}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() {
		if s.badSigs > 0 {
			t.Errorf("%d requests had a bad SigV4 signature", s.badSigs)
		}
	})
	return s
}

var sigFields = strings.NewReplacer(",", " ")

// verify recomputes the request's signature with the SDK's signer.
func (s *awsTestServer) verify(r *http.Request, body []byte) (string, error) {
	auth := r.Header.Get("Authorization")
	var cred, signed string
	for _, f := range strings.Fields(sigFields.Replace(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "))) {
		if v, ok := strings.CutPrefix(f, "Credential="); ok {
			cred = v
		}
		if v, ok := strings.CutPrefix(f, "SignedHeaders="); ok {
			signed = v
		}
	}
	parts := strings.Split(cred, "/")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || len(parts) != 5 || parts[4] != "aws4_request" {
		return "", fmt.Errorf("not a SigV4 Authorization header: %q", auth)
	}
	s.mu.Lock()
	creds, ok := s.keys[parts[0]]
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("unknown access key %q", parts[0])
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return "", fmt.Errorf("X-Amz-Date: %v", err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != hash {
		return "", fmt.Errorf("X-Amz-Content-Sha256 %s is not the body's %s", h, hash)
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	again.ContentLength = int64(len(body))
	for _, h := range strings.Split(signed, ";") {
		if h == "host" || h == "content-length" {
			continue
		}
		again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	again.Header.Del("Authorization")
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hash, parts[3], parts[2], at); err != nil {
		return "", err
	}
	if got := again.Header.Get("Authorization"); got != auth {
		return "", fmt.Errorf("signature mismatch:\n got  %s\n want %s", auth, got)
	}
	if parts[2] != s.region {
		return "", fmt.Errorf("signed for region %s, want %s", parts[2], s.region)
	}
	return parts[3], nil
}

func (s *awsTestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	service, err := s.verify(r, body)
	if err != nil {
		s.mu.Lock()
		s.badSigs++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(403)
		fmt.Fprintf(w, `{"__type":"InvalidSignatureException","message":%q}`, err.Error())
		return
	}
	if service == "sts" {
		s.assumeRole(w, r, body)
		return
	}
	if service != s.service {
		s.t.Errorf("signed for service %s, want %s", service, s.service)
	}
	op := r.Header.Get("X-Amz-Target")
	if i := strings.IndexByte(op, '.'); i >= 0 {
		op = op[i+1:]
	}
	s.mu.Lock()
	s.opCounts[op]++
	h := s.handle
	s.mu.Unlock()
	status, out := h(op, body)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(out)
}

// assumeRole answers STS AssumeRole (query protocol) with fresh temporary
// credentials that the server then accepts.
func (s *awsTestServer) assumeRole(w http.ResponseWriter, r *http.Request, body []byte) {
	q, _ := url.ParseQuery(string(body))
	if q.Get("Action") != "AssumeRole" {
		w.WriteHeader(400)
		return
	}
	s.mu.Lock()
	n := len(s.assumed)
	s.assumed = append(s.assumed, q.Get("RoleArn"))
	tmp := aws.Credentials{AccessKeyID: fmt.Sprintf("ASIATEST%08d", n), SecretAccessKey: fmt.Sprintf("tmp-secret-%d", n), SessionToken: fmt.Sprintf("token-%d", n)}
	s.keys[tmp.AccessKeyID] = tmp
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><Arn>%s/tollgate-events</Arn><AssumedRoleId>AROATEST:tollgate-events</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>r-%d</RequestId></ResponseMetadata></AssumeRoleResponse>`,
		tmp.AccessKeyID, tmp.SecretAccessKey, tmp.SessionToken, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), q.Get("RoleArn"), n)
}

// awsErr is an AWS JSON 1.1 error body.
func awsErr(typ, msg string) map[string]any { return map[string]any{"__type": typ, "message": msg} }

// isolateAWSEnv keeps the SDK's default chain away from this machine's
// AWS settings: the base credentials are base.
func isolateAWSEnv(t *testing.T, base aws.Credentials) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", base.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", base.SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
}

// testEvents returns n events whose bodies carry their IDs and
// timestamps (at(i)), padded to about pad bytes.
func testEvents(n, pad int, at func(i int) time.Time) []outgoing {
	out := make([]outgoing, n)
	for i := range out {
		id := fmt.Sprintf("ev_%06d", i)
		body, _ := json.Marshal(map[string]any{"event_id": id, "event_type": "api_key_created.v0",
			"event_timestamp": at(i).UTC().Format(time.RFC3339Nano), "pad": strings.Repeat("x", pad)})
		out[i] = outgoing{ID: id, Type: "api_key_created.v0", Body: body}
	}
	return out
}

// testSink parses the destination target {kind: config} (http:// endpoints
// allowed) and opens its sink, closed at the end of the test.
func testSink(t *testing.T, kind string, config map[string]any) sink {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{kind: config})
	tg, err := ParseTarget(raw, TargetOptions{AllowHTTP: true, Egress: Egress{Allow: LoopbackPrefixes}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSink(tg, testSinkOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testSinkOptions() sinkOptions {
	return sinkOptions{timeout: 30 * time.Second, log: zap.NewNop(), egress: Egress{Allow: LoopbackPrefixes}}
}

func init() { awsRetryBase = 5 * time.Millisecond }

func TestParseAWSTarget(t *testing.T) {
	creds := `"auth":{"creds":{"aws_access_key_id":"AKID","aws_secret_access_key":"s"}}`
	role := `"auth":{"role":{"role_arn":"arn:aws:iam::123456789012:role/x"}}`
	good := []string{
		`{"kinesis":{` + creds + `,"stream_arn":"arn:aws:kinesis:us-east-1:123456789012:stream/x","endpoint":"https://vpce-1.kinesis.us-east-1.vpce.amazonaws.com"}}`,
		`{"firehose":{` + role + `,"delivery_stream_arn":"arn:aws:firehose:eu-west-1:123456789012:deliverystream/x","sts_endpoint":"https://sts.eu-west-1.amazonaws.com"}}`,
		`{"cloudwatch_logs":{` + creds + `,"log_group_arn":"arn:aws:logs:us-west-2:123456789012:log-group:/a/b:*","log_stream_name":"edge-1"}}`,
	}
	for _, g := range good {
		if _, err := ParseTarget(json.RawMessage(g), TargetOptions{}); err != nil {
			t.Errorf("%s: %v", g, err)
		}
	}
	bad := []string{
		`{"kinesis":{` + creds + `,"stream_arn":"arn:aws:firehose:us-east-1:123456789012:deliverystream/x"}}`, // wrong service
		`{"kinesis":{` + creds + `,"stream_arn":"arn:aws:kinesis::123456789012:stream/x"}}`,                   // no region
		`{"kinesis":{` + creds + `,"stream_arn":"arn:aws:kinesis:us-east-1:123456789012:stream/x","endpoint":"http://127.0.0.1:1"}}`,
		`{"kinesis":{` + creds + `,"stream_arn":"arn:aws:kinesis:us-east-1:123456789012:stream/x","endpoint":"https://u:p@h"}}`,
		`{"kinesis":{` + creds + `,"stream_arn":"arn:aws:kinesis:us-east-1:123456789012:stream/x","sts_endpoint":"https://sts"}}`, // sts without role
		`{"kinesis":{` + creds + `,"stream_arn":"arn:aws:kinesis:us-east-1:123456789012:stream/x","log_stream_name":"s"}}`,
		`{"cloudwatch_logs":{` + creds + `,"log_group_arn":"arn:aws:logs:us-west-2:123456789012:log-group:g","log_stream_name":"a:b"}}`,
		`{"firehose":{` + creds + `,"delivery_stream_arn":"arn:aws:firehose:eu-west-1:123456789012:deliverystream/"}}`,
	}
	for _, b := range bad {
		_, err := ParseTarget(json.RawMessage(b), TargetOptions{})
		wantCode(t, err, codes.EventTargetInvalid)
	}
	// http:// endpoints only where http targets are allowed (tests).
	if _, err := ParseTarget(json.RawMessage(bad[2]), TargetOptions{AllowHTTP: true, Egress: Egress{Allow: LoopbackPrefixes}}); err != nil {
		t.Errorf("http endpoint with AllowHTTP: %v", err)
	}
}
