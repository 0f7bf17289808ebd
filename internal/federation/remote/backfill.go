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
	servers, _, err := f.d.Rooms.ServersInRoomOrNamed(ctx, roomID, func(ctx context.Context) (rooms.StateMap, error) {
		return f.d.Rooms.CurrentState(ctx, roomID)
	})
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
		if n := f.storeBackfill(ctx, server, v, roomID, txn.PDUs, f.historicalPositions); n > 0 {
			return n, nil
		}
	}
	return 0, nil
}

// storeBackfill checks and stores backfilled events oldest first, so
// that each finds its prev events; the oldest, whose prev events are
// beyond the batch, get the state before them from the server.
func (f *Service) storeBackfill(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, roomID string, raws []json.RawMessage, positions reservePositions) int {
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
	pdus = f.notStored(ctx, pdus)
	if len(pdus) == 0 {
		return 0
	}
	sort.SliceStable(pdus, func(i, j int) bool { return pdus[i].Depth() < pdus[j].Depth() })
	base, got, err := positions(ctx, len(pdus))
	if err != nil {
		f.d.Log.Warn("backfill", "err", err)
		return 0
	}
	// Without room for them all, the newest are kept: they are the ones
	// next to what the client has already seen.
	pdus = pdus[len(pdus)-got:]
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

// reservePositions hands out stream positions for up to n backfilled
// events: the first and how many.
type reservePositions func(ctx context.Context, n int) (first int64, got int, err error)

// historicalPositions are below every other: history older than the
// room's oldest event here.
func (f *Service) historicalPositions(ctx context.Context, n int) (int64, int, error) {
	base, err := f.d.Rooms.ReserveHistorical(ctx, n)
	return base, n, err
}

// notStored drops the events already stored here with their place in the
// room (a /backfill answer starts with the events asked for and may reach
// below a hole), so that no position is spent on them.
func (f *Service) notStored(ctx context.Context, pdus []gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	ids := make([]string, len(pdus))
	for i, p := range pdus {
		ids[i] = p.EventID()
	}
	held, err := f.d.Rooms.EventsByID(ctx, ids)
	if err != nil || len(held) == 0 {
		return pdus
	}
	stored := map[string]bool{}
	for _, ev := range held {
		if ev.HasState() {
			stored[ev.EventID()] = true
		}
	}
	out := pdus[:0]
	for _, p := range pdus {
		if !stored[p.EventID()] {
			out = append(out, p)
		}
	}
	return out
}
