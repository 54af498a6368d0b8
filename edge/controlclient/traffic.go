package controlclient

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/tollgate/tollgate/traffic"
)

// PostTraffic sends a batch of traffic records, gzip-compressed, and
// returns the control plane's answer (POST /edge/v1/traffic; edge/trafficship).
func (c *Client) PostTraffic(ctx context.Context, b traffic.Batch) (traffic.Answer, error) {
	var ans traffic.Answer
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(&b); err != nil {
		return ans, err
	}
	if err := zw.Close(); err != nil {
		return ans, err
	}
	u := *c.base
	u.Path += "/edge/v1/traffic"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), &buf)
	if err != nil {
		return ans, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := c.http.Do(req)
	if err != nil {
		return ans, fmt.Errorf("sending traffic records: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ans, fmt.Errorf("sending traffic records: %w", responseError(resp))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ans); err != nil {
		return ans, fmt.Errorf("sending traffic records: decoding the answer: %w", err)
	}
	return ans, nil
}
