package clientapi

import (
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// FuzzParseUserRedaction: MSC4194's user ID and limit. Anything refused
// is a 400 parameter error; anything accepted is a user ID and a limit
// within 1..rooms.MaxUserRedactions.
func FuzzParseUserRedaction(f *testing.F) {
	for _, s := range [][2]string{{"@bob:hs1.test", ""}, {"@bob:hs1.test", "10"}, {"@bob:hs1.test", "99999999999999999999999"},
		{"bob", "1"}, {"@b\x00b:hs1.test", "1"}, {"@bob:hs1.test", "-1"}, {"@bob:hs1.test", "0"}, {"@\xff:x", "1e3"}, {"", ""}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, userID, limit string) {
		target, n, err := parseUserRedaction(userID, limit)
		if err != nil {
			badParam(t, userID+"?limit="+limit, err)
			return
		}
		if target != userID || target == "" || target[0] != '@' || n < 1 || n > rooms.MaxUserRedactions {
			t.Fatalf("%q, %q accepted as %q, %d", userID, limit, target, n)
		}
	})
}
