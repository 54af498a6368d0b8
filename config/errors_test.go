package config

import (
	"errors"

	"github.com/tollgate/tollgate/codes"
)

// isUsageError reports whether err is one of the input errors the agent's
// CLI exits with status 2 for (agent.IsUsageError: TG_9001, TG_9002,
// TG_9003); config cannot import agent, so its tests check the codes here.
func isUsageError(err error) bool {
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
