package rooms

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// ErrMissingEvents is returned by Receive when the event's prev_events or
// auth_events are not known yet; the caller (federation) fetches them
// and tries again.
type ErrMissingEvents struct {
	Prev, Auth []string
}

func (e *ErrMissingEvents) Error() string {
	return fmt.Sprintf("rooms: missing %d prev_events and %d auth_events", len(e.Prev), len(e.Auth))
}

// Receive takes an event built elsewhere (another server, or a test
// playing one), whose signatures and hashes the caller has checked. It
// runs the spec's checks on receipt of a PDU: auth against its
// auth_events (else rejected), against the state before it, resolved
// from its prev_events (else rejected), and against the current state
// (else soft-failed). Accepted events become forward extremities and the
// room's current state is re-resolved when the extremities disagree.
func (e *Engine) Receive(ctx context.Context, pdu gomatrixserverlib.PDU) (*Event, error) {
	return e.receive(ctx, pdu, "")
}

// ReceiveOnBehalf is Receive for an event another server handed over in
// a membership handshake (send_join, send_leave, send_knock): that
// server's event reaches the rest of the room only through this one, so
// the event is recorded as this server's to forward to every other
// server in the room but origin, which has it (Synapse's
// send_on_behalf_of). An event already here is not forwarded again.
func (e *Engine) ReceiveOnBehalf(ctx context.Context, pdu gomatrixserverlib.PDU, origin string) (*Event, error) {
	return e.receive(ctx, pdu, origin)
}

func (e *Engine) receive(ctx context.Context, pdu gomatrixserverlib.PDU, onBehalfOf string) (*Event, error) {
	h, known, err := e.lockForInput(ctx, pdu)
	if err != nil || known != nil {
		return known, err
	}
	defer e.unlockRoom(h)
	if pdu.Type() == spec.MRoomCreate && pdu.StateKey() != nil && *pdu.StateKey() == "" && h.version == nil {
		return e.receiveCreate(ctx, h, pdu)
	}
	if h.version == nil {
		return nil, errUnknownRoom(pdu)
	}

	authEvs, missingAuth, err := e.knownEvents(ctx, pdu.AuthEventIDs())
	if err != nil {
		return nil, err
	}
	prevEvs, missingPrev, err := e.knownEvents(ctx, pdu.PrevEventIDs())
	if err != nil {
		return nil, err
	}
	// Prev events known only as outliers have no state to build on.
	for i := 0; i < len(prevEvs); i++ {
		if !prevEvs[i].HasState() {
			missingPrev = append(missingPrev, prevEvs[i].EventID())
			prevEvs = slices.Delete(prevEvs, i, i+1)
			i--
		}
	}
	if len(missingAuth) > 0 || len(missingPrev) > 0 {
		return nil, &ErrMissingEvents{Prev: missingPrev, Auth: missingAuth}
	}

	// The state before the event, from its prev_events.
	before, beforeID, chainLen, err := e.stateBeforePrevs(ctx, h, prevEvs)
	if err != nil {
		return nil, err
	}
	return e.receiveAt(ctx, h, pdu, authEvs, before, beforeID, chainLen, h.state, onBehalfOf)
}

// lockForInput locks the room of an event received from elsewhere. An
// event already stored with its state is returned instead, the room
// unlocked: receiving is idempotent, and an outlier is received again to
// gain its place.
func (e *Engine) lockForInput(ctx context.Context, pdu gomatrixserverlib.PDU) (*roomHead, *Event, error) {
	h, err := e.lockRoom(ctx, pdu.RoomID().String())
	if err != nil {
		return nil, nil, err
	}
	known, err := e.EventsByID(ctx, []string{pdu.EventID()})
	if err != nil || (len(known) > 0 && known[0].HasState()) {
		e.unlockRoom(h)
		if err != nil {
			return nil, nil, err
		}
		return nil, known[0], nil
	}
	return h, nil, nil
}

func errUnknownRoom(pdu gomatrixserverlib.PDU) error {
	return refused("rooms: event %s is for unknown room %s", pdu.EventID(), pdu.RoomID().String())
}

// storeWithAuth stores events that come with one received from another
// server (its auth chain, the state it was sent with) as outliers, and
// returns its auth events, all of which must then be here.
func (e *Engine) storeWithAuth(ctx context.Context, h *roomHead, pdu gomatrixserverlib.PDU, outliers []gomatrixserverlib.PDU) ([]*Event, error) {
	if err := e.storeOutliers(ctx, h.id, string(h.version.Version()), false, outliers); err != nil {
		return nil, err
	}
	authEvs, missingAuth, err := e.knownEvents(ctx, pdu.AuthEventIDs())
	if err != nil {
		return nil, err
	}
	if len(missingAuth) > 0 {
		return nil, &ErrMissingEvents{Auth: missingAuth}
	}
	return authEvs, nil
}

// receiveAt runs the checks on receipt of an event whose state before it
// is known, stores it and moves the room's head. current is the state
// it is soft-failed against (the room's current state, but see
// ReceiveWithState); onBehalfOf is the server it is forwarded for (see
// ReceiveOnBehalf). A failure to check stores nothing (see
// receivedStatus). In a partial-state room the event is checked as
// partial.go says.
func (e *Engine) receiveAt(ctx context.Context, h *roomHead, pdu gomatrixserverlib.PDU, authEvs []*Event, before StateMap, beforeID, chainLen int64, current StateMap, onBehalfOf string) (*Event, error) {
	checkBefore := before
	if h.partial {
		checkBefore, current = partialBefore(before, authEvs), nil
	}
	status, err := e.receivedStatus(ctx, pdu, h.version, authEvs, checkBefore, current)
	if err == nil && status == roommodel.Accepted && current != nil {
		var checked gomatrixserverlib.PDU
		if checked, status, err = e.policyVerdict(ctx, h.version, pdu, current); err == nil {
			pdu = checked
		}
	}
	if err != nil {
		return nil, fmt.Errorf("rooms: checking %s: %w", pdu.EventID(), err)
	}

	extendsAll := status == roommodel.Accepted && containsAll(pdu.PrevEventIDs(), h.extremities)
	ev, err := e.persist(ctx, h, pdu, persistOpts{stateBefore: beforeID, before: before, chainLen: chainLen,
		status: status, current: extendsAll, onBehalfOf: onBehalfOf})
	if err != nil || status != roommodel.Accepted || extendsAll {
		return ev, err
	}
	// A fork: the event joins the other extremities and the current state
	// is the resolution of their states.
	extremities := []string{pdu.EventID()}
	for _, x := range h.extremities {
		if !slices.Contains(pdu.PrevEventIDs(), x) {
			extremities = append(extremities, x)
		}
	}
	return ev, e.moveHead(ctx, h, extremities, max(h.depth, pdu.Depth()))
}

// receiveCreate stores the create event of a room the server joins.
func (e *Engine) receiveCreate(ctx context.Context, h *roomHead, pdu gomatrixserverlib.PDU) (*Event, error) {
	if h.version != nil {
		return nil, refused("rooms: second create event %s for %s", pdu.EventID(), pdu.RoomID().String())
	}
	v, err := gomatrixserverlib.GetRoomVersion(pdu.Version())
	if err != nil {
		return nil, &RefusedError{Err: err}
	}
	h.version = v
	if err := gomatrixserverlib.Allowed(pdu, mustAuthEvents(nil), userIDForSender); err != nil {
		h.version = nil
		return nil, refused("rooms: create event %s: %w", pdu.EventID(), err)
	}
	ev, err := e.persist(ctx, h, pdu, persistOpts{current: true, roomVersion: string(pdu.Version())})
	if err != nil {
		h.version = nil
	}
	return ev, err
}

func mustAuthEvents(pdus []gomatrixserverlib.PDU) *gomatrixserverlib.AuthEvents {
	a, _ := gomatrixserverlib.NewAuthEvents(pdus)
	return a
}

// knownEvents loads events by ID and lists the ones not stored.
func (e *Engine) knownEvents(ctx context.Context, ids []string) ([]*Event, []string, error) {
	evs, err := e.EventsByID(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	var missing []string
	for _, id := range ids {
		if !slices.ContainsFunc(evs, func(ev *Event) bool { return ev.EventID() == id }) {
			missing = append(missing, id)
		}
	}
	return evs, missing, nil
}

// authByOwnEvents checks an event against its own auth_events: an
// *AuthError when they do not allow it (rejected auth events, auth
// events of another room, the wrong selection, the rules), any other
// error when it could not be checked.
func (e *Engine) authByOwnEvents(ctx context.Context, pdu gomatrixserverlib.PDU, authEvs []*Event, v gomatrixserverlib.IRoomVersion) error {
	pdus := make([]gomatrixserverlib.PDU, 0, len(authEvs)+1)
	for _, a := range authEvs {
		if a.Status == roommodel.Rejected || a.RoomID().String() != pdu.RoomID().String() {
			return &AuthError{Err: fmt.Errorf("auth event %s is rejected or of another room", a.EventID())}
		}
		pdus = append(pdus, a.PDU)
	}
	if badAuthEventList(pdu, authEvs, v) {
		return &AuthError{Err: errors.New("auth_events are not the ones the event needs")}
	}
	if v.DomainlessRoomIDs() {
		// v12 leaves the create event out of auth_events; the room ID
		// names it. Not finding it is a decision; failing to look is not.
		create, err := e.EventsByID(ctx, []string{"$" + pdu.RoomID().String()[1:]})
		if err != nil {
			return err
		}
		if len(create) == 1 {
			pdus = append(pdus, create[0].PDU)
		}
	}
	auth, err := gomatrixserverlib.NewAuthEvents(pdus)
	if err != nil {
		return &AuthError{Err: err}
	}
	if err := authAllowed(pdu, auth); err != nil {
		return &AuthError{Err: err}
	}
	return nil
}

// allowedAt checks an event against the auth events a state selects: an
// *AuthError when the rules refuse it, any other error when the state
// could not be loaded.
func (e *Engine) allowedAt(ctx context.Context, pdu gomatrixserverlib.PDU, state StateMap) error {
	auth, err := e.authEvents(ctx, state, authStateNeeded(pdu))
	if err != nil {
		return err
	}
	if err := authAllowed(pdu, auth); err != nil {
		return &AuthError{Err: err}
	}
	return nil
}

// stateBeforePrevs is the state before an event: the state after its
// prev_events, resolved when they disagree. It returns the state, its
// snapshot ID and that snapshot's chain length.
func (e *Engine) stateBeforePrevs(ctx context.Context, h *roomHead, prevs []*Event) (StateMap, int64, int64, error) {
	var ids []int64
	for _, p := range prevs {
		if !slices.Contains(ids, p.StateAfter) {
			ids = append(ids, p.StateAfter)
		}
	}
	if len(ids) == 1 {
		s, err := e.snapshotState(ctx, ids[0])
		if err != nil {
			return nil, 0, 0, err
		}
		link, err := e.store.LoadSnapshot(ctx, ids[0])
		return s, ids[0], link.ChainLen, err
	}
	resolved, err := e.resolve(ctx, h, ids)
	if err != nil {
		return nil, 0, 0, err
	}
	id, err := e.storeSnapshot(ctx, h.id, resolved, ids[0])
	return resolved, id, 0, err
}

// moveHead sets the room's extremities and its current state: the
// resolution of the states after the extremities.
func (e *Engine) moveHead(ctx context.Context, h *roomHead, extremities []string, depth int64) error {
	evs, err := e.EventsByID(ctx, extremities)
	if err != nil {
		return err
	}
	var ids []int64
	for _, ev := range evs {
		if !slices.Contains(ids, ev.StateAfter) {
			ids = append(ids, ev.StateAfter)
		}
	}
	current, err := e.resolve(ctx, h, ids)
	if err != nil {
		return err
	}
	snapshot := ids[0]
	if len(ids) > 1 {
		if snapshot, err = e.storeSnapshot(ctx, h.id, current, h.snapshot); err != nil {
			return err
		}
	}
	changes := map[roommodel.StateKey]int64{}
	memberships := map[string]string{}
	for k, n := range current {
		if h.state[k] != n {
			changes[k] = n
		}
	}
	for k := range h.state {
		if _, ok := current[k]; !ok {
			changes[k] = 0
		}
	}
	if err := e.memberships(ctx, changes, memberships); err != nil {
		return err
	}
	extremities = sortedIDs(extremities)
	if err := e.updateHead(ctx, h.id, store.HeadUpdate{CurrentState: changes, Memberships: memberships,
		Snapshot: snapshot, Depth: depth, Extremities: extremities}); err != nil {
		return err
	}
	h.state, h.snapshot, h.depth, h.extremities, h.chainLen = current, snapshot, depth, extremities, 0
	return nil
}

// memberships fills in the memberships of changed m.room.member keys.
func (e *Engine) memberships(ctx context.Context, changes map[roommodel.StateKey]int64, out map[string]string) error {
	var nids []int64
	for k, n := range changes {
		if k.Type == spec.MRoomMember && n != 0 {
			nids = append(nids, n)
		}
	}
	evs, err := e.EventsByNID(ctx, nids)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		m, _ := ev.Membership()
		out[*ev.StateKey()] = m
	}
	return nil
}

// storeSnapshot persists a computed state as a delta over base.
func (e *Engine) storeSnapshot(ctx context.Context, roomID string, state StateMap, base int64) (int64, error) {
	baseState, err := e.snapshotState(ctx, base)
	if err != nil {
		return 0, err
	}
	link, err := e.store.LoadSnapshot(ctx, base)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	d := store.SnapshotDelta{Parent: base, ChainLen: link.ChainLen + 1, Changes: map[roommodel.StateKey]int64{}}
	if base == 0 || d.ChainLen > maxChainLen {
		d = store.SnapshotDelta{Changes: map[roommodel.StateKey]int64{}}
		baseState = StateMap{}
	}
	for k, n := range state {
		if baseState[k] != n {
			d.Changes[k] = n
		}
	}
	for k := range baseState {
		if _, ok := state[k]; !ok {
			d.Changes[k] = 0
		}
	}
	id, err := e.store.CreateSnapshot(ctx, roomID, d)
	if err != nil {
		return 0, err
	}
	e.cacheState(id, state)
	return id, nil
}

// resolve runs the room version's state resolution over several states.
func (e *Engine) resolve(ctx context.Context, h *roomHead, snapshots []int64) (StateMap, error) {
	if len(snapshots) == 1 {
		return e.snapshotState(ctx, snapshots[0])
	}
	var all []*Event
	seen := map[int64]bool{}
	for _, id := range snapshots {
		s, err := e.snapshotState(ctx, id)
		if err != nil {
			return nil, err
		}
		var nids []int64
		for _, n := range s {
			if !seen[n] {
				seen[n] = true
				nids = append(nids, n)
			}
		}
		evs, err := e.EventsByNID(ctx, nids)
		if err != nil {
			return nil, err
		}
		all = append(all, evs...)
	}
	chain, err := e.authChain(ctx, all)
	if err != nil {
		return nil, err
	}
	rejected := map[string]bool{}
	pdus := make([]gomatrixserverlib.PDU, len(all))
	for i, ev := range all {
		pdus[i] = ev.PDU
	}
	chainPDUs := make([]gomatrixserverlib.PDU, 0, len(chain))
	byID := map[string]*Event{}
	for _, ev := range append(all, chain...) {
		byID[ev.EventID()] = ev
		if ev.Status == roommodel.Rejected {
			rejected[ev.EventID()] = true
		}
	}
	for _, ev := range chain {
		chainPDUs = append(chainPDUs, ev.PDU)
	}
	resolved, err := gomatrixserverlib.ResolveConflicts(h.version.Version(), pdus, chainPDUs, userIDForSender,
		func(id string) bool { return rejected[id] })
	if err != nil {
		// Computed from stored events only: the same input fails again.
		return nil, &RefusedError{Err: fmt.Errorf("rooms: resolving state: %w", err)}
	}
	out := make(StateMap, len(resolved))
	for _, p := range resolved {
		if ev, ok := byID[p.EventID()]; ok && p.StateKey() != nil {
			out[roommodel.StateKey{Type: p.Type(), StateKey: *p.StateKey()}] = ev.NID
		}
	}
	return out, nil
}

// authChain loads the transitive auth events of evs.
func (e *Engine) authChain(ctx context.Context, evs []*Event) ([]*Event, error) {
	seen := map[string]bool{}
	var out []*Event
	frontier := []string{}
	for _, ev := range evs {
		frontier = append(frontier, ev.AuthEventIDs()...)
	}
	for len(frontier) > 0 {
		var next []string
		var want []string
		for _, id := range frontier {
			if !seen[id] {
				seen[id] = true
				want = append(want, id)
			}
		}
		loaded, err := e.EventsByID(ctx, want)
		if err != nil {
			return nil, err
		}
		for _, ev := range loaded {
			out = append(out, ev)
			next = append(next, ev.AuthEventIDs()...)
		}
		frontier = next
	}
	return out, nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
