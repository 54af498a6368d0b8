package tunnel

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/quic-go/quic-go"
)

// QUICResetKeyFile is the name of the file, in QUICListenerConfig.KeyDir,
// that holds the QUIC listener's stateless-reset key: 32 bytes from
// crypto/rand, mode 0600.
const QUICResetKeyFile = "quic_stateless_reset_key"

// QUICListenerConfig configures ListenQUIC. The zero value is valid.
type QUICListenerConfig struct {
	// KeyDir is the directory (an edge's data dir) that keeps the
	// listener's stateless-reset key in QUICResetKeyFile: created once,
	// reused after a restart. A restarted edge with the same key answers
	// a packet of a connection its predecessor held with a stateless
	// reset (RFC 9000 §10.3), so the agent learns at its next packet that
	// the connection is gone and reconnects, instead of waiting for its
	// heartbeat timeout (interval + tolerance, 25 s by default).
	//
	// "" generates a key per process: a restarted process cannot reset
	// its predecessor's connections, and their agents wait out the
	// heartbeat timeout.
	KeyDir string
}

// loadQUICResetKey returns the stateless-reset key kept in dir, creating
// it when the file does not exist or does not hold exactly 32 bytes
// (written to a temporary file and renamed into place, mode 0600). dir
// "" returns a new random key that is not kept.
func loadQUICResetKey(dir string) (*quic.StatelessResetKey, error) {
	var key quic.StatelessResetKey
	if dir == "" {
		if _, err := rand.Read(key[:]); err != nil {
			return nil, fmt.Errorf("generating the quic stateless-reset key: %w", err)
		}
		return &key, nil
	}
	path := filepath.Join(dir, QUICResetKeyFile)
	b, err := os.ReadFile(path)
	if err == nil && len(b) == len(key) {
		copy(key[:], b)
		return &key, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the quic stateless-reset key: %w", err)
	}
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("generating the quic stateless-reset key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, QUICResetKeyFile+".*")
	if err != nil {
		return nil, fmt.Errorf("writing the quic stateless-reset key: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("writing the quic stateless-reset key: %w", err)
	}
	_, err = tmp.Write(key[:])
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return nil, fmt.Errorf("writing the quic stateless-reset key %s: %w", path, err)
	}
	return &key, nil
}
