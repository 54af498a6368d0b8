package agent

import (
	"errors"

	"github.com/tollgate/tollgate/codes"
)

// ErrAlreadyRunning is returned by Run when the Agent is already running or
// has run before: an Agent runs once.
var ErrAlreadyRunning = errors.New("agent: Run called more than once")

// inputError returns a *codes.Error with codes.ConfigInvalid: a
// programmatic Config field is invalid (package config checks the values
// flags and the config file give).
func inputError(format string, args ...any) *codes.Error {
	return codes.NewError(codes.ConfigInvalid, format, args...)
}

// IsUsageError reports whether err is a problem with the agent's input (a
// malformed URL or upstream, an unreadable CA file, a web address that
// cannot be listened on, an edge certificate no --root-ca verifies, an
// http:// URL) rather than with the edge: codes TG_9001, TG_9002, TG_9003,
// TG_9006 and TG_9007. The CLI exits with status 2 for these.
func IsUsageError(err error) bool {
	var ce *codes.Error
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.Code {
	case codes.ListenFailed, codes.ConfigInvalid, codes.CAUnreadable, codes.EdgeCertUnverified, codes.PlainHTTPURL:
		return true
	}
	return false
}

// permanent marks an error the supervisor must not retry.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// isPermanent reports whether err was marked permanent.
func isPermanent(err error) bool {
	var p *permanent
	return errors.As(err, &p)
}
