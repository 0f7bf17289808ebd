package rooms

import (
	"context"
	"math"

	"github.com/myelin-chat/myelin/internal/store"
)

// Walking a room's timeline as one user may read it: /messages,
// /context, /initialSync and /timestamp_to_event.

// NoBound is a page with no end: stream positions go below zero for
// events backfilled from other servers, so -1 cannot mean "none".
const NoBound = math.MinInt64

// Timeline walks a room's events from stream position from in one
// direction, keeping those keep accepts (nil: all) and viewer may see,
// until it has limit events or reaches to (NoBound: none), upper or the
// end. It returns the position to continue from and whether there may be
// more.
func (e *Engine) Timeline(ctx context.Context, roomID, viewer string, from, to, upper int64, limit int, backwards bool, keep func(*Event) bool) ([]*Event, int64, bool, error) {
	return e.timeline(ctx, roomID, from, to, upper, limit, backwards, keep, e.VisibilityFor(viewer).CanSee)
}

// timeline is Timeline with its visibility check: see.
func (e *Engine) timeline(ctx context.Context, roomID string, from, to, upper int64, limit int, backwards bool, keep func(*Event) bool,
	see func(context.Context, *Event) (bool, error)) ([]*Event, int64, bool, error) {
	var out []*Event
	cursor := from
	for len(out) < limit {
		var nids []int64
		var err error
		batch := max(limit-len(out), 20)
		if backwards {
			nids, err = e.store.RoomEvents(ctx, roomID, to, min(cursor, upper), batch, true)
		} else {
			hi := upper
			if to != NoBound {
				hi = min(hi, to)
			}
			nids, err = e.store.RoomEvents(ctx, roomID, cursor, hi, batch, false)
		}
		if err != nil {
			return nil, 0, false, err
		}
		if len(nids) == 0 {
			return out, 0, false, nil
		}
		evs, err := e.EventsByNID(ctx, nids)
		if err != nil {
			return nil, 0, false, err
		}
		for _, ev := range evs {
			if backwards {
				cursor = ev.StreamPos - 1
			} else {
				cursor = ev.StreamPos
			}
			if keep != nil && !keep(ev) {
				continue
			}
			ok, err := see(ctx, ev)
			if err != nil {
				return nil, 0, false, err
			}
			if ok {
				out = append(out, ev)
				if len(out) == limit {
					break
				}
			}
		}
		if len(nids) < batch {
			if len(out) < limit {
				return out, 0, false, nil
			}
			break
		}
	}
	return out, cursor, true, nil
}

// FirstEventNear is a room's event closest to origin_server_ts ts in
// one direction, ts included, among its events up to stream position
// upper, whoever may see it: federation's /timestamp_to_event answers a
// server, which is shown the event itself only through the endpoints
// that check visibility. ok is false when there is none.
func (e *Engine) FirstEventNear(ctx context.Context, roomID string, ts, upper int64, backwards bool) (eventID string, originTS int64, ok bool, err error) {
	pos := int64(-1)
	if backwards {
		pos = math.MaxInt64
	}
	rows, err := e.store.EventsByTimestamp(ctx, roomID, ts, pos, upper, 1, backwards)
	if err != nil || len(rows) == 0 {
		return "", 0, false, err
	}
	return rows[0].EventID, rows[0].OriginTS, true, nil
}

// EventNear is the event viewer may see closest to origin_server_ts ts
// in one direction, ts included, among a room's events up to stream
// position upper; nil when there is none.
func (e *Engine) EventNear(ctx context.Context, roomID, viewer string, ts, upper int64, backwards bool) (*Event, error) {
	vis := e.VisibilityFor(viewer)
	pos := int64(-1)
	if backwards {
		pos = math.MaxInt64
	}
	const batch = 50
	for {
		rows, err := e.store.EventsByTimestamp(ctx, roomID, ts, pos, upper, batch, backwards)
		if err != nil {
			return nil, err
		}
		evs, err := EventsFor(ctx, e, rows, func(row store.EventRow) int64 { return row.NID })
		if err != nil {
			return nil, err
		}
		if ev, err := vis.First(ctx, evs); err != nil || ev != nil {
			return ev, err
		}
		if len(evs) > 0 {
			last := evs[len(evs)-1]
			ts, pos = int64(last.OriginServerTS()), last.StreamPos
		}
		if len(rows) < batch {
			return nil, nil
		}
	}
}
