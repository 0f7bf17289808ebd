package rooms

import (
	"context"
	"slices"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// What the admin API's room endpoints ask of the engine: the purge of a
// room, trimming its forward extremities, and its whole timeline.

// Purge removes a room from the database through purge (the store's
// PurgeRoom) under the room's lock, after the room's last queued write
// has settled, so that no event of the room is stored after it; then it
// forgets what it cached of the room. Other servers' events for the room
// arriving later start it afresh, as for any room the server does not
// know.
func (e *Engine) Purge(ctx context.Context, roomID string, purge func(context.Context) (store.PurgedRoom, error)) error {
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return err
	}
	defer e.unlockRoom(h)
	if h.pending != nil {
		_, _ = h.pending.wait()
		h.pending = nil
	}
	p, err := purge(ctx)
	if err != nil {
		h.loaded = false
		return err
	}
	for _, nid := range p.EventNIDs {
		e.events.Remove(nid)
	}
	for _, id := range p.EventIDs {
		e.eventIDs.Remove(id)
	}
	e.forgetSnapshots(p.Snapshots)
	e.relMu.Lock()
	e.relRooms.Remove(roomID)
	e.relMu.Unlock()
	// An unknown head is dropped from the map when unlocked.
	h.loaded, h.version, h.state, h.snapshot, h.chainLen, h.depth, h.extremities, h.partial = false, nil, nil, 0, 0, 0, nil, false
	return nil
}

// Extremity is one of a room's forward extremities as the admin API
// shows it.
type Extremity struct {
	EventID  string
	Snapshot int64 // the state after it (Synapse's state_group)
	Depth    int64
	OriginTS int64
}

// ExtremityDetails lists a room's forward extremities; M_NOT_FOUND for
// a room the server does not know.
func (e *Engine) ExtremityDetails(ctx context.Context, roomID string) ([]Extremity, error) {
	ids, _, err := e.Extremities(ctx, roomID)
	if err != nil {
		return nil, err
	}
	evs, err := e.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Extremity, 0, len(evs))
	for _, ev := range evs {
		out = append(out, Extremity{EventID: ev.EventID(), Snapshot: ev.StateAfter, Depth: ev.Depth(), OriginTS: int64(ev.OriginServerTS())})
	}
	return out, nil
}

// TrimExtremities deletes every forward extremity of a room but the
// newest (by stream position), as Synapse's admin API does for rooms
// whose extremities piled up; it returns how many it deleted. The
// room's current state stays as it is: the next event builds on it with
// the one extremity left as its prev event.
func (e *Engine) TrimExtremities(ctx context.Context, roomID string) (int, error) {
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return 0, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return 0, mxerr.NotFound("Room not found")
	}
	if len(h.extremities) < 2 {
		return 0, nil
	}
	evs, err := e.EventsByID(ctx, h.extremities)
	if err != nil {
		return 0, err
	}
	var keep *Event
	for _, ev := range evs {
		if keep == nil || ev.StreamPos > keep.StreamPos {
			keep = ev
		}
	}
	if keep == nil {
		return 0, nil
	}
	if h.pending != nil {
		if _, err := h.pending.wait(); err != nil {
			h.pending, h.loaded = nil, false
			return 0, err
		}
		h.pending = nil
	}
	kept := []string{keep.EventID()}
	if err := e.store.UpdateRoomHead(ctx, roomID, store.HeadUpdate{Extremities: kept}); err != nil {
		h.loaded = false
		return 0, err
	}
	n := len(h.extremities) - 1
	h.extremities = slices.Clone(kept)
	return n, nil
}

// AdminTimeline is Timeline for a server admin, who may read every
// event the room's clients could ever be shown (accepted events with a
// stream position), whatever the history visibility (Synapse's admin
// /messages).
func (e *Engine) AdminTimeline(ctx context.Context, roomID string, from, to, upper int64, limit int, backwards bool, keep func(*Event) bool) ([]*Event, int64, bool, error) {
	return e.timeline(ctx, roomID, from, to, upper, limit, backwards, keep, func(_ context.Context, ev *Event) (bool, error) {
		return ev.Status == roommodel.Accepted, nil
	})
}

// PurgeHistory removes old events of a room through purge (the store's
// PurgeHistory) under the room's lock, and forgets them from the caches.
func (e *Engine) PurgeHistory(ctx context.Context, roomID string, purge func(context.Context) (store.PurgedRoom, error)) (int, error) {
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return 0, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return 0, mxerr.NotFound("Room not found")
	}
	p, err := purge(ctx)
	if err != nil {
		return 0, err
	}
	for _, nid := range p.EventNIDs {
		e.events.Remove(nid)
	}
	for _, id := range p.EventIDs {
		e.eventIDs.Remove(id)
	}
	return len(p.EventIDs), nil
}
