package remote

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// FillGaps backfills the holes in a room's history that meet stream
// positions lo..hi (a /messages page that reached them, lo its lowest
// position, or the page's bound when it reached the end): for each
// hole, /backfill from where its history continues (the missing prev
// events) into the positions kept for it, so that the events land
// between their neighbours. It returns how many events it stored.
// Synapse backfills at such backward extremities too, whichever depth
// they are at, not only at the room's oldest event.
func (f *Service) FillGaps(ctx context.Context, roomID string, lo, hi int64, limit int) (int, error) {
	gaps, err := f.d.Rooms.HistoryGaps(ctx, roomID, lo, hi)
	if err != nil || len(gaps) == 0 {
		return 0, err
	}
	total := 0
	for _, g := range gaps {
		if lo > g.Next+1 {
			// The page stops above the part of the hole already filled
			// (positions Next+1 up to Top): the next page reads it first.
			continue
		}
		n, err := f.fillGap(ctx, g, limit)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

func (f *Service) fillGap(ctx context.Context, g store.HistoryGap, limit int) (int, error) {
	points, err := f.d.Rooms.GapPoints(ctx, g)
	if err != nil {
		return 0, err
	}
	if len(points) == 0 || g.Next < g.Low {
		// Filled, or no position left for the rest of it (older
		// history beyond the kept positions stays on other servers).
		return 0, f.d.Rooms.CloseHistoryGap(ctx, g.EventID)
	}
	v, err := f.d.Rooms.RoomVersion(ctx, g.RoomID)
	if err != nil {
		return 0, err
	}
	servers, _, err := f.d.Rooms.ServersInRoomOrNamed(ctx, g.RoomID, func(ctx context.Context) (rooms.StateMap, error) {
		return f.d.Rooms.CurrentState(ctx, g.RoomID)
	})
	if err != nil {
		return 0, err
	}
	positions := func(ctx context.Context, n int) (int64, int, error) {
		return f.d.Rooms.TakeGapPositions(ctx, g.EventID, n)
	}
	self := spec.ServerName(f.d.ServerName)
	for _, server := range servers {
		if server == f.d.ServerName {
			continue
		}
		txn, err := f.d.Client.Backfill(ctx, self, spec.ServerName(server), g.RoomID, max(limit, 20), points)
		if err != nil {
			f.d.Log.Info("backfill into a gap failed", "room_id", g.RoomID, "server", server, "err", err)
			continue
		}
		if n := f.storeBackfill(ctx, server, v, g.RoomID, txn.PDUs, positions); n > 0 {
			return n, nil
		}
	}
	return 0, nil
}
