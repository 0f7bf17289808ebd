package rooms

import (
	"context"

	"github.com/myelin-chat/myelin/internal/store"
)

// An event stored after a gap keeps stream positions below itself for
// the events of the hole: /messages orders by stream position, so events
// backfilled into the hole later must find room between their
// neighbours (Synapse orders /messages by depth and has no such need).
// How many is read from the graph: the event's depth less the room's
// head's is how many generations are missing, each of one event in a
// room that does not fork; twice that leaves room for the forks. At
// least minGapPositions (a hole whose depths are wrong still gets the
// room earlier versions gave every hole), at most maxGapPositions (a
// depth is the sender's word: a server claiming a huge one makes the
// stream skip this many positions per event at worst, which int64
// positions bear for ever). A hole bigger than its positions keeps its
// newest events in order; what lies beyond is left to the room's other
// servers.
const (
	minGapPositions = 1000
	maxGapPositions = 1 << 20
)

// gapPositions is how many positions to keep for the hole below an
// event of depth depth over a room head of depth headDepth.
func gapPositions(depth, headDepth int64) int64 {
	missing := depth - headDepth - 1
	if missing > maxGapPositions/2 {
		return maxGapPositions
	}
	return max(minGapPositions, 2*missing)
}

// gapFrontier is how many of the oldest events already in a hole
// GapPoints reads for the prev events it still lacks: a /backfill answer
// (at most a few hundred events) walks back from those.
const gapFrontier = 1000

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
	nids, err := e.store.RoomEvents(ctx, g.RoomID, g.Next, g.Top, gapFrontier+1, false)
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
