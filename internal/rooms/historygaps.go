package rooms

import (
	"context"

	"github.com/myelin-chat/myelin/internal/store"
)

// gapPositions is how many stream positions an event stored after a gap
// keeps below itself for the events of the hole: /messages orders by
// stream position, so events backfilled into the hole later must find
// room between their neighbours (Synapse orders /messages by depth and
// has no such need). A bigger hole keeps its newest gapPositions events
// in order; what lies beyond is left to the room's other servers.
const gapPositions = 1000

// HistoryGapStore keeps the holes in rooms' history (store.HistoryGap).
type HistoryGapStore interface {
	RecordHistoryGap(ctx context.Context, roomID, eventID string, top, low int64) error
	HistoryGaps(ctx context.Context, roomID string, lo, hi int64) ([]store.HistoryGap, error)
	TakeGapPositions(ctx context.Context, eventID string, n int) (first int64, got int, err error)
	CloseHistoryGap(ctx context.Context, eventID string) error
}

// recordGap notes that ev was stored above a hole whose positions start
// at low (skipped just before ev's own was taken).
func (e *Engine) recordGap(ctx context.Context, ev *Event, low int64) error {
	if ev == nil || ev.StreamPos <= low {
		return nil
	}
	return e.store.RecordHistoryGap(ctx, ev.RoomID().String(), ev.EventID(), ev.StreamPos, low)
}

// HistoryGaps lists a room's open holes that meet positions lo..hi.
func (e *Engine) HistoryGaps(ctx context.Context, roomID string, lo, hi int64) ([]store.HistoryGap, error) {
	return e.store.HistoryGaps(ctx, roomID, lo, hi)
}

// GapPoints are where the history of a hole continues on other servers:
// the prev events, missing here (or known only as outliers), of the
// event above the hole and of the events already backfilled into it.
// None means the hole is closed.
func (e *Engine) GapPoints(ctx context.Context, g store.HistoryGap) ([]string, error) {
	nids, err := e.store.RoomEvents(ctx, g.RoomID, g.Next, g.Top, gapPositions+1, false)
	if err != nil {
		return nil, err
	}
	evs, err := e.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	var prevs []string
	seen := map[string]bool{}
	for _, ev := range evs {
		for _, id := range ev.PrevEventIDs() {
			if !seen[id] {
				seen[id] = true
				prevs = append(prevs, id)
			}
		}
	}
	known, missing, err := e.knownEvents(ctx, prevs)
	if err != nil {
		return nil, err
	}
	for _, p := range known {
		if !p.HasState() {
			missing = append(missing, p.EventID())
		}
	}
	return missing, nil
}

// TakeGapPositions hands out up to n free positions of a hole, highest
// first; got is 0 when it has none left.
func (e *Engine) TakeGapPositions(ctx context.Context, eventID string, n int) (first int64, got int, err error) {
	return e.store.TakeGapPositions(ctx, eventID, n)
}

// CloseHistoryGap forgets a hole that is filled or out of positions.
func (e *Engine) CloseHistoryGap(ctx context.Context, eventID string) error {
	return e.store.CloseHistoryGap(ctx, eventID)
}
