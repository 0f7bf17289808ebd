package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"sort"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// maxEventBytes is the spec's limit on a PDU's size.
const maxEventBytes = 65536

// maxPrevEvents caps prev_events of local events (Synapse uses 10).
const maxPrevEvents = 10

// maxChainLen bounds snapshot delta chains: after this many deltas a
// full snapshot is stored, so that loading a state never walks far.
const maxChainLen = 64

// Txn identifies the client request that sent an event.
type Txn struct {
	Localpart, Device, ID string
}

// SendRequest describes a new event from a local user.
type SendRequest struct {
	RoomID   string
	Sender   string
	Type     string
	StateKey *string
	// Content is the event content: a json.RawMessage or anything that
	// marshals to a JSON object.
	Content any
	Redacts string
	Txn     *Txn
}

// Send builds, signs, authorises and persists a local event. A repeated
// transaction ID returns the event the first request sent.
func (e *Engine) Send(ctx context.Context, req SendRequest) (*Event, error) {
	h, err := e.lockRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	defer h.mu.Unlock()
	if h.version == nil {
		return nil, mxerr.Forbidden("Unknown room %s", req.RoomID)
	}
	if req.Txn != nil {
		id, err := e.store.EventByTxn(ctx, req.Txn.Localpart, req.Txn.Device, req.Txn.ID, req.RoomID)
		if err == nil {
			return e.Event(ctx, id)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	return e.sendLocked(ctx, h, req)
}

// sendLocked builds and persists an event on a locked, loaded room head.
func (e *Engine) sendLocked(ctx context.Context, h *roomHead, req SendRequest) (*Event, error) {
	pdu, auth, err := e.build(ctx, h, req)
	if err != nil {
		return nil, err
	}
	if err := gomatrixserverlib.Allowed(pdu, auth, userIDForSender); err != nil {
		return nil, mxerr.Forbidden("%s", authMessage(err))
	}
	return e.persist(ctx, h, pdu, persistOpts{stateBefore: h.snapshot, before: h.state, chainLen: h.chainLen, txn: req.Txn, current: true})
}

// authMessage strips gomatrixserverlib's prefix from an auth failure.
func authMessage(err error) string {
	var na *gomatrixserverlib.NotAllowed
	if errors.As(err, &na) {
		return na.Message
	}
	return err.Error()
}

// build makes and signs the PDU for a request on top of the room head.
func (e *Engine) build(ctx context.Context, h *roomHead, req SendRequest) (gomatrixserverlib.PDU, *gomatrixserverlib.AuthEvents, error) {
	content, err := marshalContent(req.Content)
	if err != nil {
		return nil, nil, err
	}
	prevs := h.extremities
	if len(prevs) > maxPrevEvents {
		prevs = prevs[len(prevs)-maxPrevEvents:]
	}
	proto := gomatrixserverlib.ProtoEvent{
		SenderID: req.Sender, RoomID: h.id, Type: req.Type, StateKey: req.StateKey,
		PrevEvents: append([]string{}, prevs...), Redacts: req.Redacts, Depth: h.depth + 1, Content: spec.RawJSON(content),
	}
	if h.id == "" {
		proto.PrevEvents = []string{}
	}
	if req.Type == spec.MRoomRedaction && h.version != nil && req.Redacts != "" {
		// From v11 the redacted event ID also lives in the content.
		if _, v11 := redactsInContent(h.version); v11 {
			withRedacts, err := withContentField(content, "redacts", req.Redacts)
			if err != nil {
				return nil, nil, err
			}
			proto.Content = spec.RawJSON(withRedacts)
		}
	}
	needed, err := gomatrixserverlib.StateNeededForProtoEvent(&proto)
	if err != nil {
		return nil, nil, mxerr.BadJSON("%v", err)
	}
	auth, err := e.authEvents(ctx, h.state, needed)
	if err != nil {
		return nil, nil, err
	}
	builder := h.version.NewEventBuilderFromProtoEvent(&proto)
	if err := builder.AddAuthEvents(auth); err != nil {
		return nil, nil, err
	}
	pdu, err := builder.Build(e.now(), spec.ServerName(e.opts.ServerName), e.opts.KeyID, e.opts.PrivateKey)
	if err != nil {
		return nil, nil, mxerr.BadJSON("Invalid event: %v", err)
	}
	if len(pdu.JSON()) > maxEventBytes {
		return nil, nil, mxerr.TooLarge("Event is larger than %d bytes", maxEventBytes)
	}
	return pdu, auth, nil
}

// redactsInContent reports whether the room version moved "redacts"
// into the content (v11 and later).
func redactsInContent(v gomatrixserverlib.IRoomVersion) (string, bool) {
	switch v.Version() {
	case "1", "2", "3", "4", "5", "6", "7", "8", "9", "10":
		return "", false
	}
	return "redacts", true
}

func marshalContent(c any) (json.RawMessage, error) {
	switch v := c.(type) {
	case nil:
		return json.RawMessage("{}"), nil
	case json.RawMessage:
		return v, nil
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, mxerr.BadJSON("Invalid content: %v", err)
	}
	return raw, nil
}

func withContentField(content json.RawMessage, key string, value any) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(content, &m); err != nil {
		return nil, mxerr.BadJSON("Content must be an object")
	}
	raw, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	m[key] = raw
	return json.Marshal(m)
}

// authEvents loads the state events an event's auth needs from a state.
func (e *Engine) authEvents(ctx context.Context, state StateMap, needed gomatrixserverlib.StateNeeded) (*gomatrixserverlib.AuthEvents, error) {
	var keys []store.StateKey
	for _, t := range needed.Tuples() {
		keys = append(keys, store.StateKey{Type: t.EventType, StateKey: t.StateKey})
	}
	evs, err := e.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	pdus := make([]gomatrixserverlib.PDU, 0, len(evs))
	for _, ev := range evs {
		pdus = append(pdus, ev.PDU)
	}
	return gomatrixserverlib.NewAuthEvents(pdus)
}

// persistOpts says how an event relates to the room.
type persistOpts struct {
	stateBefore int64    // snapshot of the state before the event
	before      StateMap // that state
	status      int
	txn         *Txn
	// current: the event builds on the whole current state (a local event,
	// or a remote one that extends every extremity), so it becomes the
	// only extremity and its state_after the current state.
	current bool
	outlier bool
	// roomVersion is set when the event is the create event of a new room.
	roomVersion string
	// chainLen is the delta chain length of stateBefore.
	chainLen int64
}

// persist stores an accepted (or soft-failed/rejected) event and moves
// the room head.
func (e *Engine) persist(ctx context.Context, h *roomHead, pdu gomatrixserverlib.PDU, o persistOpts) (ev *Event, err error) {
	var membership string
	var pos int64
	if !o.outlier {
		pos = e.stream.Next()
		released := false
		release := func() {
			if !released {
				released = true
				e.stream.Done(pos)
			}
		}
		defer release()
		defer func() {
			// Listeners hear of an event only once its position is readable.
			if ev != nil && o.status == store.EventAccepted {
				release()
				e.bus.Publish(Notification{Event: ev, Membership: membership})
			}
		}()
	}
	row := store.EventRow{
		EventID: pdu.EventID(), RoomID: pdu.RoomID().String(), Type: pdu.Type(), StateKey: pdu.StateKey(),
		Sender: string(pdu.SenderID()), Depth: pdu.Depth(), OriginTS: int64(pdu.OriginServerTS()), StreamPos: pos,
		StateBefore: o.stateBefore, StateAfter: o.stateBefore, Status: o.status, ContainsURL: ContainsURL(pdu), JSON: string(pdu.JSON()),
	}
	if rel := relationOf(pdu); rel != nil {
		row.RelatesTo, row.RelType = &rel.EventID, &rel.RelType
	}
	if o.txn != nil {
		row.TxnLocalpart, row.TxnDevice, row.TxnID = &o.txn.Localpart, &o.txn.Device, &o.txn.ID
	}
	ne := store.NewEvent{Row: row}
	ne.RoomVersion = o.roomVersion
	isState := pdu.StateKey() != nil && o.status == store.EventAccepted
	after := o.before
	if pdu.Type() == spec.MRoomMember {
		membership, _ = pdu.Membership()
		ne.Row.Membership = &membership
	}
	if isState {
		k := store.StateKey{Type: pdu.Type(), StateKey: *pdu.StateKey()}
		ne.Row.ReplacesNID = o.before[k]
		delta := &store.SnapshotDelta{Parent: o.stateBefore, ChainLen: o.chainLen + 1, Changes: map[store.StateKey]int64{k: store.ThisEvent}}
		if o.stateBefore == 0 || delta.ChainLen > maxChainLen {
			delta = &store.SnapshotDelta{Changes: make(map[store.StateKey]int64, len(o.before)+1)}
			for sk, n := range o.before {
				delta.Changes[sk] = n
			}
			delta.Changes[k] = store.ThisEvent
		}
		ne.Snapshot = delta
		after = make(StateMap, len(o.before)+1)
		for sk, n := range o.before {
			after[sk] = n
		}
	}
	if o.current && !o.outlier && o.status == store.EventAccepted {
		ne.Depth = max(h.depth, pdu.Depth())
		ne.Extremities = []string{pdu.EventID()}
		if isState {
			ne.CurrentState = map[store.StateKey]int64{{Type: pdu.Type(), StateKey: *pdu.StateKey()}: store.ThisEvent}
			if pdu.Type() == spec.MRoomMember {
				ne.Memberships = map[string]string{*pdu.StateKey(): membership}
			}
			ne.HeadSnapshot = store.ThisEvent
		} else {
			ne.HeadSnapshot = h.snapshot
		}
	}
	nid, stateAfter, err := e.store.PersistEvent(ctx, ne)
	if err != nil {
		return nil, err
	}
	if isState {
		after[store.StateKey{Type: pdu.Type(), StateKey: *pdu.StateKey()}] = nid
		e.snapshots.PutCost(stateAfter, after, len(after)+1)
	}
	ev = &Event{PDU: pdu, NID: nid, StreamPos: pos, StateBefore: o.stateBefore, StateAfter: stateAfter,
		Status: o.status, ReplacesNID: ne.Row.ReplacesNID}
	if o.txn != nil {
		ev.TxnLocalpart, ev.TxnDevice, ev.TxnID = o.txn.Localpart, o.txn.Device, o.txn.ID
	}
	e.cacheEvent(ev)
	if o.current && !o.outlier && o.status == store.EventAccepted {
		h.loaded = true
		h.depth = ne.Depth
		h.extremities = ne.Extremities
		if isState {
			h.state, h.snapshot = after, stateAfter
			h.chainLen = ne.Snapshot.ChainLen
		}
	}
	if pdu.Type() == spec.MRoomRedaction && o.status == store.EventAccepted {
		if err := e.applyRedaction(ctx, h, ev); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// sortedIDs returns event IDs sorted, for deterministic extremity lists.
func sortedIDs(ids []string) []string {
	out := append([]string(nil), ids...)
	sort.Strings(out)
	return out
}
