package rooms

import (
	"context"
	"errors"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// Partial-state rooms (faster joins: send_join with omit_members,
// MSC3706/MSC3902, in the spec since v1.6). A join whose resident server
// left the membership events out of its answer is stored at once, so
// that the room is usable while its full state is fetched in the
// background (Synapse's partial_state_rooms and _sync_partial_state_room).
// Meanwhile:
//
//   - an event received is checked against the state this server knows,
//     with its own auth events standing in for the keys that state lacks
//     (Synapse resolves the known state with the claimed auth events);
//     the check against the current state (soft failure) is skipped, as
//     Synapse does, since a partial current state would soft-fail any
//     event of a member this server has not heard of;
//   - once the full state is stored (CompletePartialState), the events
//     stored meanwhile are checked again against their now complete
//     state before them, and those it refuses are marked rejected.

// ImportPartialJoin is ImportJoin for a send_join answer whose
// membership events were omitted: the room is marked partial before the
// join is stored (so that no event received meanwhile is checked as if
// its state were complete) and servers, the servers the resident server
// said were in the room, are remembered to fetch the full state from.
func (e *Engine) ImportPartialJoin(ctx context.Context, join gomatrixserverlib.PDU, state, authChain []gomatrixserverlib.PDU, servers []string) (*Event, error) {
	// (Rejoins of rooms this server holds state for are asked with full
	// state by the federation side; were one partial, completing it adds
	// what its state lacks all the same.)
	roomID := join.RoomID().String()
	mark := store.PartialStateRoom{RoomID: roomID, JoinEventID: join.EventID(), Servers: servers}
	if err := e.store.MarkPartialState(ctx, mark); err != nil {
		return nil, err
	}
	ev, err := e.ImportJoin(ctx, join, state, authChain)
	if err != nil {
		// The join did not happen: nothing is partial. Failing to clear
		// leaves a mark the resync skips (no join stored) until a later
		// join replaces it.
		_ = e.store.ClearPartialState(context.WithoutCancel(ctx), roomID)
		return nil, err
	}
	return ev, nil
}

// PartialState reports whether a room's state is partial and, if so,
// which servers are in it by the resident server's word.
//
// A room being completed is still partial until the states cached while
// it was are dropped: the store clears the mark in the completion's
// transaction, and a reader that saw it cleared and then read a cached
// state would take the partial one for the full one.
func (e *Engine) PartialState(ctx context.Context, roomID string) (bool, []string, error) {
	e.completingMu.Lock()
	named, completing := e.completing[roomID]
	e.completingMu.Unlock()
	if completing {
		return true, named, nil
	}
	r, err := e.store.PartialState(ctx, roomID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	return true, r.Servers, nil
}

// PartialStateRooms lists the rooms whose full state is still wanted.
func (e *Engine) PartialStateRooms(ctx context.Context) ([]store.PartialStateRoom, error) {
	return e.store.PartialStateRooms(ctx)
}

// partialBefore is the state an event received in a partial-state room
// is checked against: the state before it, with the event's own auth
// events for the keys this server does not know yet.
func partialBefore(before StateMap, authEvs []*Event) StateMap {
	var out StateMap
	for _, a := range authEvs {
		if a.StateKey() == nil {
			continue
		}
		if _, ok := before[a.Key()]; ok {
			continue
		}
		if out == nil {
			out = make(StateMap, len(before)+len(authEvs))
			for k, v := range before {
				out[k] = v
			}
		}
		out[a.Key()] = a.NID
	}
	if out == nil {
		return before
	}
	return out
}

// StateRef is a state event of a partial-state room's full state that
// the resync has checked and stored (StoreResyncSlice): what completing
// the state needs of it, without the event.
type StateRef struct {
	EventID string
	Key     roommodel.StateKey
	// Membership is an m.room.member event's membership.
	Membership string
}

// RefOf is the StateRef of a state event.
func RefOf(p gomatrixserverlib.PDU) StateRef {
	r := StateRef{EventID: p.EventID(), Key: roommodel.StateKey{Type: p.Type(), StateKey: *p.StateKey()}}
	if p.Type() == spec.MRoomMember {
		r.Membership, _ = p.Membership()
	}
	return r
}

// StoreResyncSlice stores a slice of a partial-state room's full state
// and its auth chain, checked by the caller (signatures, and each event
// allowed by its auth events), as outliers: the resync stores the state
// a slice at a time and lets each go before it parses the next, so that
// a room of 50,000 state events is never held parsed all at once.
func (e *Engine) StoreResyncSlice(ctx context.Context, roomID string, pdus []gomatrixserverlib.PDU) error {
	v, err := e.RoomVersion(ctx, roomID)
	if err != nil {
		return err
	}
	return e.storeOutliers(ctx, roomID, string(v.Version()), false, pdus)
}

// CompletePartialState stores the full state before a partial-state
// join (state and its auth chain, checked by the caller: signatures and
// every event allowed by its auth events) and completes the room's state
// with it (CompleteStoredPartialState).
func (e *Engine) CompletePartialState(ctx context.Context, roomID string, state, authChain []gomatrixserverlib.PDU) ([]string, error) {
	if err := e.StoreResyncSlice(ctx, roomID, append(append([]gomatrixserverlib.PDU{}, authChain...), state...)); err != nil {
		return nil, err
	}
	refs := make([]StateRef, 0, len(state))
	for _, p := range state {
		if p.StateKey() != nil && p.RoomID().String() == roomID {
			refs = append(refs, RefOf(p))
		}
	}
	return e.CompleteStoredPartialState(ctx, roomID, refs)
}

// CompleteStoredPartialState completes a partial-state room with the
// full state before its join, already stored (StoreResyncSlice): adds
// what the partial state lacked to every state of the room since,
// re-checks the events stored meanwhile and clears the room's mark. It
// returns the IDs of the events the full state refused.
func (e *Engine) CompleteStoredPartialState(ctx context.Context, roomID string, state []StateRef) ([]string, error) {
	refusedIDs, pos, err := e.completePartialState(ctx, roomID, state)
	if pos == 0 {
		return refusedIDs, err
	}
	// Told once the position is readable (outside the room's lock, which
	// events of the room holding earlier positions may wait for): a
	// /sync woken by it reads up to Current and must find the
	// completion in its range.
	e.stream.WaitReadable(ctx, pos)
	e.bus.Publish(context.WithoutCancel(ctx), PartialStateCompleted{RoomID: roomID, Position: pos})
	return refusedIDs, err
}

// completePartialState is CompleteStoredPartialState under the room's
// lock; pos is the position the completion took (0: not completed).
func (e *Engine) completePartialState(ctx context.Context, roomID string, state []StateRef) (refusedIDs []string, pos int64, err error) {
	mark, err := e.store.PartialState(ctx, roomID)
	if err != nil {
		return nil, 0, err
	}
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return nil, 0, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return nil, 0, refused("rooms: unknown room %s", roomID)
	}
	joins, err := e.EventsByID(ctx, []string{mark.JoinEventID})
	if err != nil {
		return nil, 0, err
	}
	if len(joins) == 0 || !joins[0].HasState() {
		// The mark outlived its join (see ImportPartialJoin).
		return nil, 0, e.store.ClearPartialState(ctx, roomID)
	}
	join := joins[0]
	partial, err := e.snapshotState(ctx, join.StateBefore)
	if err != nil {
		return nil, 0, err
	}
	ids := make([]string, len(state))
	for i, r := range state {
		ids[i] = r.EventID
	}
	// Only the numeric IDs of what was stored are read back (the keys
	// are the events' own), not the tens of thousands of events.
	nids, err := e.store.AcceptedEventNIDsByID(ctx, ids)
	if err != nil {
		return nil, 0, err
	}
	missing := map[roommodel.StateKey]int64{}
	memberships := map[string]string{}
	for _, r := range state {
		nid, ok := nids[r.EventID]
		if !ok {
			continue
		}
		// What the resident server did send is kept as it was: the
		// join was checked against it.
		if _, ok := partial[r.Key]; !ok {
			missing[r.Key] = nid
			if r.Key.Type == spec.MRoomMember {
				memberships[r.Key.StateKey] = r.Membership
			}
		}
	}
	// The completion takes a stream position of its own, so that an
	// incremental /sync can tell it happened in its range and send the
	// room again as newly joined (Synapse's un-partial-stated rooms
	// stream): a client that synced during the partial state has only
	// the few members it held.
	pos = e.stream.Next()
	e.completingMu.Lock()
	e.completing[roomID] = mark.Servers
	e.completingMu.Unlock()
	snapshots, err := e.store.CompletePartialState(ctx, roomID, pos, missing, memberships)
	if err != nil {
		e.completingMu.Lock()
		delete(e.completing, roomID)
		e.completingMu.Unlock()
		e.stream.Abandon(pos)
		return nil, 0, err
	}
	e.stream.Done(pos)
	e.forgetSnapshots(snapshots)
	// Under fullStateMu: an AwaitFullState that found the room partial
	// through completing has made its channel by now, and is woken here.
	e.fullStateMu.Lock()
	e.completingMu.Lock()
	delete(e.completing, roomID)
	e.completingMu.Unlock()
	if ch, ok := e.fullState[roomID]; ok {
		close(ch)
		delete(e.fullState, roomID)
	}
	e.fullStateMu.Unlock()
	// The head's state is reloaded with what was added.
	h.loaded = false
	if err := e.reloadHead(ctx, h); err != nil {
		return nil, pos, err
	}
	refusedIDs, err = e.recheckSince(ctx, h, join)
	return refusedIDs, pos, err
}

// PartialStateCompleted is published when a room joined with partial
// state has its full state (CompletePartialState), at the stream
// position the completion took: /sync wakes the room's local members
// and sends them the room again with its full state.
type PartialStateCompleted struct {
	RoomID   string `json:"room_id"`
	Position int64  `json:"position"`
}

// TopicPartialStateCompleted is the topic of PartialStateCompleted.
const TopicPartialStateCompleted = "rooms.partial_state_completed"

// Topic implements bus.Change.
func (PartialStateCompleted) Topic() string { return TopicPartialStateCompleted }

// AwaitFullState returns once a room's state is complete (at once for
// rooms not joined with partial state), or when ctx ends. The member
// lists wait for it, as Synapse's /members and /joined_members do: a
// list of the few members a partial state knows would be taken for the
// room's.
func (e *Engine) AwaitFullState(ctx context.Context, roomID string) error {
	// The mark is read under the lock CompletePartialState closes the
	// channel under, after clearing the mark: a channel made here is
	// either closed by it or never needed.
	e.fullStateMu.Lock()
	ch, ok := e.fullState[roomID]
	if !ok {
		partial, _, err := e.PartialState(ctx, roomID)
		if err != nil || !partial {
			e.fullStateMu.Unlock()
			return err
		}
		ch = make(chan struct{})
		e.fullState[roomID] = ch
	}
	e.fullStateMu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reloadHead reads a locked room's head again from the store.
func (e *Engine) reloadHead(ctx context.Context, h *roomHead) error {
	sh, err := e.store.LoadRoomHead(ctx, h.id)
	if err != nil {
		return err
	}
	state, err := e.snapshotState(ctx, sh.Snapshot)
	if err != nil {
		return err
	}
	h.loaded, h.snapshot, h.chainLen, h.state, h.depth, h.extremities = true, sh.Snapshot, sh.ChainLen, state, sh.Depth, sh.Extremities
	h.partial, err = e.isPartial(ctx, h.id)
	return err
}

// isPartial reads a room's partial-state mark.
func (e *Engine) isPartial(ctx context.Context, roomID string) (bool, error) {
	partial, _, err := e.PartialState(ctx, roomID)
	return partial, err
}

// recheckSince checks the events stored after a partial-state join
// against the complete state before each: an event its auth events
// allowed but the full state does not (a sender this server did not know
// was banned, say) is rejected, as it would have been on receipt with
// the full state. Synapse leaves this as a TODO (its issue 13880); a
// rejected event stays in clients' timelines already sent, but is no
// longer served, and a rejected state event no longer counts for the
// events after it only where a later event is checked again.
func (e *Engine) recheckSince(ctx context.Context, h *roomHead, join *Event) ([]string, error) {
	const page = 500
	var refused []string
	after := join.StreamPos
	for {
		nids, err := e.store.RoomEvents(ctx, h.id, after, e.stream.Current(), page, false)
		if err != nil {
			return refused, err
		}
		if len(nids) == 0 {
			return refused, nil
		}
		evs, err := e.EventsByNID(ctx, nids)
		if err != nil {
			return refused, err
		}
		for _, ev := range evs {
			after = max(after, ev.StreamPos)
			if ev.Status != roommodel.Accepted || ev.StateBefore == 0 || string(ev.SenderID()) == "" {
				continue
			}
			before, err := e.snapshotState(ctx, ev.StateBefore)
			if err != nil {
				return refused, err
			}
			err = e.allowedAt(ctx, ev.PDU, before)
			var auth *AuthError
			if errors.As(err, &auth) {
				if err := e.store.SetEventStatus(ctx, ev.NID, roommodel.Rejected); err != nil {
					return refused, err
				}
				e.events.Remove(ev.NID)
				refused = append(refused, ev.EventID())
				if err := e.dropExtremity(ctx, h, ev); err != nil {
					return refused, err
				}
				continue
			}
			if err != nil {
				return refused, err
			}
		}
		if len(nids) < page {
			return refused, nil
		}
	}
}

// dropExtremity takes a rejected event out of the room's forward
// extremities, its prev events standing in for it: a rejected event is
// never built on (other servers would be asked for the state at an
// event this server no longer serves).
func (e *Engine) dropExtremity(ctx context.Context, h *roomHead, ev *Event) error {
	if !slices.Contains(h.extremities, ev.EventID()) {
		return nil
	}
	var extremities []string
	for _, x := range h.extremities {
		if x != ev.EventID() {
			extremities = append(extremities, x)
		}
	}
	prevs, err := e.EventsByID(ctx, ev.PrevEventIDs())
	if err != nil {
		return err
	}
	for _, p := range prevs {
		if p.HasState() && p.Status == roommodel.Accepted && !slices.Contains(extremities, p.EventID()) {
			extremities = append(extremities, p.EventID())
		}
	}
	if len(extremities) == 0 {
		return nil
	}
	return e.moveHead(ctx, h, extremities, h.depth)
}

// ServersInRoomOrNamed is ServersInRoom of the state load reads (which
// it returns too), with, while the room's state is partial, the servers
// the resident server named (servers_in_room; Synapse's
// partial_state_rooms_servers): the state knows few members then, and
// events, backfill requests and EDUs must still reach the others.
//
// The partial mark is read before the state. Read after it, a
// completion landing between the two reads (under load, while the state
// was loaded) left a state read while partial, which lacks the resident's
// members, taken for a full one, and the named servers were dropped: a
// local join sent while the room's state was partial never reached the
// resident server (TestServersInRoomOrNamedReadsTheMarkFirst).
func (e *Engine) ServersInRoomOrNamed(ctx context.Context, roomID string, load func(context.Context) (StateMap, error)) ([]string, StateMap, error) {
	partial, named, err := e.PartialState(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	state, err := load(ctx)
	if err != nil {
		return nil, nil, err
	}
	servers, err := e.ServersInRoom(ctx, state)
	if err != nil || !partial {
		return servers, state, err
	}
	for _, s := range named {
		if !slices.Contains(servers, s) {
			servers = append(servers, s)
		}
	}
	return servers, state, nil
}
