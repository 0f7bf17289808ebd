// Package ident decides what the strings a server stores may hold. It
// is the one rule shared by the HTTP layer, which refuses bad strings
// where they enter, and the store, which refuses whatever slips past so
// that SQLite and PostgreSQL answer alike.
package ident

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// ErrNotText marks a string that cannot be stored as text: it holds NUL
// or is not valid UTF-8. PostgreSQL's TEXT refuses both, SQLite stores
// anything; refusing it on every engine keeps their answers the same.
// CheckText's errors are also a Matrix error, 400 M_INVALID_PARAM: a
// decision about the input, never a failure to decide, so that a client
// is told what is wrong and a remote server's event holding such a
// string is refused, not retried (rooms.Decided).
var ErrNotText = errors.New("not valid text: NUL or invalid UTF-8")

// CheckText returns ErrNotText, wrapped with the reason, for a string
// that is not valid UTF-8 or holds NUL. Every Matrix identifier and every
// free-text column must pass it; JSON documents pass it by construction,
// as encoding/json and canonical JSON escape NUL as \u0000.
func CheckText(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return &textError{"contains NUL"}
	}
	if !utf8.ValidString(s) {
		return &textError{"not valid UTF-8"}
	}
	return nil
}

// MaxBytes bounds every Matrix identifier: the spec bounds user, room
// and event IDs, aliases, event types and state keys at 255 bytes. It
// also keeps index rows far under PostgreSQL's btree limit (SQLite has
// none), so that both engines take the same identifiers.
const MaxBytes = 255

// CheckID is CheckText for an identifier, which is also at most MaxBytes
// long.
func CheckID(s string) error {
	if len(s) > MaxBytes {
		return &textError{"longer than 255 bytes"}
	}
	return CheckText(s)
}

// FreeText makes free text (a device's display name, a status message,
// a report's reason, a media file name) storable on every engine: NUL is
// dropped and bytes that are not UTF-8 become U+FFFD, as encoding/json
// reads them. Identifiers are refused instead (CheckText): changing one
// would name something else. JSON documents need neither: they keep NUL
// escaped, faithfully.
func FreeText(s string) string {
	if CheckText(s) == nil {
		return s
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

// FreeTextPtr is FreeText for an optional string.
func FreeTextPtr(s *string) *string {
	if s == nil || CheckText(*s) == nil {
		return s
	}
	t := FreeText(*s)
	return &t
}

type textError struct{ why string }

func (e *textError) Error() string { return e.why }
func (e *textError) Unwrap() []error {
	return []error{ErrNotText, mxerr.InvalidParam("A string in the request holds NUL or is not valid UTF-8")}
}
