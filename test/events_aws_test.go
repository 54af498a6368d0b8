package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/tollgate/tollgate/internal/kinesalite"
)

// loopbackCert writes a self-signed certificate for 127.0.0.1 and its key
// as PEM files and returns their paths.
func loopbackCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kinesalite test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// readKinesis returns every record of the stream's only shard.
func readKinesis(t *testing.T, ctx context.Context, c *kinesis.Client, stream string) []kinesistypes.Record {
	t.Helper()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil || len(shards.Shards) != 1 {
		t.Fatalf("ListShards: %v %v", shards, err)
	}
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: shards.Shards[0].ShardId, ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	var got []kinesistypes.Record
	iter := it.ShardIterator
	for i := 0; i < 20 && iter != nil; i++ {
		r, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Records...)
		if len(r.Records) == 0 {
			break
		}
		iter = r.NextShardIterator
	}
	return got
}

// TestEventsToKinesis: audit events reach a Kinesis stream (kinesalite
// over HTTPS, named by the destination's endpoint override), each once,
// partition key = event ID; the destination's test event too.
func TestEventsToKinesis(t *testing.T) {
	certFile, keyFile := loopbackCert(t)
	url := kinesalite.Start(t, "kinesalite", certFile, keyFile)
	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pemBytes)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kc := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDREADER", SecretAccessKey: "r"}, nil
		})})
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("tg-audit"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		d, err := kc.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("tg-audit")})
		if err == nil && d.StreamDescription.StreamStatus == kinesistypes.StreamStatusActive {
			break
		}
		if i > 100 {
			t.Fatalf("stream not active: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cp, key := startEventsControl(t, filepath.Join(t.TempDir(), "cp.db"), "--events-ca-file", certFile)
	base := cp.apiURL
	dest := api(t, base, key, "POST", "/event_destinations", map[string]any{"description": "kinesis", "format": "JSON",
		"target": map[string]any{"kinesis": map[string]any{
			"auth":       map[string]any{"creds": map[string]any{"aws_access_key_id": "AKIDTOLLGATE", "aws_secret_access_key": "tollgate-secret"}},
			"stream_arn": "arn:aws:kinesis:us-east-1:123456789012:stream/tg-audit", "endpoint": url}}}, 201)
	destID := dest["id"].(string)
	if kin := dest["target"].(map[string]any)["kinesis"].(map[string]any); kin["endpoint"] != url ||
		kin["auth"].(map[string]any)["creds"].(map[string]any)["aws_secret_access_key"] != nil {
		t.Fatalf("target as shown: %v (want the endpoint, no secret)", kin)
	}
	api(t, base, key, "POST", "/event_subscriptions", map[string]any{"description": "keys",
		"sources": []any{map[string]any{"type": "api_key_created.v0"}}, "destination_ids": []string{destID}}, 201)
	var keyIDs []string
	for _, d := range []string{"k1", "k2", "k3"} {
		keyIDs = append(keyIDs, api(t, base, key, "POST", "/api_keys", map[string]any{"description": d}, 201)["id"].(string))
	}
	res := api(t, base, key, "POST", "/event_destinations/"+destID+"/test", nil, 200)

	var recs []kinesistypes.Record
	for i := 0; ; i++ {
		recs = readKinesis(t, ctx, kc, "tg-audit")
		if len(recs) >= 4 {
			break
		}
		if i > 300 {
			t.Fatalf("the stream has %d records, want 4", len(recs))
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := map[string]bool{}
	var objs []string
	testSeen := false
	for _, r := range recs {
		var ev map[string]any
		if err := json.Unmarshal(r.Data, &ev); err != nil {
			t.Fatalf("record %s: %v", r.Data, err)
		}
		id, _ := ev["event_id"].(string)
		if id == "" || aws.ToString(r.PartitionKey) != id || seen[id] {
			t.Fatalf("record %s: partition key %s, seen before %v", r.Data, aws.ToString(r.PartitionKey), seen[id])
		}
		seen[id] = true
		switch ev["event_type"] {
		case "api_key_created.v0":
			objs = append(objs, ev["object"].(map[string]any)["id"].(string))
		case "test_event.v0":
			testSeen = id == res["event_id"]
		}
	}
	if strings.Join(objs, " ") != strings.Join(keyIDs, " ") || !testSeen || len(recs) != 4 {
		t.Fatalf("api key events for %v, want %v; test event seen %v; %d records", objs, keyIDs, testSeen, len(recs))
	}
	for i := 0; ; i++ {
		got := api(t, base, key, "GET", "/event_destinations/"+destID, nil, 200)
		del := got["tollgate_delivery"].(map[string]any)
		if del["delivered"].(float64) == 3 && del["pending"].(float64) == 0 && (del["last_error"] == nil || del["last_error"] == "") {
			break
		}
		if i > 100 {
			t.Fatalf("delivery status %v", del)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
