package events

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// fileSink appends events to a file as JSON lines, one batch per write,
// and syncs it before it acknowledges. At least once: after a crash
// between the write and the acknowledgement's commit, the batch is
// written again; readers drop repeats by event_id.
type fileSink struct {
	path string
}

func newFileSink(t *FileTarget, o sinkOptions) (*fileSink, error) {
	if o.fileDir == "" {
		return nil, fmt.Errorf("no events file directory")
	}
	return &fileSink{path: filepath.Join(o.fileDir, t.Path)}, nil
}

// Send implements sink.
func (s *fileSink) Send(_ context.Context, batch []outgoing) (int, error) {
	var buf bytes.Buffer
	for _, ev := range batch {
		buf.Write(ev.Body)
		buf.WriteByte('\n')
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("opening the events file: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return 0, fmt.Errorf("writing the events file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, fmt.Errorf("syncing the events file: %w", err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("closing the events file: %w", err)
	}
	return len(batch), nil
}

// Close implements sink.
func (s *fileSink) Close() error { return nil }
