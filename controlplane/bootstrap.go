package controlplane

import (
	"context"
	"fmt"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/controlplane/store"
)

// Names of what Bootstrap creates.
const (
	DevAccountName = "dev"
	DevAdminEmail  = "admin@tollgate.localhost"
	devAdminName   = "Admin"
	devDescription = "created by tollgated dev"
)

// DevCredentials are what Bootstrap created (or found). APIKey and Authtoken
// are set only by the call that created them: store them then (dev.json),
// for they cannot be shown again.
type DevCredentials struct {
	AccountID   string
	UserID      string
	APIKeyID    string // "" if that key was deleted since
	AuthtokenID string // "" if that authtoken was deleted since
	APIKey      authn.Token
	Authtoken   authn.Token
}

// Bootstrap prepares a store for `tollgated dev`: the first call creates
// account "dev", its admin user admin@tollgate.localhost, and an API key and
// an authtoken owned by that user, all in one transaction, and returns the
// tokens with created=true. Later calls (from any process) change nothing
// and return the IDs with created=false and no tokens.
func Bootstrap(ctx context.Context, st *store.Store) (creds *DevCredentials, created bool, err error) {
	res, created, err := st.Bootstrap(ctx, store.BootstrapSpec{
		AccountName: DevAccountName,
		Email:       DevAdminEmail,
		UserName:    devAdminName,
		Description: devDescription,
	})
	if err != nil {
		return nil, false, fmt.Errorf("dev bootstrap: %w", err)
	}
	return &DevCredentials{
		AccountID:   res.AccountID,
		UserID:      res.UserID,
		APIKeyID:    res.APIKeyID,
		AuthtokenID: res.AuthtokenID,
		APIKey:      res.APIKey,
		Authtoken:   res.Authtoken,
	}, created, nil
}

// Bootstrap is Bootstrap(ctx, cp.Store()).
func (cp *Core) Bootstrap(ctx context.Context) (*DevCredentials, bool, error) {
	return Bootstrap(ctx, cp.store)
}
