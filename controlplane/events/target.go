package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/tollgate/tollgate/codes"
)

// Formats an event destination may have. The hosted platform accepts only
// JSON.
const FormatJSON = "JSON"

// Target is where a destination sends (the API's target object): exactly
// one field is set. Kinesis, Firehose, CloudwatchLogs and Datadog are the
// hosted platform's; this version delivers to the three AWS ones
// (kinesis.go, firehose.go, cloudwatch.go) and stores Datadog without
// delivering to it (codes.EventTargetUnsupported). NATS, Webhook and File
// are Tollgate's.
type Target struct {
	Kinesis        *AWSTarget     `json:"kinesis,omitempty"`
	Firehose       *AWSTarget     `json:"firehose,omitempty"`
	CloudwatchLogs *AWSTarget     `json:"cloudwatch_logs,omitempty"`
	Datadog        *DatadogTarget `json:"datadog,omitempty"`
	NATS           *NATSTarget    `json:"nats,omitempty"`
	Webhook        *WebhookTarget `json:"webhook,omitempty"`
	File           *FileTarget    `json:"file,omitempty"`
}

// AWSTarget is the shape of the hosted platform's Kinesis, Firehose and
// CloudWatch Logs targets: auth and one ARN (stream_arn for kinesis,
// delivery_stream_arn for firehose, log_group_arn for cloudwatch_logs; the
// region is the ARN's). Endpoint, STSEndpoint and LogStreamName are
// Tollgate's additions, absent from the hosted platform's shape.
type AWSTarget struct {
	Auth              AWSAuth `json:"auth"`
	StreamARN         string  `json:"stream_arn,omitempty"`
	DeliveryStreamARN string  `json:"delivery_stream_arn,omitempty"`
	LogGroupARN       string  `json:"log_group_arn,omitempty"`
	// Endpoint (Tollgate) replaces the service's regional endpoint: an
	// https:// URL such as a VPC interface endpoint, or an emulator's
	// (http:// only where the operator allows http targets). "" is AWS's.
	Endpoint string `json:"endpoint,omitempty"`
	// STSEndpoint (Tollgate) replaces the STS endpoint used to assume
	// auth.role; same rules as Endpoint. "" is the ARN region's STS.
	STSEndpoint string `json:"sts_endpoint,omitempty"`
	// LogStreamName (Tollgate, cloudwatch_logs only) is the log stream the
	// events go to, created in the log group when missing. Default
	// DefaultLogStreamName.
	LogStreamName string `json:"log_stream_name,omitempty"`
}

// DefaultLogStreamName is the log stream of a cloudwatch_logs target that
// names none.
const DefaultLogStreamName = "tollgate-events"

// AWSAuth is a role to assume or long-term credentials. A role is assumed
// with STS AssumeRole using the control plane's own AWS credentials (the
// SDK's default chain: environment, shared config, instance or task role).
type AWSAuth struct {
	Role  *AWSRole  `json:"role,omitempty"`
	Creds *AWSCreds `json:"creds,omitempty"`
}

// AWSRole names a role ARN.
type AWSRole struct {
	RoleARN string `json:"role_arn"`
}

// AWSCreds are an access key; the secret part is never shown.
type AWSCreds struct {
	AccessKeyID     string `json:"aws_access_key_id"`
	SecretAccessKey string `json:"aws_secret_access_key,omitempty"`
}

// DatadogTarget is the hosted platform's Datadog target.
type DatadogTarget struct {
	APIKey  string `json:"api_key,omitempty"`
	DDTags  string `json:"ddtags,omitempty"`
	Service string `json:"service,omitempty"`
	DDSite  string `json:"ddsite,omitempty"`
}

// NATSTarget publishes each event to Subject on a NATS server with
// JetStream: a stream must capture the subject. URL is nats://HOST:PORT
// (or tls://). The Nats-Msg-Id header is the event ID, so the stream's
// duplicate window drops repeats.
type NATSTarget struct {
	URL     string `json:"url"`
	Subject string `json:"subject"`
}

// WebhookTarget POSTs each event to URL (https://), signed per the
// Standard Webhooks scheme with each of Secrets ("whsec_" + base64 of 24–64
// bytes; 1–3 of them, the first current, the others still valid during a
// key rotation). Secrets are never shown after they are set.
type WebhookTarget struct {
	URL     string   `json:"url"`
	Secrets []string `json:"secrets,omitempty"`
}

// FileTarget appends events as JSON lines to Path, a file name in the
// control plane's --events-file-dir.
type FileTarget struct {
	Path string `json:"path"`
}

// TargetOptions are the operator's settings that decide which targets are
// allowed.
type TargetOptions struct {
	// FileDir is the directory of file targets; "" refuses file targets.
	FileDir string
	// AllowHTTP lets webhook URLs use http:// (tests on loopback only).
	AllowHTTP bool
	// Egress is the rule for the hosts of URLs (egress.go): an IP literal
	// it forbids is refused with codes.EventEgressForbidden.
	Egress Egress
}

// ParseTarget decodes and checks a target object strictly: exactly one
// target, no unknown fields, each target's own rules. Errors are
// *codes.Error (codes.EventTargetInvalid, or codes.EventTargetUnsupported
// for a file target without FileDir).
func ParseTarget(raw json.RawMessage, o TargetOptions) (*Target, error) {
	var t Target
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, codes.NewError(codes.EventTargetInvalid, "target is not valid: %s. Give exactly one of nats, webhook, file, kinesis, firehose, cloudwatch_logs, datadog.", jsonErr(err)).WithCause(err)
	}
	n := 0
	for _, set := range []bool{t.Kinesis != nil, t.Firehose != nil, t.CloudwatchLogs != nil, t.Datadog != nil, t.NATS != nil, t.Webhook != nil, t.File != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, codes.NewError(codes.EventTargetInvalid, "target must hold exactly one of nats, webhook, file, kinesis, firehose, cloudwatch_logs, datadog; it holds %d.", n)
	}
	switch {
	case t.NATS != nil:
		return &t, t.NATS.check(o)
	case t.Webhook != nil:
		return &t, t.Webhook.check(o)
	case t.File != nil:
		return &t, t.File.check(o)
	case t.Kinesis != nil:
		return &t, t.Kinesis.check("kinesis", "stream_arn", t.Kinesis.StreamARN, o)
	case t.Firehose != nil:
		return &t, t.Firehose.check("firehose", "delivery_stream_arn", t.Firehose.DeliveryStreamARN, o)
	case t.CloudwatchLogs != nil:
		return &t, t.CloudwatchLogs.check("cloudwatch_logs", "log_group_arn", t.CloudwatchLogs.LogGroupARN, o)
	}
	return &t, nil
}

func jsonErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.TrimPrefix(s, "json: ")
}

// Kind names the target that is set: "nats", "webhook", "file",
// "kinesis", "firehose", "cloudwatch_logs" or "datadog".
func (t *Target) Kind() string {
	switch {
	case t.NATS != nil:
		return "nats"
	case t.Webhook != nil:
		return "webhook"
	case t.File != nil:
		return "file"
	case t.Kinesis != nil:
		return "kinesis"
	case t.Firehose != nil:
		return "firehose"
	case t.CloudwatchLogs != nil:
		return "cloudwatch_logs"
	}
	return "datadog"
}

// Delivered reports whether this version delivers to the target.
func (t *Target) Delivered() bool {
	return t.Datadog == nil
}

// ErrNotDelivered is the error a destination of a target this version
// does not deliver to reports.
func (t *Target) ErrNotDelivered() error {
	return codes.NewError(codes.EventTargetUnsupported,
		"This control plane stores %s targets but does not deliver to them yet; use a nats, webhook, file, kinesis, firehose or cloudwatch_logs target.", t.Kind())
}

var natsSubject = regexp.MustCompile(`^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$`)

func (n *NATSTarget) check(o TargetOptions) error {
	u, err := url.Parse(n.URL)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return codes.NewError(codes.EventTargetInvalid, "nats.url must be nats://HOST:PORT or tls://HOST:PORT, not %q.", trunc(n.URL))
	}
	if u.User != nil {
		return codes.NewError(codes.EventTargetInvalid, "nats.url may not carry credentials.")
	}
	if len(n.Subject) > 255 || !natsSubject.MatchString(n.Subject) {
		return codes.NewError(codes.EventTargetInvalid, "nats.subject must be a NATS subject without wildcards (tollgate.events), not %q.", trunc(n.Subject))
	}
	return o.Egress.checkURLHost("nats.url", u)
}

// whsecPrefix starts a Standard Webhooks secret.
const whsecPrefix = "whsec_"

// webhookKey decodes a "whsec_<base64>" secret.
func webhookKey(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, whsecPrefix)
	if !ok {
		return nil, fmt.Errorf("no %s prefix", whsecPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, err
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("%d bytes", len(key))
	}
	return key, nil
}

func (w *WebhookTarget) check(o TargetOptions) error {
	u, err := url.Parse(w.URL)
	okScheme := u != nil && (u.Scheme == "https" || u.Scheme == "http" && o.AllowHTTP)
	if err != nil || !okScheme || u.Host == "" || u.User != nil || u.Fragment != "" || len(w.URL) > 2000 {
		return codes.NewError(codes.EventTargetInvalid, "webhook.url must be an https:// URL without credentials, not %q.", trunc(w.URL))
	}
	if err := o.Egress.checkURLHost("webhook.url", u); err != nil {
		return err
	}
	if len(w.Secrets) < 1 || len(w.Secrets) > 3 {
		return codes.NewError(codes.EventTargetInvalid, "webhook.secrets must hold 1 to 3 signing secrets (whsec_ followed by base64 of 24–64 random bytes), the current one first.")
	}
	for i, s := range w.Secrets {
		if _, err := webhookKey(s); err != nil {
			return codes.NewError(codes.EventTargetInvalid, "webhook.secrets[%d] is not whsec_ followed by base64 of 24–64 bytes.", i).WithCause(err)
		}
	}
	return nil
}

var fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (f *FileTarget) check(o TargetOptions) error {
	if o.FileDir == "" {
		return codes.NewError(codes.EventTargetUnsupported, "This control plane writes no event files: its operator has not set --events-file-dir.")
	}
	if !fileName.MatchString(f.Path) || strings.Contains(f.Path, "..") {
		return codes.NewError(codes.EventTargetInvalid, "file.path must be a file name (letters, digits, . _ -) in the control plane's events directory, not %q.", trunc(f.Path))
	}
	return nil
}

var arnPattern = regexp.MustCompile(`^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$`)

// awsResource is the parts of an ARN a sink needs.
type awsResource struct {
	region, service, resource string
}

// parseARN splits arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE.
func parseARN(arn string) (awsResource, bool) {
	p := strings.SplitN(arn, ":", 6)
	if len(p) != 6 || !arnPattern.MatchString(arn) {
		return awsResource{}, false
	}
	return awsResource{region: p[3], service: p[2], resource: p[5]}, true
}

// awsName returns the name in an ARN's resource part "<prefix>NAME" (a
// log group's ARN may end in ":*").
func awsName(arn, service, prefix string) (region, name string, ok bool) {
	r, ok := parseARN(arn)
	if !ok || r.service != service || r.region == "" {
		return "", "", false
	}
	name, ok = strings.CutPrefix(r.resource, prefix)
	name = strings.TrimSuffix(name, ":*")
	if !ok || name == "" || strings.ContainsAny(name, ":*") || service != "logs" && strings.Contains(name, "/") {
		return "", "", false
	}
	return r.region, name, true
}

// awsARNShape is the service and resource prefix of each AWS target's ARN.
var awsARNShape = map[string][2]string{
	"kinesis":         {"kinesis", "stream/"},
	"firehose":        {"firehose", "deliverystream/"},
	"cloudwatch_logs": {"logs", "log-group:"},
}

var logStreamName = regexp.MustCompile(`^[^:*]{1,512}$`)

func (a *AWSTarget) check(kind, arnField, arn string, o TargetOptions) error {
	shape := awsARNShape[kind]
	if _, _, ok := awsName(arn, shape[0], shape[1]); !ok {
		return codes.NewError(codes.EventTargetInvalid, "%s.%s must be an AWS ARN of the form arn:aws:%s:REGION:ACCOUNT:%sNAME, not %q.", kind, arnField, shape[0], shape[1], trunc(arn))
	}
	n := 0
	if a.Auth.Role != nil {
		n++
		if !arnPattern.MatchString(a.Auth.Role.RoleARN) {
			return codes.NewError(codes.EventTargetInvalid, "%s.auth.role.role_arn must be an AWS ARN.", kind)
		}
	}
	if a.Auth.Creds != nil {
		n++
		if a.Auth.Creds.AccessKeyID == "" {
			return codes.NewError(codes.EventTargetInvalid, "%s.auth.creds.aws_access_key_id is required.", kind)
		}
	}
	if n != 1 {
		return codes.NewError(codes.EventTargetInvalid, "%s.auth must hold exactly one of role or creds.", kind)
	}
	for _, e := range []struct{ field, url string }{{"endpoint", a.Endpoint}, {"sts_endpoint", a.STSEndpoint}} {
		if e.url == "" {
			continue
		}
		u, err := url.Parse(e.url)
		okScheme := u != nil && (u.Scheme == "https" || u.Scheme == "http" && o.AllowHTTP)
		if err != nil || !okScheme || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(e.url) > 2000 {
			return codes.NewError(codes.EventTargetInvalid, "%s.%s must be an https:// URL without credentials (a VPC endpoint, say), not %q.", kind, e.field, trunc(e.url))
		}
		if err := o.Egress.checkURLHost(kind+"."+e.field, u); err != nil {
			return err
		}
	}
	if a.STSEndpoint != "" && a.Auth.Role == nil {
		return codes.NewError(codes.EventTargetInvalid, "%s.sts_endpoint is only for auth.role.", kind)
	}
	if a.LogStreamName != "" && (kind != "cloudwatch_logs" || !logStreamName.MatchString(a.LogStreamName)) {
		return codes.NewError(codes.EventTargetInvalid, "%s.log_stream_name must be a CloudWatch Logs stream name (1–512 characters, no : or *), on cloudwatch_logs targets only.", kind)
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// hostOf returns the host of a target URL, for logs.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	h, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		return u.Host
	}
	return h
}
