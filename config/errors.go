package config

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/codes"
)

// Every problem this package finds in a value is a *codes.Error with
// codes.ConfigInvalid (TG_9002), except an unreadable or empty root CA file
// (codes.CAUnreadable, TG_9003). Messages say what to write instead; a
// missing file is reported as an error matching fs.ErrNotExist.

// invalid returns a *codes.Error with codes.ConfigInvalid: a flag, a
// config file value or a programmatic setting is invalid.
func invalid(format string, args ...any) *codes.Error {
	return codes.NewError(codes.ConfigInvalid, format, args...)
}

// CommandLineEndpoint is the name of the one endpoint that `tollgate http`,
// `tcp` and `tls` define (the hosted platform's agent uses the same name).
// Errors about it do not repeat its name.
const CommandLineEndpoint = "command_line"

// endpointError returns an invalid-value error about the named endpoint.
func endpointError(name, format string, args ...any) *codes.Error {
	e := invalid(format, args...)
	if name != CommandLineEndpoint && name != "" {
		e.Message = "Endpoint " + strconv.Quote(name) + ": " + e.Message
	} else if e.Message != "" {
		e.Message = strings.ToUpper(e.Message[:1]) + e.Message[1:]
	}
	return e
}

// wrapEndpointError prefixes the message of a *codes.Error with the
// endpoint name.
func wrapEndpointError(name string, err error) error {
	var ce *codes.Error
	if name == CommandLineEndpoint || name == "" || !errors.As(err, &ce) {
		return err
	}
	c := *ce
	c.Message = "Endpoint " + strconv.Quote(name) + ": " + c.Message
	return &c
}

// errString is a constant-text error for validation details.
type errString string

func (e errString) Error() string { return string(e) }

// unwrapPathError returns the bare cause of an *os.PathError, so messages
// do not repeat the path.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
