package remote

import (
	"context"
	"encoding/json"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// rejoinCatchUpTimeout bounds how long a rejoin waits for what was said
// while this server was out of the room.
const rejoinCatchUpTimeout = 10 * time.Second

// catchUpOnRejoin receives, before a rejoin is stored, what was said in
// the room while this server was out of it: the events between its
// forward extremities and the join, from the server that took the join
// (MissingEvents: /get_missing_events, bounded as any gap is). Received
// now, they take stream positions before the join's, so /messages pages
// through them in order; once the join is stored they would be a hole in
// the middle of the room's history, which backfill (it extends only the
// room's oldest end) never reaches. Events that do not fit (a gap larger
// than the walk) are left out. A first join has nothing to catch up on.
func (f *Service) catchUpOnRejoin(ctx context.Context, server string, join gomatrixserverlib.PDU) {
	// The user waits for the join: what cannot be fetched quickly stays a
	// hole in the history rather than holding the join up.
	ctx, cancel := context.WithTimeout(ctx, rejoinCatchUpTimeout)
	defer cancel()
	roomID := join.RoomID().String()
	if _, _, err := f.d.Rooms.Extremities(ctx, roomID); err != nil {
		return
	}
	v, err := gomatrixserverlib.GetRoomVersion(join.Version())
	if err != nil {
		return
	}
	evs, err := f.MissingEvents(ctx, server, v, join, func(raw json.RawMessage) (gomatrixserverlib.PDU, error) {
		pdu, err := rooms.ParsePDU(v, raw)
		if err != nil {
			return nil, err
		}
		return pdu, gomatrixserverlib.VerifyEventSignatures(ctx, pdu, f.d.KeyRing, UserIDForSender)
	})
	if err != nil {
		f.d.Log.Info("federation: catching up on a rejoined room", "room_id", roomID, "server", server, "err", err)
	}
	for _, ev := range evs {
		if _, err := f.d.Rooms.Receive(ctx, ev); err != nil {
			f.d.Log.Info("federation: an event missed while out of a room", "event_id", ev.EventID(), "err", err)
		}
	}
}
