package remote

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/ident"
)

// TimestampToEvent asks the other servers in a room for the event
// closest to ts in one direction (GET /timestamp_to_event), for a
// /timestamp_to_event that found nothing here, as Synapse does. The
// first server whose answer names an event of the room that it serves
// signed with that origin_server_ts wins; ok is false when none did.
// The event, checked, is then stored as backfilled history (with the
// state before it from that server when its prev events are not held
// here), as Synapse backfills it, so that the client's next /context or
// /event on it is served from here.
func (f *Service) TimestampToEvent(ctx context.Context, roomID string, ts int64, backwards bool) (eventID string, originTS int64, ok bool, err error) {
	v, err := f.d.Rooms.RoomVersion(ctx, roomID)
	if err != nil {
		return "", 0, false, err
	}
	state, err := f.d.Rooms.CurrentState(ctx, roomID)
	if err != nil {
		return "", 0, false, err
	}
	servers, err := f.d.Rooms.ServersInRoom(ctx, state)
	if err != nil {
		return "", 0, false, err
	}
	dir := "f"
	if backwards {
		dir = "b"
	}
	path := "/_matrix/federation/v1/timestamp_to_event/" + url.PathEscape(roomID) + "?" + url.Values{"ts": {strconv.FormatInt(ts, 10)}, "dir": {dir}}.Encode()
	for _, server := range servers {
		if server == f.d.ServerName {
			continue
		}
		var answer struct {
			EventID  string `json:"event_id"`
			OriginTS int64  `json:"origin_server_ts"`
		}
		if err := f.signedRequest(ctx, server, "GET", path, nil, &answer); err != nil {
			f.d.Log.Debug("timestamp_to_event failed", "room_id", roomID, "server", server, "err", err)
			continue
		}
		if answer.EventID == "" || ident.CheckID(answer.EventID) != nil {
			continue
		}
		pdu, err := f.FetchEvent(ctx, server, v, answer.EventID)
		if err != nil || pdu.RoomID().String() != roomID || int64(pdu.OriginServerTS()) != answer.OriginTS {
			f.d.Log.Info("timestamp_to_event answer rejected", "room_id", roomID, "server", server, "event_id", answer.EventID, "err", err)
			continue
		}
		if (backwards && answer.OriginTS > ts) || (!backwards && answer.OriginTS < ts) {
			continue
		}
		f.keepRemoteAnswer(ctx, server, v, roomID, pdu)
		return answer.EventID, answer.OriginTS, true, nil
	}
	return "", 0, false, nil
}

// keepRemoteAnswer stores a /timestamp_to_event answer not held here as
// backfilled history; a failure leaves the answer as it was (the client
// can still backfill with /messages).
func (f *Service) keepRemoteAnswer(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, roomID string, pdu gomatrixserverlib.PDU) {
	held, err := f.d.Rooms.EventsByID(ctx, []string{pdu.EventID()})
	if err != nil || len(held) > 0 {
		return
	}
	if f.storeBackfill(ctx, server, v, roomID, []json.RawMessage{pdu.JSON()}, f.historicalPositions) == 0 {
		f.d.Log.Info("timestamp_to_event answer not stored", "room_id", roomID, "server", server, "event_id", pdu.EventID())
	}
}
