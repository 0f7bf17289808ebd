package relations

import (
	"context"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// Paging through a parent's children (/relations) and a room's threads
// (/threads), keeping only the events the viewer may see.

// NoBound is a page with no end: stream positions go below zero for
// events backfilled from other servers, so -1 cannot mean "none".
const NoBound = rooms.NoBound

// Query selects a parent's children for Children.
type Query struct {
	RoomID, Parent string
	// RelType and EventType, when set, keep only children with that
	// rel_type and event type.
	RelType, EventType string
	// Depth is how many relation hops to follow: 1 for direct children.
	Depth int
}

// Children walks a parent's children from a token in one direction,
// keeping those the user may see, until it has limit events or reaches
// the to token or the end. It returns the token to continue from,
// NoBound when there is nothing further. from, to and upper are
// stream positions; to is NoBound for a page without end.
func (a *Aggregator) Children(ctx context.Context, viewer string, cq Query, from, to, upper int64, limit int, backwards bool) ([]*rooms.Event, int64, error) {
	vis := a.engine.VisibilityFor(viewer)
	rq := store.RelationQuery{RoomID: cq.RoomID, Parent: cq.Parent, RelType: cq.RelType, EventType: cq.EventType, Depth: cq.Depth}
	var out []*rooms.Event
	cursor := from
	if limit == 0 {
		return nil, NoBound, nil
	}
	for {
		batch := max(limit-len(out), 20)
		q := rq
		q.Limit, q.Backwards = batch, backwards
		if backwards {
			q.After, q.Upto = to, min(cursor, upper)
		} else {
			q.After, q.Upto = cursor, upper
			if to != NoBound {
				q.Upto = min(upper, to)
			}
		}
		if q.Upto <= q.After {
			return out, NoBound, nil
		}
		rows, err := a.store.RelatedEvents(ctx, q)
		if err != nil {
			return nil, 0, err
		}
		evs, err := rooms.EventsFor(ctx, a.engine, rows, func(row store.EventRow) int64 { return row.NID })
		if err != nil {
			return nil, 0, err
		}
		for i, ev := range evs {
			if backwards {
				cursor = ev.StreamPos - 1
			} else {
				cursor = ev.StreamPos
			}
			ok, err := vis.CanSee(ctx, ev)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				out = append(out, ev)
			}
			if len(out) == limit {
				if len(rows) < batch && i == len(evs)-1 {
					return out, NoBound, nil
				}
				return out, cursor, nil
			}
		}
		if len(rows) < batch {
			return out, NoBound, nil
		}
	}
}

// Threads walks a room's threads back from before, most recently
// active first, keeping the roots the user may see (of threads they took
// part in, when participant is set), until it has limit of them or
// reaches the start. It returns the token to continue from, -1 when
// there is nothing further.
func (a *Aggregator) Threads(ctx context.Context, viewer, roomID, participant string, upper, before int64, limit int) ([]*rooms.Event, int64, error) {
	vis := a.engine.VisibilityFor(viewer)
	var roots []*rooms.Event
	for before > 0 {
		batch := max(limit-len(roots), 20)
		threads, err := a.store.ThreadRoots(ctx, roomID, upper, before, participant, batch)
		if err != nil {
			return nil, 0, err
		}
		byID, err := a.threadRootEvents(ctx, threads)
		if err != nil {
			return nil, 0, err
		}
		for i, t := range threads {
			before = t.LatestPos - 1
			ev := byID[t.RootID]
			if !canRootThread(ev, roomID) {
				continue
			}
			ok, err := vis.CanSee(ctx, ev)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				roots = append(roots, ev)
			}
			if len(roots) == limit {
				if len(threads) == batch || i < len(threads)-1 {
					return roots, before, nil
				}
				return roots, -1, nil
			}
		}
		if len(threads) < batch {
			break
		}
	}
	return roots, -1, nil
}

// threadRootEvents loads the root events of threads, by event ID.
func (a *Aggregator) threadRootEvents(ctx context.Context, threads []store.ThreadRoot) (map[string]*rooms.Event, error) {
	ids := make([]string, len(threads))
	for i, t := range threads {
		ids[i] = t.RootID
	}
	evs, err := a.engine.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*rooms.Event, len(evs))
	for _, ev := range evs {
		byID[ev.EventID()] = ev
	}
	return byID, nil
}

// canRootThread reports whether ev may root a thread of roomID: a
// thread event may name any event ID as its root, but only an accepted
// message event of the room that is no relation itself roots a thread.
func canRootThread(ev *rooms.Event, roomID string) bool {
	if ev == nil || ev.RoomID().String() != roomID || ev.Status != roommodel.Accepted || ev.IsState() {
		return false
	}
	rel, _ := Of(ev)
	return rel == ""
}
