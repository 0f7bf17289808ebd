package rooms

import (
	"slices"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib"
)

// Versions are the room versions Myelin implements: the stable ones, 1
// to 12, which /capabilities lists. gomatrixserverlib knows
// experimental ones too (pseudo IDs, Hydra, state DAGs) that need what
// Myelin does not give it (PerformJoin calls a nil GetOrCreateSenderID
// for a pseudo-ID room and panics): no room of theirs is created,
// upgraded to or joined.
func Versions() []gomatrixserverlib.RoomVersion {
	out := make([]gomatrixserverlib.RoomVersion, 0, 12)
	for n := 1; n <= 12; n++ {
		out = append(out, gomatrixserverlib.RoomVersion(strconv.Itoa(n)))
	}
	return out
}

// Version is the implementation of a room version, if Myelin
// implements it.
func Version(v gomatrixserverlib.RoomVersion) (gomatrixserverlib.IRoomVersion, bool) {
	if !slices.Contains(Versions(), v) {
		return nil, false
	}
	impl, err := gomatrixserverlib.GetRoomVersion(v)
	return impl, err == nil
}
