package remote

import (
	"context"
	"encoding/json"
	"errors"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// Backfill fetches up to limit events older than the room's oldest here
// from another server in the room (/backfill), checks them and stores
// them as history. It returns how many it stored; 0 when history starts
// here or no server could help.
func (f *Service) Backfill(ctx context.Context, roomID string, limit int) (int, error) {
	points, err := f.d.Rooms.BackfillPoints(ctx, roomID)
	if err != nil || len(points) == 0 {
		return 0, err
	}
	v, err := f.d.Rooms.RoomVersion(ctx, roomID)
	if err != nil {
		return 0, err
	}
	state, err := f.d.Rooms.CurrentState(ctx, roomID)
	if err != nil {
		return 0, err
	}
	servers, err := f.d.Rooms.ServersInRoomOrNamed(ctx, roomID, state)
	if err != nil {
		return 0, err
	}
	self := spec.ServerName(f.d.ServerName)
	for _, server := range servers {
		if server == f.d.ServerName {
			continue
		}
		txn, err := f.d.Client.Backfill(ctx, self, spec.ServerName(server), roomID, limit, points)
		if err != nil {
			f.d.Log.Info("backfill failed", "room_id", roomID, "server", server, "err", err)
			continue
		}
		if n := f.storeBackfill(ctx, server, v, roomID, txn.PDUs); n > 0 {
			return n, nil
		}
	}
	return 0, nil
}

// storeBackfill checks and stores backfilled events oldest first, so
// that each finds its prev events; the oldest, whose prev events are
// beyond the batch, get the state before them from the server.
func (f *Service) storeBackfill(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, roomID string, raws []json.RawMessage) int {
	var pdus []gomatrixserverlib.PDU
	for _, raw := range raws {
		pdu, err := rooms.ParsePDU(v, raw)
		if err != nil || pdu.RoomID().String() != roomID {
			continue
		}
		if err := gomatrixserverlib.VerifyEventSignatures(ctx, pdu, f.d.KeyRing, UserIDForSender); err != nil {
			f.d.Log.Info("backfilled event with a bad signature", "event_id", pdu.EventID(), "server", server, "err", err)
			continue
		}
		if f.takenDown(ctx, pdu) {
			continue
		}
		pdus = append(pdus, pdu)
	}
	sort.SliceStable(pdus, func(i, j int) bool { return pdus[i].Depth() < pdus[j].Depth() })
	base, err := f.d.Rooms.ReserveHistorical(ctx, len(pdus))
	if err != nil {
		f.d.Log.Warn("backfill", "err", err)
		return 0
	}
	n := 0
	for i, pdu := range pdus {
		pos := base + int64(i)
		_, err := f.d.Rooms.ReceiveHistorical(ctx, pdu, pos, nil, nil)
		var missing *rooms.ErrMissingEvents
		if errors.As(err, &missing) {
			state, auth, lerr := f.StateAt(ctx, server, v, roomID, pdu.EventID())
			if lerr != nil {
				f.d.Log.Info("state for a backfilled event", "event_id", pdu.EventID(), "server", server, "err", lerr)
				continue
			}
			_, err = f.d.Rooms.ReceiveHistorical(ctx, pdu, pos, state, auth)
		}
		if err != nil {
			f.d.Log.Info("storing a backfilled event", "event_id", pdu.EventID(), "err", err)
			continue
		}
		if f.d.Media != nil {
			f.d.Media.Posted(roomID, pdu.Content())
		}
		n++
	}
	return n
}
