package controlplane

import (
	"context"

	"github.com/tollgate/tollgate/authn"
	"github.com/tollgate/tollgate/controlplane/store"
)

// Invite creates an invitation for the caller's account, as POST
// /invitations and the dashboard's users page do: empty roles default to
// developer ro and team ro; the roles must be valid and the caller allowed
// to grant them (CheckInvite). It returns the invitation and its accept
// token, to be shown once.
func (cp *Core) Invite(ctx context.Context, c *Caller, in store.InvitationCreate) (*store.Invitation, authn.Token, error) {
	if in.Developer == "" {
		in.Developer = store.DeveloperRO
	}
	if in.Team == "" {
		in.Team = store.TeamRO
	}
	if err := store.ValidateRoles(store.Membership{Developer: in.Developer, Team: in.Team}); err != nil {
		return nil, "", err
	}
	if err := c.CheckInvite(in); err != nil {
		return nil, "", err
	}
	return cp.store.CreateInvitation(ctx, c.Actor, c.AccountID(), in)
}
