package controlclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"

	"github.com/tollgate/tollgate/traffic"
)

// Encoding a batch as JSON (for a control plane that does not take the
// binary encoding) is the edge's cost of traffic events
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
	*jp = js // grown, for the next batch
	if err != nil {
		return nil, err
	}
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

// PostTraffic sends a batch of traffic records and returns the control
// plane's answer (POST /edge/v1/traffic; edge/trafficship): in the binary
// encoding (traffic.BinaryMediaType) once an answer has said the control
// plane decodes it, else (and for a batch the binary encoding cannot
// hold) as gzip-compressed JSON.
func (c *Client) PostTraffic(ctx context.Context, b traffic.Batch) (traffic.Answer, error) {
	var ans traffic.Answer
	var body *bytes.Buffer
	contentType, encoding := traffic.BinaryMediaType, ""
	if c.trafficBinary.Load() {
		data, err := b.AppendBinary(nil)
		if err == nil {
			body = bytes.NewBuffer(data)
		}
	}
	if body == nil {
		if err := b.DecodeRecords(); err != nil {
			return ans, fmt.Errorf("encoding traffic records: %w", err)
		}
		var err error
		if body, err = encodeTraffic(&b); err != nil {
			return ans, fmt.Errorf("encoding traffic records: %w", err)
		}
		contentType, encoding = "application/json", "gzip"
	}
	u := *c.base
	u.Path += "/edge/v1/traffic"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return ans, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ans, fmt.Errorf("sending traffic records: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if contentType == traffic.BinaryMediaType {
			// A control plane replaced by one that does not decode it:
			// the batch goes again as JSON.
			c.trafficBinary.Store(false)
		}
		return ans, fmt.Errorf("sending traffic records: %w", responseError(resp))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ans); err != nil {
		return ans, fmt.Errorf("sending traffic records: decoding the answer: %w", err)
	}
	c.trafficBinary.Store(slices.Contains(ans.Encodings, traffic.BinaryEncoding))
	return ans, nil
}
