package mxerr

import "net/http"

// InviteBlocked is spec v1.18's answer to an invite of a user who blocks
// invites ("Invite permission", MSC4380; MSC4155's blocked_* lists).
func InviteBlocked(format string, args ...any) *Error {
	return newf(http.StatusForbidden, "M_INVITE_BLOCKED", format, args...)
}
