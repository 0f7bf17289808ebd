package appservice

import (
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// ActAs is the user an application service's request acts for (spec
// "Identity assertion"): its sender_localpart user, or with user_id one
// of the users its namespaces hold. Outside them: 403 M_FORBIDDEN, as
// Synapse answers.
func (r *Registry) ActAs(reg *Registration, userIDParam string) (string, error) {
	sender := "@" + reg.SenderLocalpart + ":" + r.ServerName
	if userIDParam == "" || userIDParam == sender {
		return sender, nil
	}
	if !strings.HasSuffix(userIDParam, ":"+r.ServerName) {
		return "", mxerr.Forbidden("Application service cannot masquerade as this user (%s).", userIDParam)
	}
	if !reg.InUsers(userIDParam) {
		return "", mxerr.Forbidden("Application service cannot masquerade as this user (%s).", userIDParam)
	}
	return userIDParam, nil
}

// MayRegister checks that an application service may register localpart
// (POST /register with m.login.application_service): the user must be in
// its user namespaces (Synapse: M_EXCLUSIVE "Invalid user localpart for
// this application service").
func (r *Registry) MayRegister(reg *Registration, localpart string) error {
	userID := "@" + localpart + ":" + r.ServerName
	if !reg.OwnsUser(userID, r.ServerName) {
		return mxerr.Exclusive("Invalid user localpart for this application service.")
	}
	return nil
}

// CheckUserFree refuses a user ID that a service holds exclusively to
// anyone but that service (normal registration): M_EXCLUSIVE.
func (r *Registry) CheckUserFree(userID string) error {
	if r.ExclusiveUser(userID) != nil {
		return mxerr.Exclusive("This user ID is reserved by an application service.")
	}
	return nil
}

// CheckAliasFree refuses an alias that a service other than caller (nil
// for a user) holds exclusively: M_EXCLUSIVE, as Synapse answers alias
// creation in an exclusive namespace.
func (r *Registry) CheckAliasFree(alias string, caller *Registration) error {
	if owner := r.ExclusiveAlias(alias); owner != nil && owner != caller {
		return mxerr.Exclusive("This alias is reserved by an application service.")
	}
	return nil
}
