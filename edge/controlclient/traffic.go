package controlclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/klauspost/compress/gzip"

	"github.com/tollgate/tollgate/traffic"
)

// Encoding a batch is the edge's cost of traffic events
// (BenchmarkTrafficEvents/split): Batch.AppendJSON instead of reflection,
// and klauspost/compress's gzip at its fastest level (about a fifth of
// compress/gzip's default CPU for a tenth more bytes on records), with
// the JSON buffer and the compressor's state reused.
var (
	trafficJSONPool = sync.Pool{New: func() any { return new([]byte) }}
	trafficGzipPool = sync.Pool{New: func() any {
		zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
		return zw
	}}
)

// encodeTraffic returns b as gzip-compressed JSON.
func encodeTraffic(b *traffic.Batch) (*bytes.Buffer, error) {
	jp := trafficJSONPool.Get().(*[]byte)
	defer trafficJSONPool.Put(jp)
	js, err := b.AppendJSON((*jp)[:0])
	*jp = js
	if err != nil {
		return nil, err
	}
	js = append(js, '\n')
	*jp = js
	buf := bytes.NewBuffer(make([]byte, 0, len(js)/8+512))
	zw := trafficGzipPool.Get().(*gzip.Writer)
	defer trafficGzipPool.Put(zw)
	zw.Reset(buf)
	if _, err := zw.Write(js); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf, nil
}

// PostTraffic sends a batch of traffic records, gzip-compressed, and
// returns the control plane's answer (POST /edge/v1/traffic; edge/trafficship).
func (c *Client) PostTraffic(ctx context.Context, b traffic.Batch) (traffic.Answer, error) {
	var ans traffic.Answer
	buf, err := encodeTraffic(&b)
	if err != nil {
		return ans, fmt.Errorf("encoding traffic records: %w", err)
	}
	u := *c.base
	u.Path += "/edge/v1/traffic"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), buf)
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
