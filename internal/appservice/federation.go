package appservice

import (
	"context"
	"encoding/json"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// What other servers ask about users and aliases that application
// services own: the federation query endpoints and invites ask the
// services about unknown ones exactly as the client API does, so that a
// bridge's puppet or room looks the same from another server as from
// this one (Synapse's federation /query/profile and /query/directory
// call the same handlers as its client API, which query the services).

// ProfileSource gives local users' profiles, M_NOT_FOUND for unknown
// users (the accounts service).
type ProfileSource interface {
	Profile(ctx context.Context, localpart string) (map[string]json.RawMessage, error)
}

// AliasSource resolves local aliases, M_NOT_FOUND for unknown ones (the
// aliases service).
type AliasSource interface {
	Resolve(ctx context.Context, alias string) (roomID, creator string, err error)
}

// FederationQueries wraps the profile and alias sources the federation
// API answers from with the services' user and alias queries.
type FederationQueries struct {
	Registry *Registry
	Client   *Client
	Profiles ProfileSource
	Aliases  AliasSource
}

// Profile answers /query/profile: an unknown user in a service's
// namespace is first asked of the service, which may register it.
func (q FederationQueries) Profile(ctx context.Context, localpart string) (map[string]json.RawMessage, error) {
	p, err := q.Profiles.Profile(ctx, localpart)
	if isNotFound(err) && q.Registry.QueryUser(ctx, q.Client, "@"+localpart+":"+q.Registry.ServerName) {
		return q.Profiles.Profile(ctx, localpart)
	}
	return p, err
}

// Resolve answers /query/directory: an unknown alias in a service's
// namespace is first asked of the service, which may create it.
func (q FederationQueries) Resolve(ctx context.Context, alias string) (string, string, error) {
	roomID, creator, err := q.Aliases.Resolve(ctx, alias)
	if isNotFound(err) && q.Registry.QueryAlias(ctx, q.Client, alias) {
		return q.Aliases.Resolve(ctx, alias)
	}
	return roomID, creator, err
}

// InviteeKnown decides an invite from another server to userID, a local
// user this server has not registered: when a service's user namespace
// holds it, the service is asked first (it may register the puppet),
// and the invite is taken either way, as Synapse takes invites to
// namespaced users: the service learns of it from its transaction and
// bridges create their puppets on that invite. Users no namespace holds
// stay unknown.
func (q FederationQueries) InviteeKnown(ctx context.Context, userID string) bool {
	if len(q.Registry.UserInterested(userID)) == 0 {
		return false
	}
	q.Registry.QueryUser(ctx, q.Client, userID)
	return true
}

func isNotFound(err error) bool {
	e, ok := mxerr.As(err)
	return ok && e.Code == "M_NOT_FOUND"
}
