package controlclient

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/traffic"
)

// TestPostTrafficEncodings: the edge sends gzip JSON until an answer
// lists the binary encoding, then binary; after a refusal of a binary
// batch (a control plane that no longer decodes it) it sends JSON again.
// The control plane here decodes what it is sent and compares it with the
// batch.
func TestPostTrafficEncodings(t *testing.T) {
	var mu sync.Mutex
	var got []string // Content-Type of each request
	advertise, refuse := true, false
	batch := traffic.Batch{EdgeID: "edge_1", Boot: "b", FirstSeq: 3, Records: []traffic.Record{
		{Type: traffic.HTTPRequestComplete, Start: time.Now().UTC(), AccountID: "acct_1", Path: "/x", Status: 200}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		ct := r.Header.Get("Content-Type")
		got = append(got, ct)
		var b traffic.Batch
		var err error
		switch ct {
		case traffic.BinaryMediaType:
			if refuse {
				http.Error(w, `{"error_code":"TG_2711","msg":"not JSON"}`, http.StatusBadRequest)
				return
			}
			var data []byte
			if data, err = io.ReadAll(r.Body); err == nil {
				err = b.UnmarshalBinary(data)
			}
		default:
			var zr *gzip.Reader
			if zr, err = gzip.NewReader(r.Body); err == nil {
				err = json.NewDecoder(zr).Decode(&b)
			}
		}
		if err != nil || len(b.Records) != 1 || b.Records[0].Path != "/x" || !b.Records[0].Start.Equal(batch.Records[0].Start) {
			t.Errorf("%s batch: %+v (%v)", ct, b, err)
		}
		ans := traffic.Answer{Accepted: 1}
		if advertise {
			ans.Encodings = []string{"something.v9", traffic.BinaryEncoding}
		}
		_ = json.NewEncoder(w).Encode(ans)
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{URL: srv.URL, Secret: "s", EdgeID: "edge_1"})
	if err != nil {
		t.Fatal(err)
	}
	post := func() error {
		_, err := c.PostTraffic(t.Context(), batch)
		return err
	}
	for range 2 {
		if err := post(); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	refuse = true
	mu.Unlock()
	if post() == nil {
		t.Fatal("a refused batch was not an error")
	}
	mu.Lock()
	refuse, advertise = false, false
	mu.Unlock()
	for range 2 {
		if err := post(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"application/json", traffic.BinaryMediaType, traffic.BinaryMediaType, "application/json", "application/json"}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("content types %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("content types %v, want %v", got, want)
		}
	}
}
