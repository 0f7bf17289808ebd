package clientsync

import (
	"strconv"
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Token is a /sync stream token: a position in each stream the server
// has. It is written "s<events>" (more streams append "_<pos>"), and
// stays valid across restarts because every position is stored.
type Token struct {
	Events int64
	// ToDevice is the device's to-device inbox position the client has
	// (every message up to it can be deleted).
	ToDevice int64
}

// String renders the token: "s<events>", or "s<events>_<todevice>".
func (t Token) String() string {
	if t.ToDevice == 0 {
		return "s" + strconv.FormatInt(t.Events, 10)
	}
	return "s" + strconv.FormatInt(t.Events, 10) + "_" + strconv.FormatInt(t.ToDevice, 10)
}

// ParseToken reads a token; unknown trailing streams are ignored so that
// tokens from newer servers still parse.
func ParseToken(s string) (Token, error) {
	t, err := ParsePageToken(s)
	if err == nil && t.Events < 0 {
		return Token{}, mxerr.InvalidParam("Invalid stream token %q", s)
	}
	return t, err
}

// ParsePageToken reads a pagination token, which unlike a sync token may
// point below zero: among events backfilled from other servers.
func ParsePageToken(s string) (Token, error) {
	rest, ok := strings.CutPrefix(s, "s")
	if !ok {
		return Token{}, mxerr.InvalidParam("Invalid stream token %q", s)
	}
	first, rest, _ := strings.Cut(rest, "_")
	n, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return Token{}, mxerr.InvalidParam("Invalid stream token %q", s)
	}
	t := Token{Events: n}
	if second, _, _ := strings.Cut(rest, "_"); second != "" {
		if t.ToDevice, err = strconv.ParseInt(second, 10, 64); err != nil || t.ToDevice < 0 {
			return Token{}, mxerr.InvalidParam("Invalid stream token %q", s)
		}
	}
	return t, nil
}
