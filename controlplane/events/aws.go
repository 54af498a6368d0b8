package events

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// awsRetryAttempts is how many times an AWS sink sends the records of one
// call that the service reported as failed (throttled, internal error)
// before it gives the batch back to the Deliverer, which backs off and
// sends the rest again later.
const awsRetryAttempts = 5

// awsRetryBase is the first wait before such a resend; it doubles.
var awsRetryBase = 100 * time.Millisecond

// awsConfig returns the SDK configuration of an AWS target: the ARN's
// region, credentials from the target's auth (static keys, or a role
// assumed with STS AssumeRole over the control plane's default
// credentials), the HTTP client of the sinks, and the SDK's own retries of
// whole calls (throttling, 5xx) left on.
func awsConfig(ctx context.Context, a *AWSTarget, region string, o sinkOptions) (aws.Config, error) {
	// The SDK's buildable client (it adds its own CA-bundle settings to
	// it); TLS verified against the system roots or o.rootCAs.
	hc := awshttp.NewBuildableClient().WithTimeout(o.timeout).WithTransportOptions(func(tr *http.Transport) {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.MinVersion = tls.VersionTLS12
		if o.rootCAs != nil {
			tr.TLSClientConfig.RootCAs = o.rootCAs
		}
		tr.MaxIdleConnsPerHost = 2
		tr.Proxy = nil // the egress rule judges the address actually dialled
	}).WithDialerOptions(func(d *net.Dialer) { d.ControlContext = o.egress.control })
	// The default chain (the control plane's own credentials, for
	// auth.role) keeps the SDK's own HTTP client: it may need the instance
	// metadata service, a link-local address no API user may reach. The
	// clients of the target's endpoints (the service, STS) get hc.
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(region),
	}
	if a.Auth.Creds != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			a.Auth.Creds.AccessKeyID, a.Auth.Creds.SecretAccessKey, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS configuration: %w", err)
	}
	cfg.HTTPClient = hc
	if a.Auth.Role != nil {
		stsClient := sts.NewFromConfig(cfg, func(so *sts.Options) {
			if a.STSEndpoint != "" {
				so.BaseEndpoint = aws.String(a.STSEndpoint)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, a.Auth.Role.RoleARN,
			func(ro *stscreds.AssumeRoleOptions) { ro.RoleSessionName = "tollgate-events" }))
	}
	return cfg, nil
}

// awsLimits are a batch API's limits: most records per call, most bytes
// per record and per call. size returns a record's size as the service
// counts it.
type awsLimits struct {
	maxRecords, maxRecordBytes, maxCallBytes int
}

// awsChunk returns the end of the longest run of batch[start:] that one
// call may carry: at most l.maxRecords records and l.maxCallBytes bytes,
// where fits(i, end) may end the run early (CloudWatch's 24 h span). A
// record larger than l.maxRecordBytes is never in a run; the caller skips
// it (see tooLarge).
func awsChunk(n, start int, size func(int) int, l awsLimits, fits func(first, i int) bool) int {
	total, end := 0, start
	for end < n && end-start < l.maxRecords {
		sz := size(end)
		if sz > l.maxRecordBytes || total+sz > l.maxCallBytes || fits != nil && !fits(start, end) {
			break
		}
		total += sz
		end++
	}
	return end
}

// awsSleep waits d or until ctx ends.
func awsSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// awsSend sends batch in calls within l, each call's records that failed
// resent (only those) up to awsRetryAttempts times. put sends the records
// batch[idx...] in one call and returns the positions in idx of those that
// failed (the service's per-record errors), with the last such error's
// text. A record over l.maxRecordBytes cannot be sent: skip is told and it
// counts as done. awsSend returns how many records from the start are
// delivered; with an error when that is fewer than all.
func awsSend(ctx context.Context, batch []outgoing, size func(int) int, l awsLimits, fits func(first, i int) bool,
	put func(ctx context.Context, idx []int) (failed []int, why string, err error), skip func(outgoing)) (int, error) {
	for start := 0; start < len(batch); {
		if size(start) > l.maxRecordBytes {
			skip(batch[start])
			start++
			continue
		}
		end := awsChunk(len(batch), start, size, l, fits)
		pending := make([]int, 0, end-start)
		for i := start; i < end; i++ {
			pending = append(pending, i)
		}
		for attempt := 0; ; attempt++ {
			failed, why, err := put(ctx, pending)
			if err != nil {
				return start, err
			}
			if len(failed) == 0 {
				break
			}
			if attempt+1 >= awsRetryAttempts {
				return start, fmt.Errorf("%d of %d records still failing after %d attempts: %s", len(failed), end-start, awsRetryAttempts, why)
			}
			next := make([]int, len(failed))
			for j, f := range failed {
				next[j] = pending[f]
			}
			pending = next
			if err := awsSleep(ctx, awsRetryBase<<attempt); err != nil {
				return start, err
			}
		}
		start = end
	}
	return len(batch), nil
}
