package agent

import (
	"errors"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/codes"
)

// ErrAlreadyRunning is returned by Run when the Agent is already running or
// has run before: an Agent runs once.
var ErrAlreadyRunning = errors.New("agent: Run called more than once")

// inputError returns a *codes.Error with codes.ConfigInvalid: a flag, a
// config file value or a programmatic Config field is invalid.
func inputError(format string, args ...any) *codes.Error {
	return codes.NewError(codes.ConfigInvalid, format, args...)
}

// IsUsageError reports whether err is a problem with the agent's input (a
// malformed URL or upstream, an unreadable CA file, a web address that
// cannot be listened on) rather than with the edge: codes TG_9001, TG_9002
// and TG_9003. The CLI exits with status 2 for these.
func IsUsageError(err error) bool {
	var ce *codes.Error
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.Code {
	case codes.ListenFailed, codes.ConfigInvalid, codes.CAUnreadable:
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

// CommandLineEndpoint is the name of the one endpoint that `tollgate http`,
// `tcp` and `tls` define (the hosted platform's agent uses the same name).
// Errors about it do not repeat its name.
const CommandLineEndpoint = "command_line"

// epError returns an input error about the named endpoint.
func epError(name, format string, args ...any) *codes.Error {
	e := inputError(format, args...)
	if name != CommandLineEndpoint && name != "" {
		e.Message = "Endpoint " + strconv.Quote(name) + ": " + e.Message
	} else if e.Message != "" {
		e.Message = strings.ToUpper(e.Message[:1]) + e.Message[1:]
	}
	return e
}

// epWrap prefixes the message of a *codes.Error with the endpoint name.
func epWrap(name string, err error) error {
	var ce *codes.Error
	if name == CommandLineEndpoint || name == "" || !errors.As(err, &ce) {
		return err
	}
	c := *ce
	c.Message = "Endpoint " + strconv.Quote(name) + ": " + c.Message
	return &c
}
