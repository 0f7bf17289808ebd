package federation

import (
	"context"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
)

// rejoinCatchUpTimeout bounds how long a rejoin waits for what was said
// while this server was out of the room.
const rejoinCatchUpTimeout = 10 * time.Second

// catchUpOnRejoin receives, before a rejoin is stored, what was said in
// the room while this server was out of it: the events between its
// forward extremities and the join, from the server that took the join
// (/get_missing_events, bounded as any gap is). Received now, they take
// stream positions before the join's, so /messages pages through them in
// order; once the join is stored they would be a hole in the middle of
// the room's history, which backfill (it extends only the room's oldest
// end) never reaches. A first join has nothing to catch up on.
func (a *API) catchUpOnRejoin(ctx context.Context, server string, join gomatrixserverlib.PDU) {
	// The user waits for the join: what cannot be fetched quickly stays a
	// hole in the history rather than holding the join up.
	ctx, cancel := context.WithTimeout(ctx, rejoinCatchUpTimeout)
	defer cancel()
	roomID := join.RoomID().String()
	if _, _, err := a.d.Rooms.Extremities(ctx, roomID); err != nil {
		return
	}
	v, err := gomatrixserverlib.GetRoomVersion(join.Version())
	if err != nil {
		return
	}
	if err := a.fetchMissing(ctx, server, v, join); err != nil {
		a.d.Log.Info("federation: catching up on a rejoined room", "room_id", roomID, "server", server, "err", err)
	}
}
