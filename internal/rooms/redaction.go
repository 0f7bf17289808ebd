package rooms

import (
	"context"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// applyRedaction redacts the target of an accepted redaction event when
// the spec's "Handling redactions" rules allow it: the redaction's sender
// has the redact power level, or sent the target, or (for events whose
// sender is on the same server) is on the same server.
func (e *Engine) applyRedaction(ctx context.Context, h *roomHead, red *Event) error {
	targetID := red.Redacts()
	if targetID == "" {
		return nil
	}
	targets, err := e.EventsByID(ctx, []string{targetID})
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		// The target has not reached us yet (the redaction came first
		// over /send, /backfill or /get_missing_events): kept by target,
		// as Synapse does, and applied when the target is stored.
		if !validEventID(targetID) {
			return nil
		}
		if err := e.store.AwaitRedaction(ctx, h.id, targetID, red.EventID(), e.now().UnixMilli()); err != nil {
			return err
		}
		h.awaits = awaitsSome
		return nil
	}
	_, err = e.redactStored(ctx, h, red, targets[0])
	return err
}

// redactStored marks a stored target redacted by red when the redaction
// rules allow it, and returns its redacted form (nil when not applied).
func (e *Engine) redactStored(ctx context.Context, h *roomHead, red, target *Event) (*Event, error) {
	if target.RoomID().String() != red.RoomID().String() || target.RedactedBy != "" {
		return nil, nil
	}
	if !e.mayRedact(ctx, red, target) {
		return nil, nil
	}
	if err := e.store.MarkRedacted(ctx, target.EventID(), red.EventID(), e.now().UnixMilli()); err != nil {
		return nil, err
	}
	redacted := *target
	redacted.PDU = redactedCopy(target.PDU, h.version)
	redacted.RedactedBy = red.EventID()
	redacted.derive()
	e.cacheEvent(&redacted)
	return &redacted, nil
}

// What a room head knows of its awaited redactions.
const (
	awaitsUnknown int8 = iota
	awaitsNone
	awaitsSome
)

// awaitedRedactions applies, to an event just stored, the first
// redaction that arrived before it and that the redaction rules allow
// (checked now, against the state before the redaction: same server as
// the target's sender, or the redact power level), and returns the
// event as it is now stored. Rooms without awaited redactions, nearly
// all of them, cost one query when their head is loaded.
func (e *Engine) awaitedRedactions(ctx context.Context, h *roomHead, ev *Event) (*Event, error) {
	if h.awaits == awaitsNone || ev.Status != roommodel.Accepted {
		return ev, nil
	}
	if h.awaits == awaitsUnknown {
		some, err := e.store.RoomAwaitsRedactions(ctx, h.id)
		if err != nil {
			return nil, err
		}
		h.awaits = awaitsNone
		if !some {
			return ev, nil
		}
		h.awaits = awaitsSome
	}
	ids, err := e.store.AwaitedRedactions(ctx, h.id, ev.EventID())
	if err != nil || len(ids) == 0 {
		return ev, err
	}
	reds, err := e.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := ev
	for _, red := range reds {
		if red.Status != roommodel.Accepted || red.Type() != spec.MRoomRedaction || red.Redacts() != ev.EventID() {
			continue
		}
		redacted, err := e.redactStored(ctx, h, red, ev)
		if err != nil {
			return nil, err
		}
		if redacted != nil {
			out = redacted
			break
		}
	}
	if err := e.store.ForgetAwaitedRedactions(ctx, ev.EventID()); err != nil {
		return nil, err
	}
	return out, nil
}

func (e *Engine) mayRedact(ctx context.Context, red, target *Event) bool {
	if red.Sender() == target.Sender() || serverOf(red.Sender()) == serverOf(target.Sender()) {
		return true
	}
	state, err := e.snapshotState(ctx, red.StateBefore)
	if err != nil {
		return false
	}
	pl, err := e.PowerLevels(ctx, state)
	if err != nil {
		return false
	}
	return pl.UserLevel(spec.SenderID(red.Sender())) >= pl.Redact
}

// RedactRequest is a redaction a local user asks for: through PUT
// /rooms/{roomId}/redact/{eventId}/{txnId}, or (spec v1.18, MSC4169) as
// an m.room.redaction sent with PUT /rooms/{roomId}/send, whose
// content.redacts names the target. Both take this one path, so that
// both check the same things.
type RedactRequest struct {
	RoomID, Sender, Target string
	// SenderSuspended: a suspended account may redact its own events
	// only (spec "Account suspension").
	SenderSuspended bool
	// Content is the redaction's content (reason, and anything else the
	// client put there).
	Content any
	Txn     *Txn
}

// Redact sends a redaction for a local user: the target must be an event
// of the room the user may see (M_NOT_FOUND otherwise, as for a missing
// one), and the user must be its sender or hold the redact power level
// (403), as Synapse checks before it sends; the redaction is then an
// ordinary event whose transaction ID deduplicates retries.
func (e *Engine) Redact(ctx context.Context, req RedactRequest) (*Event, error) {
	// A retry answers the first redaction even if the target has been
	// hidden from the user since.
	if ev, err := e.sentWithTxn(ctx, SendRequest{RoomID: req.RoomID, Txn: req.Txn}); ev != nil || err != nil {
		return ev, err
	}
	target, ok, err := e.redactable(ctx, req.RoomID, req.Target, req.Sender)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.Forbidden("You cannot redact other users' events")
	}
	if req.SenderSuspended && (target == nil || target.Sender() != req.Sender) {
		return nil, mxerr.UserSuspended()
	}
	return e.Send(ctx, SendRequest{
		RoomID: req.RoomID, Sender: req.Sender, Type: spec.MRoomRedaction, Redacts: req.Target, Content: req.Content, Txn: req.Txn,
	})
}

// MayRedact reports whether a local user may redact an event now: the
// check made before sending a redaction on their behalf.
func (e *Engine) MayRedact(ctx context.Context, userID string, target *Event) (bool, error) {
	if target.Sender() == userID {
		return true, nil
	}
	state, err := e.CurrentState(ctx, target.RoomID().String())
	if err != nil {
		return false, err
	}
	pl, err := e.PowerLevels(ctx, state)
	if err != nil {
		return false, err
	}
	return pl.UserLevel(spec.SenderID(userID)) >= pl.Redact, nil
}

// redactable reports whether a local user may redact the event an ID
// names in a room, now, and returns it when they may see it: an event
// they may see, if they sent it or have the redact power level; an event
// this server does not have (or they may not see), only with the redact
// power level, and then target is nil. Synapse allows the latter too: a
// moderator can redact what another server sent before it arrived here,
// and the redaction names its ID (a redaction's auth rules never need
// the target).
func (e *Engine) redactable(ctx context.Context, roomID, eventID, userID string) (target *Event, ok bool, err error) {
	target, err = e.VisibleEvent(ctx, roomID, eventID, userID)
	if err == nil {
		ok, err = e.MayRedact(ctx, userID, target)
		return target, ok, err
	}
	if me, isMx := mxerr.As(err); !isMx || me.Code != "M_NOT_FOUND" || !validEventID(eventID) {
		return nil, false, err
	}
	if ev, serr := e.Event(ctx, eventID); serr == nil && ev.RoomID().String() != roomID {
		return nil, false, err // another room's event is not this room's to redact
	}
	// Members only, and the answer for anyone else stays "not found".
	state, serr := e.CurrentState(ctx, roomID)
	if serr != nil {
		return nil, false, err
	}
	if m, serr := e.MembershipIn(ctx, state, userID); serr != nil {
		return nil, false, serr
	} else if m != spec.Join {
		return nil, false, err
	}
	pl, serr := e.PowerLevels(ctx, state)
	if serr != nil {
		return nil, false, serr
	}
	if pl.UserLevel(spec.SenderID(userID)) < pl.Redact {
		return nil, false, err // only the event's sender could: as unknown as before
	}
	return nil, true, nil
}

// validEventID reports whether an event ID has the spec's shape ("$"
// and an opaque rest, at most 255 bytes), so that a redaction built on
// it is a valid event.
func validEventID(id string) bool {
	return len(id) > 1 && len(id) <= 255 && id[0] == '$' && ident.CheckID(id) == nil
}

// PowerLevels returns the room's power levels in a state, with the
// version's defaults (and v12's infinitely powerful creators) applied.
func (e *Engine) PowerLevels(ctx context.Context, state StateMap) (*gomatrixserverlib.PowerLevelContent, error) {
	evs, err := e.StateEvents(ctx, state,
		roommodel.StateKey{Type: spec.MRoomPowerLevels}, roommodel.StateKey{Type: spec.MRoomCreate})
	if err != nil {
		return nil, err
	}
	create := evs[roommodel.StateKey{Type: spec.MRoomCreate}]
	if pl := evs[roommodel.StateKey{Type: spec.MRoomPowerLevels}]; pl != nil {
		c, err := pl.PowerLevels()
		if err != nil {
			return nil, err
		}
		return withCreators(c, create), nil
	}
	if create == nil {
		return &gomatrixserverlib.PowerLevelContent{}, nil
	}
	none, _ := gomatrixserverlib.NewAuthEvents(nil)
	c, err := gomatrixserverlib.NewPowerLevelContentFromAuthEvents(none, create.Sender())
	if err != nil {
		return nil, err
	}
	return withCreators(&c, create), nil
}

// creatorLevel stands in for v12's infinite creator power.
const creatorLevel = 1 << 53

func withCreators(c *gomatrixserverlib.PowerLevelContent, create *Event) *gomatrixserverlib.PowerLevelContent {
	if create == nil {
		return c
	}
	v, err := gomatrixserverlib.GetRoomVersion(create.Version())
	if err != nil || !v.PrivilegedCreators() {
		return c
	}
	out := *c
	out.Users = make(map[string]int64, len(c.Users)+2)
	for k, lvl := range c.Users {
		out.Users[k] = lvl
	}
	for _, id := range Creators(create) {
		out.Users[id] = creatorLevel
	}
	return &out
}

// Creators are the room creators: the create event's sender and, from
// v12, its additional_creators.
func Creators(create *Event) []string { return creatorsOf(create.PDU) }

func creatorsOf(create gomatrixserverlib.PDU) []string {
	out := []string{string(create.SenderID())}
	var c struct {
		Additional []string `json:"additional_creators"`
	}
	if err := jsonUnmarshal(create.Content(), &c); err == nil {
		out = append(out, c.Additional...)
	}
	return out
}

func serverOf(userID string) string {
	_, server, _ := strings.Cut(userID, ":")
	return server
}

// PruneRedactions replaces the stored original of events redacted before
// the retention period with their redacted form (Synapse's
// redaction_retention_period). It returns how many were pruned.
func (e *Engine) PruneRedactions(ctx context.Context, st RedactionPruner, retention time.Duration) (int, error) {
	rows, err := st.RedactedBefore(ctx, e.now().Add(-retention).UnixMilli(), 500)
	if err != nil {
		return 0, err
	}
	for _, r := range rows {
		v, err := e.RoomVersion(ctx, r.RoomID)
		if err != nil {
			return 0, err
		}
		redacted, err := v.RedactEventJSON([]byte(r.JSON))
		if err != nil {
			return 0, err
		}
		if err := st.PruneEvent(ctx, r.NID, string(redacted)); err != nil {
			return 0, err
		}
	}
	return len(rows), nil
}

// Bounds of the redactions kept for targets not received yet. Synapse
// keeps such redactions with no bound; a target that has not come in a
// week is almost always one this server will only ever get through
// backfill of old history, if at all, and an origin could otherwise fill
// the table with redactions of made-up event IDs. The per-room cap keeps
// one room's flood from growing the table between passes: the newest
// are kept, the likeliest to meet their target soon.
const (
	awaitedRedactionTTL     = 7 * 24 * time.Hour
	awaitedRedactionsInRoom = 1000
)

// ExpireAwaitedRedactions forgets the redactions that have waited for
// their target longer than awaitedRedactionTTL, and in each room all but
// the newest awaitedRedactionsInRoom. It returns how many it dropped.
// A target that arrives later is stored unredacted: the room's other
// servers, which had the target first, redacted it, so clients here may
// see what clients there do not; a week is long enough that such late
// targets are rare, and nothing bounds them otherwise.
func (e *Engine) ExpireAwaitedRedactions(ctx context.Context) (int, error) {
	now := e.now()
	return e.store.ExpireAwaitedRedactions(ctx, now.UnixMilli(), now.Add(-awaitedRedactionTTL).UnixMilli(), awaitedRedactionsInRoom)
}

// RedactionPruner is the storage PruneRedactions needs.
type RedactionPruner interface {
	RedactedBefore(ctx context.Context, ts int64, limit int) ([]store.EventRow, error)
	PruneEvent(ctx context.Context, nid int64, redactedJSON string) error
}
