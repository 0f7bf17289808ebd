package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// Membership changes that involve another server: the templates other
// servers ask for (make_join, make_leave, make_knock), the room state a
// remote join brings, invites countersigned by the invitee's server, and
// memberships of rooms this server is not in (out-of-band invites).

// Template is an unsigned event another server completes and signs, as
// make_join, make_leave and make_knock return it.
type Template struct {
	Version gomatrixserverlib.RoomVersion
	Event   json.RawMessage
}

// MembershipTemplate builds the membership event a remote user would
// send now, checked against the room's current state so that a user who
// may not join (leave, knock) is told before signing anything.
func (e *Engine) MembershipTemplate(ctx context.Context, roomID, userID, membership string) (*Template, error) {
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return nil, mxerr.NotFound("Unknown room %s", roomID)
	}
	content := map[string]any{"membership": membership}
	if membership == spec.Join {
		via, err := e.restrictedJoinAuthoriser(ctx, h, userID)
		if err != nil {
			return nil, err
		}
		if via != "" {
			content["join_authorised_via_users_server"] = via
		}
	}
	target := userID
	req := SendRequest{RoomID: roomID, Sender: userID, Type: spec.MRoomMember, StateKey: &target, Content: content}
	// Built and signed with this server's key only to run the auth rules;
	// the remote server signs the real one.
	pdu, auth, err := e.build(ctx, h, req)
	if err != nil {
		return nil, err
	}
	if err := authAllowed(pdu, auth); err != nil {
		return nil, mxerr.Forbidden("%s", authMessage(err))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(pdu.JSON(), &fields); err != nil {
		return nil, err
	}
	for _, k := range []string{"signatures", "hashes", "unsigned", "event_id"} {
		delete(fields, k)
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	return &Template{Version: h.version.Version(), Event: raw}, nil
}

// ImportJoin stores the room state a remote server returned from
// send_join (already checked: signatures, and every event authorised by
// its auth events) and then the join itself on top of it. The state and
// auth chain become outliers; the join becomes the room's only forward
// extremity and its state the room's current state. Events that happened
// meanwhile arrive later and are resolved against it.
func (e *Engine) ImportJoin(ctx context.Context, join gomatrixserverlib.PDU, state, authChain []gomatrixserverlib.PDU) (*Event, error) {
	roomID := join.RoomID().String()
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	defer e.unlockRoom(h)
	if known, err := e.EventsByID(ctx, []string{join.EventID()}); err != nil || len(known) > 0 {
		if err == nil {
			return known[0], nil
		}
		return nil, err
	}
	version, err := gomatrixserverlib.GetRoomVersion(join.Version())
	if err != nil {
		return nil, err
	}
	newRoom := h.version == nil
	if err := e.storeOutliers(ctx, roomID, string(version.Version()), newRoom, append(append([]gomatrixserverlib.PDU{}, authChain...), state...)); err != nil {
		return nil, err
	}
	// The state's keys are the events' own (in memory); only their
	// numeric IDs are read back, not the events, which may be tens of
	// thousands.
	before := make(StateMap, len(state))
	ids := make([]string, 0, len(state))
	for _, p := range state {
		ids = append(ids, p.EventID())
	}
	nids, err := e.store.EventNIDsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, p := range state {
		if nid, ok := nids[p.EventID()]; ok && p.StateKey() != nil && p.RoomID().String() == roomID {
			before[roommodel.StateKey{Type: p.Type(), StateKey: *p.StateKey()}] = nid
		}
	}
	if err := e.allowedAt(ctx, join, before); err != nil {
		var auth *AuthError
		if errors.As(err, &auth) {
			return nil, mxerr.Forbidden("The join is not allowed by the room state returned: %s", authMessage(err))
		}
		return nil, err
	}
	snapshot, err := e.storeSnapshot(ctx, roomID, before, 0)
	if err != nil {
		return nil, err
	}
	// The current state becomes the state before the join, so that
	// persisting the join as a "current" event leaves the whole state in
	// current_state, not only the join.
	changes := map[roommodel.StateKey]int64{}
	for k, n := range before {
		changes[k] = n
	}
	for k := range h.state {
		if _, ok := before[k]; !ok {
			changes[k] = 0
		}
	}
	memberships := map[string]string{}
	if err := e.memberships(ctx, changes, memberships); err != nil {
		return nil, err
	}
	if err := e.store.UpdateRoomHead(ctx, roomID, store.HeadUpdate{CurrentState: changes, Memberships: memberships,
		Snapshot: snapshot, Depth: join.Depth() - 1, Extremities: sortedIDs(join.PrevEventIDs())}); err != nil {
		return nil, err
	}
	h.loaded, h.version, h.state, h.snapshot, h.chainLen = true, version, before, snapshot, 0
	h.depth, h.extremities = join.Depth()-1, sortedIDs(join.PrevEventIDs())
	if h.partial, err = e.isPartial(ctx, roomID); err != nil {
		return nil, err
	}
	// The resident server forwards the join to the room's other servers
	// (it got it through send_join); sending it ourselves would deliver
	// it twice, and Synapse does not either (proactively_send false in
	// process_remote_join).
	return e.persist(ctx, h, join, persistOpts{stateBefore: snapshot, before: before, status: roommodel.Accepted, current: true, withheld: true})
}

// storeOutliers stores events known only as state or auth events: no
// stream position, no state of their own. A new room gets its row first.
func (e *Engine) storeOutliers(ctx context.Context, roomID, version string, newRoom bool, pdus []gomatrixserverlib.PDU) error {
	rows := make([]store.EventRow, 0, len(pdus))
	seen := map[string]bool{}
	for _, p := range pdus {
		if seen[p.EventID()] || p.RoomID().String() != roomID {
			continue
		}
		seen[p.EventID()] = true
		row := store.EventRow{EventID: p.EventID(), RoomID: roomID, Type: p.Type(), StateKey: p.StateKey(),
			Sender: string(p.SenderID()), Depth: p.Depth(), OriginTS: int64(p.OriginServerTS()),
			Status: roommodel.Accepted, JSON: string(p.JSON())}
		if p.Type() == spec.MRoomMember {
			m, _ := p.Membership()
			row.Membership = &m
		}
		rows = append(rows, row)
	}
	created := int64(0)
	if newRoom {
		created = time.Now().UnixMilli()
	}
	return e.store.PersistOutliers(ctx, version, created, rows)
}

// ReceiveOutOfBand stores a membership event of a room this server is
// not in: an invite from another server, or the leave that rejects it
// (through make_leave/send_leave), or a knock. It gets a stream position
// so that the user's /sync shows it, and becomes the user's membership
// in the current state, but the room stays unknown until someone joins.
// For rooms the server is in, it is an ordinary Receive.
func (e *Engine) ReceiveOutOfBand(ctx context.Context, pdu gomatrixserverlib.PDU) (*Event, error) {
	roomID := pdu.RoomID().String()
	if pdu.Type() != spec.MRoomMember || pdu.StateKey() == nil {
		return nil, refused("rooms: out-of-band event %s is not a membership", pdu.EventID())
	}
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	known := h.version != nil
	e.unlockRoom(h)
	if known {
		if in, err := e.ServerInRoom(ctx, roomID, e.opts.ServerName); err != nil || in {
			if err != nil {
				return nil, err
			}
			return e.Receive(ctx, pdu)
		}
	}
	if evs, err := e.EventsByID(ctx, []string{pdu.EventID()}); err != nil || len(evs) > 0 {
		if err == nil {
			return evs[0], nil
		}
		return nil, err
	}
	h, err = e.lockRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	defer e.unlockRoom(h)
	membership, _ := pdu.Membership()
	ne := store.NewEvent{
		Row: store.EventRow{EventID: pdu.EventID(), RoomID: roomID, Type: pdu.Type(), StateKey: pdu.StateKey(),
			Sender: string(pdu.SenderID()), Depth: pdu.Depth(), OriginTS: int64(pdu.OriginServerTS()),
			Status: roommodel.Accepted, Membership: &membership, JSON: string(pdu.JSON()),
			// Such an event travels through the handshake that made it (or
			// nowhere): this server is not in the room to send it.
			Withheld: true},
		CurrentState: map[roommodel.StateKey]int64{{Type: spec.MRoomMember, StateKey: *pdu.StateKey()}: store.ThisEvent},
		Memberships:  map[string]string{*pdu.StateKey(): membership},
	}
	pos := e.stream.Next()
	ne.Row.StreamPos = pos
	nid, _, err := e.store.PersistEvent(ctx, ne)
	if err != nil {
		e.stream.Abandon(pos)
		return nil, err
	}
	e.stream.Done(pos)
	ev := &Event{PDU: pdu, NID: nid, StreamPos: pos, Status: roommodel.Accepted}
	e.cacheEvent(ev)
	e.noteMembership(*pdu.StateKey(), pos)
	e.notify(h, Notification{Event: ev, Membership: membership})
	return ev, nil
}

// sendCountersigned is sendLocked for events another server must sign
// first (an invite of one of its users): countersign gets the built event
// and returns it with the other server's signature.
func (e *Engine) sendCountersigned(ctx context.Context, h *roomHead, req SendRequest, countersign func(context.Context, gomatrixserverlib.PDU) (gomatrixserverlib.PDU, error)) (*Event, error) {
	pdu, auth, err := e.build(ctx, h, req)
	if err != nil {
		return nil, err
	}
	if err := authAllowed(pdu, auth); err != nil {
		return nil, mxerr.Forbidden("%s", authMessage(err))
	}
	// The policy server signs first: the invitee's server then sees (and
	// keeps) its signature.
	if pdu, err = e.policySign(ctx, h, pdu); err != nil {
		return nil, err
	}
	signed, err := countersign(ctx, pdu)
	if err != nil {
		return nil, err
	}
	if signed.EventID() != pdu.EventID() {
		return nil, mxerr.Unknown("The invited user's server changed the invite")
	}
	return e.persist(ctx, h, signed, persistOpts{stateBefore: h.snapshot, before: h.state, chainLen: h.chainLen, txn: req.Txn, current: true})
}

// Extremities returns a room's forward extremities.
func (e *Engine) Extremities(ctx context.Context, roomID string) ([]string, int64, error) {
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return nil, 0, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return nil, 0, mxerr.NotFound("Unknown room %s", roomID)
	}
	return append([]string(nil), h.extremities...), h.depth, nil
}

// ReceiveWithState receives an event some of whose prev events this
// server could not get (a gap too large for get_missing_events): the
// sending server's state after each missing prev event, checked by the
// caller, stands in for them (server-server spec "Retrieving event
// authorization information", Synapse's _resolve_state_at_missing_prevs).
// The states and their auth chain are stored as outliers; the state
// before the event is the resolution of every prev event's state.
func (e *Engine) ReceiveWithState(ctx context.Context, pdu gomatrixserverlib.PDU, prevStates map[string][]gomatrixserverlib.PDU, authChain []gomatrixserverlib.PDU) (*Event, error) {
	h, known, err := e.lockForInput(ctx, pdu)
	if err != nil || known != nil {
		return known, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return nil, errUnknownRoom(pdu)
	}
	all := append([]gomatrixserverlib.PDU{}, authChain...)
	for _, st := range prevStates {
		all = append(all, st...)
	}
	authEvs, err := e.storeWithAuth(ctx, h, pdu, all)
	if err != nil {
		return nil, err
	}
	snapshots, err := e.prevSnapshots(ctx, h, pdu, prevStates)
	if err != nil {
		return nil, err
	}
	before, err := e.resolve(ctx, h, snapshots)
	if err != nil {
		return nil, err
	}
	beforeID := snapshots[0]
	if len(snapshots) > 1 {
		if beforeID, err = e.storeSnapshot(ctx, h.id, before, h.snapshot); err != nil {
			return nil, err
		}
	}
	link, err := e.store.LoadSnapshot(ctx, beforeID)
	if err != nil {
		return nil, err
	}
	// Across a gap this server's view of the room may be stale (a member
	// who joined in the gap is unknown here): the event is soft-failed
	// against the current state resolved with the state its server gave,
	// as Synapse's _check_for_soft_fail does when given the state.
	current := h.state
	if beforeID != h.snapshot {
		if current, err = e.resolve(ctx, h, []int64{h.snapshot, beforeID}); err != nil {
			return nil, err
		}
	}
	// The missing prev events are a hole in the room's history: positions
	// are kept for it below the event, for /messages to backfill into.
	low := e.stream.Skip(gapPositions(pdu.Depth(), h.depth))
	ev, err := e.receiveAt(ctx, h, pdu, authEvs, before, beforeID, link.ChainLen, current, "")
	if err != nil {
		return nil, err
	}
	return ev, e.recordGap(ctx, ev, low)
}

// prevSnapshots lists the state snapshots after each prev event: the
// stored one for prev events with state, a new one from prevStates for
// the others.
func (e *Engine) prevSnapshots(ctx context.Context, h *roomHead, pdu gomatrixserverlib.PDU, prevStates map[string][]gomatrixserverlib.PDU) ([]int64, error) {
	prevEvs, _, err := e.knownEvents(ctx, pdu.PrevEventIDs())
	if err != nil {
		return nil, err
	}
	var out []int64
	have := map[string]bool{}
	for _, p := range prevEvs {
		if p.HasState() {
			have[p.EventID()] = true
			if !slices.Contains(out, p.StateAfter) {
				out = append(out, p.StateAfter)
			}
		}
	}
	for _, id := range pdu.PrevEventIDs() {
		st, ok := prevStates[id]
		if have[id] || !ok {
			continue
		}
		m, err := e.stateMapOf(ctx, st)
		if err != nil {
			return nil, err
		}
		snap, err := e.storeSnapshot(ctx, h.id, m, h.snapshot)
		if err != nil {
			return nil, err
		}
		out = append(out, snap)
	}
	if len(out) == 0 {
		return nil, &ErrMissingEvents{Prev: pdu.PrevEventIDs()}
	}
	return out, nil
}

// BackfillPoints returns the prev events of the room's oldest stored
// event that this server does not have: where history continues on other
// servers. It is empty when the room's history starts here (its oldest
// event is the create event).
func (e *Engine) BackfillPoints(ctx context.Context, roomID string) ([]string, error) {
	id, err := e.store.OldestEvent(ctx, roomID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	evs, err := e.EventsByID(ctx, []string{id})
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	_, missing, err := e.knownEvents(ctx, evs[0].PrevEventIDs())
	if err != nil {
		return nil, err
	}
	prevs, _, err := e.knownEvents(ctx, evs[0].PrevEventIDs())
	if err != nil {
		return nil, err
	}
	for _, p := range prevs {
		if !p.HasState() {
			missing = append(missing, p.EventID())
		}
	}
	return missing, nil
}

// ReceiveHistorical stores an event older than the room's oldest here,
// fetched with /backfill, at stream position pos (from
// ReserveHistorical, below every other, so that /messages pages to it
// and /sync never shows it as new). It is checked against its auth
// events and the state before it (from its prev events, or stateBefore
// from the server it came from when those are missing) but never
// soft-failed or made part of the room's head.
func (e *Engine) ReceiveHistorical(ctx context.Context, pdu gomatrixserverlib.PDU, pos int64, stateBefore, authChain []gomatrixserverlib.PDU) (*Event, error) {
	h, known, err := e.lockForInput(ctx, pdu)
	if err != nil || known != nil {
		return known, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return nil, errUnknownRoom(pdu)
	}
	authEvs, err := e.storeWithAuth(ctx, h, pdu, append(append([]gomatrixserverlib.PDU{}, authChain...), stateBefore...))
	if err != nil {
		return nil, err
	}
	before, beforeID, chainLen, err := e.historicalStateBefore(ctx, h, pdu, stateBefore)
	if err != nil {
		return nil, err
	}
	status, err := e.receivedStatus(ctx, pdu, h.version, authEvs, before, nil)
	if err != nil {
		return nil, fmt.Errorf("rooms: checking %s: %w", pdu.EventID(), err)
	}
	return e.write(ctx, h, pdu, persistOpts{stateBefore: beforeID, before: before, chainLen: chainLen, status: status}, pos)
}

// stateMapOf is the state a server sent as a list of events, as stored
// here: the accepted state events among them (rejected ones and events
// not stored are left out).
func (e *Engine) stateMapOf(ctx context.Context, state []gomatrixserverlib.PDU) (StateMap, error) {
	ids := make([]string, len(state))
	for i, p := range state {
		ids[i] = p.EventID()
	}
	evs, err := e.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	m := StateMap{}
	for _, ev := range evs {
		if ev.StateKey() != nil && ev.Status != roommodel.Rejected {
			m[ev.Key()] = ev.NID
		}
	}
	return m, nil
}

// historicalStateBefore is the state before a backfilled event: from its
// prev events when all are here with state, else the state its server
// sent.
func (e *Engine) historicalStateBefore(ctx context.Context, h *roomHead, pdu gomatrixserverlib.PDU, stateBefore []gomatrixserverlib.PDU) (StateMap, int64, int64, error) {
	prevs, missing, err := e.knownEvents(ctx, pdu.PrevEventIDs())
	if err != nil {
		return nil, 0, 0, err
	}
	allState := len(missing) == 0
	for _, p := range prevs {
		allState = allState && p.HasState()
	}
	if allState && len(prevs) > 0 {
		return e.stateBeforePrevs(ctx, h, prevs)
	}
	if stateBefore == nil {
		return nil, 0, 0, &ErrMissingEvents{Prev: pdu.PrevEventIDs()}
	}
	m, err := e.stateMapOf(ctx, stateBefore)
	if err != nil {
		return nil, 0, 0, err
	}
	id, err := e.storeSnapshot(ctx, h.id, m, h.snapshot)
	if err != nil {
		return nil, 0, 0, err
	}
	link, err := e.store.LoadSnapshot(ctx, id)
	return m, id, link.ChainLen, err
}

// ReserveHistorical sets aside n stream positions below every other for
// a batch of backfilled events and returns the lowest: a batch stored
// oldest first gives its oldest event the lowest position.
func (e *Engine) ReserveHistorical(ctx context.Context, n int) (int64, error) {
	e.backfillMu.Lock()
	defer e.backfillMu.Unlock()
	if !e.backfillLoaded {
		lowest, err := e.store.MinStreamPos(ctx)
		if err != nil {
			return 0, err
		}
		e.backfillPos, e.backfillLoaded = min(lowest, 0), true
	}
	e.backfillPos -= int64(n)
	return e.backfillPos, nil
}
