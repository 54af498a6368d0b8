package limits

import "errors"

// Errors of Conns.Acquire: the connection must be refused.
var (
	// ErrPerIPCap means the client address (or IPv6 prefix) already holds
	// the per-address maximum of connections.
	ErrPerIPCap = errors.New("limits: too many connections from this address")
	// ErrTotalCap means the edge holds its total maximum of public
	// connections.
	ErrTotalCap = errors.New("limits: too many connections in total")
)
