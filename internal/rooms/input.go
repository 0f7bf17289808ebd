package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// maxEventBytes is the spec's limit on a PDU's size.
const maxEventBytes = 65536

// maxPrevEvents caps prev_events of local events (Synapse uses 10).
const maxPrevEvents = 10

// maxChainLen bounds snapshot delta chains: after this many deltas a
// full snapshot is stored, so that loading a state never walks far.
const maxChainLen = 64

// Txn identifies the client request that sent an event. The spec scopes
// a transaction ID to the request path and the access token: Scope is
// the path between the room and the txnId ("send/<type>", "redact/<event
// ID>"), so that the same ID on another path names another request.
type Txn struct {
	Localpart, Device, Scope, ID string
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
	// OriginTS overrides origin_server_ts (ms) when positive: an
	// application service's bridged timestamp (spec "Timestamp
	// massaging").
	OriginTS int64
}

// Send builds, signs, authorises and persists a local event. A repeated
// transaction ID returns the event the first request sent.
func (e *Engine) Send(ctx context.Context, req SendRequest) (*Event, error) {
	// The transaction ID is looked up before taking the room's lock, which
	// every sender of the room waits on; a retry racing the original is
	// caught by the unique index on transaction IDs instead.
	if ev, err := e.sentWithTxn(ctx, req); ev != nil || err != nil {
		return ev, err
	}
	h, err := e.lockRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	var ev *Event
	switch {
	case h.version == nil:
		e.unlockRoom(h)
		return nil, mxerr.Forbidden("Unknown room %s", req.RoomID)
	case req.StateKey == nil && req.Type != spec.MRoomRedaction:
		ev, err = e.sendMessage(ctx, h, req)
	default:
		ev, err = e.sendLocked(ctx, h, req)
		e.unlockRoom(h)
	}
	if errors.Is(err, store.ErrConflict) && req.Txn != nil {
		if ev, txnErr := e.storedWithTxn(ctx, req); ev != nil {
			return ev, txnErr
		}
	}
	return ev, err
}

// sendMessage sends a message-like event (neither state nor a
// redaction) and unlocks the room. Nothing else of the room depends on
// such an event's stored NID, so the head moves in memory and the lock is
// released as soon as the event is queued for storing: the room's next
// sender builds on it while it is written, in the same transaction as
// other queued events if the writer is busy. Should the write fail, the
// events built on it fail too and the next lock reloads the head.
func (e *Engine) sendMessage(ctx context.Context, h *roomHead, req SendRequest) (*Event, error) {
	pdu, auth, err := e.build(ctx, h, req)
	if err == nil {
		if err = h.localAuthAllowed(pdu, auth); err != nil {
			err = mxerr.Forbidden("%s", authMessage(err))
		}
	}
	if err == nil {
		pdu, err = e.policySign(ctx, h, pdu)
	}
	if err != nil {
		e.unlockRoom(h)
		return nil, err
	}
	o := persistOpts{stateBefore: h.snapshot, before: h.state, chainLen: h.chainLen, txn: req.Txn, current: true}
	pos := e.stream.Next()
	ne, _ := e.record(h, pdu, o, pos)
	p := e.writer.submit(ne, h.pending)
	h.pending, h.depth, h.extremities = p, ne.Depth, ne.Extremities
	// The reference lockRoom took is kept until the write settles, so
	// that the head, ahead of the store until then, is not evicted.
	h.mu.Unlock()
	res, err := p.wait()
	e.releaseHead(h, false)
	if err != nil {
		e.stream.Abandon(pos)
		return nil, err
	}
	ev := e.stored(pdu, ne, o, res)
	e.stream.Done(pos)
	e.bus.Publish(context.Background(), Notification{Event: ev})
	e.stream.WaitReadable(ctx, pos)
	return ev, nil
}

// sentWithTxn returns the event a device already sent with the request's
// transaction ID, nil if none. The store is asked only when the record of
// sent transactions cannot tell that the ID is new.
func (e *Engine) sentWithTxn(ctx context.Context, req SendRequest) (*Event, error) {
	if req.Txn == nil || e.txns.surelyNew(ctx, e.store, req.RoomID, req.Txn) {
		return nil, nil
	}
	return e.storedWithTxn(ctx, req)
}

// storedWithTxn is sentWithTxn asking the store.
func (e *Engine) storedWithTxn(ctx context.Context, req SendRequest) (*Event, error) {
	id, err := e.store.EventByTxn(ctx, req.Txn.Localpart, req.Txn.Device, req.RoomID, req.Txn.Scope, req.Txn.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return e.Event(ctx, id)
}

// sendLocked builds and persists an event on a locked, loaded room head.
func (e *Engine) sendLocked(ctx context.Context, h *roomHead, req SendRequest) (*Event, error) {
	pdu, auth, err := e.build(ctx, h, req)
	if err != nil {
		return nil, err
	}
	if err := authAllowed(pdu, auth); err != nil {
		return nil, mxerr.Forbidden("%s", authMessage(err))
	}
	if pdu, err = e.policySign(ctx, h, pdu); err != nil {
		return nil, err
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
	ts := e.now()
	if req.OriginTS > 0 {
		ts = time.UnixMilli(req.OriginTS)
	}
	return e.buildAt(ctx, h, req, ts)
}

// buildAt is build with the event's origin_server_ts given.
func (e *Engine) buildAt(ctx context.Context, h *roomHead, req SendRequest, ts time.Time) (gomatrixserverlib.PDU, *gomatrixserverlib.AuthEvents, error) {
	if req.Type == spec.MRoomCreate && len(h.extremities) > 0 {
		// A room has one create event, its first; Synapse refuses another
		// as a bad request rather than letting the auth rules answer 403.
		return nil, nil, mxerr.BadJSON("Cannot send m.room.create in an existing room")
	}
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
	needed = withAliasesNeeds(needed, req.Type, req.Sender)
	auth, err := e.authEvents(ctx, h.state, needed)
	if err != nil {
		return nil, nil, err
	}
	if req.Type == spec.MRoomPowerLevels && req.StateKey != nil && *req.StateKey == "" {
		if create, _ := auth.Create(); create != nil {
			var c struct {
				Users json.RawMessage `json:"users"`
			}
			_ = json.Unmarshal(content, &c)
			if err := creatorsNotInUsers(h.version, creatorsOf(create), c.Users); err != nil {
				return nil, nil, err
			}
		}
	}
	builder := h.version.NewEventBuilderFromProtoEvent(&proto)
	if err := builder.AddAuthEvents(auth); err != nil {
		return nil, nil, err
	}
	if req.Type == spec.MRoomAliases {
		if builder.AuthEvents, err = authEventRefs(needed, auth, h.id, h.version); err != nil {
			return nil, nil, err
		}
	}
	pdu, built, err := fastBuild(builder, h.version, ts, spec.ServerName(e.opts.ServerName), e.opts.KeyID, e.opts.PrivateKey)
	if !built {
		pdu, err = builder.Build(ts, spec.ServerName(e.opts.ServerName), e.opts.KeyID, e.opts.PrivateKey)
	}
	if err != nil {
		return nil, nil, buildError(err)
	}
	if len(pdu.JSON()) > maxEventBytes {
		return nil, nil, mxerr.TooLarge("Event is larger than %d bytes", maxEventBytes)
	}
	return pdu, auth, nil
}

// buildError is the client's answer to an event the builder refused. An
// event over 65,536 bytes, or a type or state key over 255 bytes, is 413
// M_TOO_LARGE, as Synapse answers (spec "Size limits"); anything else is
// malformed.
func buildError(err error) error {
	var v gomatrixserverlib.EventValidationError
	if errors.As(err, &v) && v.Code == gomatrixserverlib.EventValidationTooLarge {
		return mxerr.TooLarge("%s", strings.TrimPrefix(v.Message, "gomatrixserverlib: "))
	}
	return mxerr.BadJSON("Invalid event: %v", err)
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
	var keys []roommodel.StateKey
	for _, t := range needed.Tuples() {
		keys = append(keys, roommodel.StateKey{Type: t.EventType, StateKey: t.StateKey})
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
	status      roommodel.Status
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
	// onBehalfOf and withheld say who delivers the event to other
	// servers (store.EventRow).
	onBehalfOf string
	withheld   bool
}

// persist stores an event with its state snapshot, moves the room head
// when the event extends the whole room (o.current), and queues its
// notification, which the bus hears of when the room is unlocked.
func (e *Engine) persist(ctx context.Context, h *roomHead, pdu gomatrixserverlib.PDU, o persistOpts) (*Event, error) {
	var pos int64
	if !o.outlier {
		pos = e.stream.Next()
	}
	ev, err := e.write(ctx, h, pdu, o, pos)
	if err != nil {
		if !o.outlier {
			e.stream.Abandon(pos)
		}
		return nil, err
	}
	if !o.outlier {
		e.stream.Done(pos)
	}
	if !o.outlier && o.status == roommodel.Accepted {
		n := Notification{Event: ev}
		n.Membership, _ = pdu.Membership()
		if n.Membership != "" && pdu.StateKey() != nil && o.before != nil {
			n.PrevMembership, _ = e.MembershipIn(ctx, o.before, *pdu.StateKey())
		}
		// Published by unlockRoom, once the room's lock is released.
		e.notify(h, n)
	}
	if !o.outlier {
		// No holder of an earlier position waits for this room's lock,
		// so waiting under it cannot deadlock.
		e.stream.WaitReadable(ctx, pos)
	}
	return ev, nil
}

// write stores the event and updates the caches and the room head.
func (e *Engine) write(ctx context.Context, h *roomHead, pdu gomatrixserverlib.PDU, o persistOpts, pos int64) (*Event, error) {
	ne, after := e.record(h, pdu, o, pos)
	// Through the writer even under the lock: the room's earlier events
	// may still be queued, and its writes must land in order.
	p := e.writer.submit(ne, h.pending)
	h.pending = p
	res, err := p.wait()
	if err != nil {
		// This event has not moved the head. If it failed by itself, what
		// it built on is stored and the room's next event may build on
		// it too; if it failed because an earlier message did, the head
		// moved by that one, and p makes the next lock reload it.
		if !errors.Is(err, errEarlierFailed) {
			h.pending = nil
		}
		return nil, err
	}
	if ne.Snapshot != nil {
		after[roommodel.StateKey{Type: pdu.Type(), StateKey: *pdu.StateKey()}] = res.NID
		e.cacheState(res.StateAfter, after)
	}
	ev := e.stored(pdu, ne, o, res)
	if ne.Extremities != nil {
		h.loaded, h.depth, h.extremities = true, ne.Depth, ne.Extremities
		if ne.Snapshot != nil {
			h.state, h.snapshot, h.chainLen = after, res.StateAfter, ne.Snapshot.ChainLen
		}
	}
	if pdu.Type() == spec.MRoomRedaction && o.status == roommodel.Accepted {
		if err := e.applyRedaction(ctx, h, ev); err != nil {
			return nil, err
		}
	}
	// Stored redacted at once if its redaction came first, so that
	// listeners (sync, the federation sender) are told of it redacted.
	return e.awaitedRedactions(ctx, h, ev)
}

// stored makes the Event of a stored event and records what the engine
// keeps about it: the caches, and whether its room has relations and
// its target a membership change.
func (e *Engine) stored(pdu gomatrixserverlib.PDU, ne store.NewEvent, o persistOpts, res store.Persisted) *Event {
	ev := &Event{PDU: pdu, NID: res.NID, StreamPos: ne.Row.StreamPos, StateBefore: o.stateBefore, StateAfter: res.StateAfter,
		Status: o.status, ReplacesNID: ne.Row.ReplacesNID, HasURL: ne.Row.ContainsURL}
	if o.txn != nil {
		ev.TxnLocalpart, ev.TxnDevice, ev.TxnID = o.txn.Localpart, o.txn.Device, o.txn.ID
	}
	ev.derive()
	e.cacheEvent(ev)
	if ne.Row.RelatesTo != nil {
		e.noteRelation(ne.Row.RoomID)
	}
	if ne.Row.Membership != nil && ev.StreamPos != 0 {
		e.noteMembership(*ne.Row.StateKey, ev.StreamPos)
	}
	return ev
}

// record is what PersistEvent writes for an event: its row, its state
// snapshot (a delta over the state before it, or a full snapshot when
// the delta chain is long), and the head changes. It also returns the
// state after the event, still missing the event's own NID.
func (e *Engine) record(h *roomHead, pdu gomatrixserverlib.PDU, o persistOpts, pos int64) (store.NewEvent, StateMap) {
	row := store.EventRow{
		EventID: pdu.EventID(), RoomID: pdu.RoomID().String(), Type: pdu.Type(), StateKey: pdu.StateKey(),
		Sender: string(pdu.SenderID()), Depth: pdu.Depth(), OriginTS: int64(pdu.OriginServerTS()), StreamPos: pos,
		StateBefore: o.stateBefore, StateAfter: o.stateBefore, Status: o.status, ContainsURL: ContainsURL(pdu), JSON: string(pdu.JSON()),
		OnBehalfOf: o.onBehalfOf, Withheld: o.withheld,
	}
	if rel := relationOf(pdu); rel != nil {
		row.RelatesTo, row.RelType = &rel.EventID, &rel.RelType
	}
	if o.txn != nil {
		row.TxnLocalpart, row.TxnDevice, row.TxnID, row.TxnScope = &o.txn.Localpart, &o.txn.Device, &o.txn.ID, &o.txn.Scope
	}
	var membership string
	if pdu.Type() == spec.MRoomMember {
		membership, _ = pdu.Membership()
		row.Membership = &membership
	}
	ne := store.NewEvent{RoomVersion: o.roomVersion}
	after := o.before
	isState := pdu.StateKey() != nil && o.status == roommodel.Accepted
	var k roommodel.StateKey
	if isState {
		k = roommodel.StateKey{Type: pdu.Type(), StateKey: *pdu.StateKey()}
		row.ReplacesNID = o.before[k]
		ne.Snapshot = &store.SnapshotDelta{Parent: o.stateBefore, ChainLen: o.chainLen + 1, Changes: map[roommodel.StateKey]int64{k: store.ThisEvent}}
		if o.stateBefore == 0 || ne.Snapshot.ChainLen > maxChainLen {
			ne.Snapshot = &store.SnapshotDelta{Changes: make(map[roommodel.StateKey]int64, len(o.before)+1)}
			for sk, n := range o.before {
				ne.Snapshot.Changes[sk] = n
			}
			ne.Snapshot.Changes[k] = store.ThisEvent
		}
		after = make(StateMap, len(o.before)+1)
		for sk, n := range o.before {
			after[sk] = n
		}
	}
	ne.Row = row
	if o.current && !o.outlier && o.status == roommodel.Accepted {
		ne.Depth = max(h.depth, pdu.Depth())
		ne.Extremities = []string{pdu.EventID()}
		ne.HeadSnapshot = h.snapshot
		if isState {
			ne.CurrentState = map[roommodel.StateKey]int64{k: store.ThisEvent}
			if pdu.Type() == spec.MRoomMember {
				ne.Memberships = map[string]string{k.StateKey: membership}
			}
			ne.HeadSnapshot = store.ThisEvent
		}
	}
	return ne, after
}

// sortedIDs returns event IDs sorted, for deterministic extremity lists.
func sortedIDs(ids []string) []string {
	out := append([]string(nil), ids...)
	sort.Strings(out)
	return out
}
