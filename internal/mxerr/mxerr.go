// Package mxerr is the one place where Matrix errors are defined: an errcode,
// an HTTP status and a message, plus any extra fields the spec puts beside
// them (retry_after_ms, soft_logout, the UIA flows...). Domain packages
// return these; the HTTP layer writes them.
package mxerr

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a Matrix error response.
type Error struct {
	Status  int
	Code    string // empty for the first UIA challenge, which has no errcode
	Message string
	Extra   map[string]any
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message) }

// Body is the JSON object written to the client.
func (e *Error) Body() map[string]any {
	body := make(map[string]any, len(e.Extra)+2)
	for k, v := range e.Extra {
		body[k] = v
	}
	if e.Code != "" {
		body["errcode"] = e.Code
		body["error"] = e.Message
	}
	return body
}

// With returns a copy of e carrying an extra response field.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Extra = make(map[string]any, len(e.Extra)+1)
	for k, v := range e.Extra {
		c.Extra[k] = v
	}
	c.Extra[key] = value
	return &c
}

// As extracts a *Error from err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

func newf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Constructors for the errcodes the server uses, named after them.
func Forbidden(format string, args ...any) *Error {
	return newf(http.StatusForbidden, "M_FORBIDDEN", format, args...)
}
func UnknownToken(format string, args ...any) *Error {
	return newf(http.StatusUnauthorized, "M_UNKNOWN_TOKEN", format, args...)
}
func MissingToken(format string, args ...any) *Error {
	return newf(http.StatusUnauthorized, "M_MISSING_TOKEN", format, args...)
}

// ThreepidMediumNotSupported is the answer of a server that validates no
// third-party identifiers of a medium (spec v1.13, MSC4178).
func ThreepidMediumNotSupported(format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "M_THREEPID_MEDIUM_NOT_SUPPORTED", format, args...)
}
func BadJSON(format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "M_BAD_JSON", format, args...)
}
func NotJSON(format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "M_NOT_JSON", format, args...)
}
func NotFound(format string, args ...any) *Error {
	return newf(http.StatusNotFound, "M_NOT_FOUND", format, args...)
}
func LimitExceeded(retryAfterMS int64) *Error {
	return newf(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "Too many requests").With("retry_after_ms", retryAfterMS)
}
func Unrecognized(status int, format string, args ...any) *Error {
	return newf(status, "M_UNRECOGNIZED", format, args...)
}
func Unknown(format string, args ...any) *Error {
	return newf(http.StatusInternalServerError, "M_UNKNOWN", format, args...)
}
func UserInUse(format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "M_USER_IN_USE", format, args...)
}
func InvalidUsername(format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "M_INVALID_USERNAME", format, args...)
}
func InvalidParam(format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "M_INVALID_PARAM", format, args...)
}
func MissingParam(format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "M_MISSING_PARAM", format, args...)
}
func TooLarge(format string, args ...any) *Error {
	return newf(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", format, args...)
}
func UserDeactivated(format string, args ...any) *Error {
	return newf(http.StatusForbidden, "M_USER_DEACTIVATED", format, args...)
}

// UserLocked is spec v1.12's answer to a locked account: 401 with
// soft_logout, so that clients keep their session and state and poll for
// the lock to be lifted.
func UserLocked() *Error {
	return newf(http.StatusUnauthorized, "M_USER_LOCKED", "This account has been locked").With("soft_logout", true)
}

// UserLimitExceeded is spec v1.18's answer to a request over a limit of
// the user's account (a number of account-scoped resources, a quota):
// info_uri, which the spec requires, is a page the client can show about
// the limit; can_upgrade is left out (false: a hard limit). The status
// depends on the endpoint.
func UserLimitExceeded(status int, infoURI, format string, args ...any) *Error {
	return newf(status, "M_USER_LIMIT_EXCEEDED", format, args...).With("info_uri", infoURI)
}

// UserSuspended is spec v1.13's answer to an action a suspended account
// may not take.
func UserSuspended() *Error {
	return newf(http.StatusForbidden, "M_USER_SUSPENDED", "You cannot perform this action while suspended")
}

func GuestAccessForbidden(format string, args ...any) *Error {
	return newf(http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN", format, args...)
}
func Unauthorized(format string, args ...any) *Error {
	return newf(http.StatusUnauthorized, "M_UNAUTHORIZED", format, args...)
}
func WeakPassword(format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "M_WEAK_PASSWORD", format, args...)
}
func Exclusive(format string, args ...any) *Error {
	return newf(http.StatusBadRequest, "M_EXCLUSIVE", format, args...)
}

// Content repository errors (spec "Content repository").
func CannotOverwriteMedia(format string, args ...any) *Error {
	return newf(http.StatusConflict, "M_CANNOT_OVERWRITE_MEDIA", format, args...)
}
func NotYetUploaded(format string, args ...any) *Error {
	return newf(http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED", format, args...)
}

// WithStatus returns a copy of e answered with another HTTP status (the
// spec's 502 M_TOO_LARGE for remote media, for one).
func (e *Error) WithStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
}
