package rooms

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// MaxUserRedactions bounds one MSC4194 request: the MSC lets a server
// redact fewer events than the client's limit ("Limited response"), and
// each redaction is an event sent through the room's input, which every
// other sender of the room waits behind.
const MaxUserRedactions = 100

// RedactUserRequest asks for a user's events in a room to be redacted
// (MSC4194, POST /rooms/{roomId}/redact/user/{userId}).
type RedactUserRequest struct {
	RoomID string
	// Sender is the local user asking; the redactions are theirs.
	Sender          string
	SenderSuspended bool
	// Target is the user whose events are redacted.
	Target string
	Reason string
	// Limit is how many events at most (1..MaxUserRedactions; more is
	// cut down to MaxUserRedactions).
	Limit int
}

// RedactUserResult is MSC4194's answer.
type RedactUserResult struct {
	Redacted, SoftFailed int
	// More: unredacted events of the target are left that a further
	// request would redact.
	More bool
}

// RedactUserEvents redacts a user's unredacted timeline events in a room,
// newest first, sending one m.room.redaction per event as the caller
// (MSC4194 leaves MSC2244 mass redactions optional, and no room version
// has them). Soft-failed events are included, as the MSC asks: they are
// what a moderator's client cannot see to redact one by one. State
// events are not: redacting them would change the room's current state
// (name, topic, the target's membership), a decision the MSC's "spam in
// the timeline" case does not call for.
//
// The caller must be joined, and, for another user's events, hold the
// redact power level, as /redact checks before sending (the auth rules
// then check events["m.room.redaction"] for each redaction sent).
func (e *Engine) RedactUserEvents(ctx context.Context, req RedactUserRequest) (RedactUserResult, error) {
	var out RedactUserResult
	limit := min(max(req.Limit, 1), MaxUserRedactions)
	state, err := e.CurrentState(ctx, req.RoomID)
	if err != nil {
		return out, err
	}
	if m, err := e.MembershipIn(ctx, state, req.Sender); err != nil {
		return out, err
	} else if m != spec.Join {
		return out, mxerr.Forbidden("You are not in this room")
	}
	if req.Target != req.Sender {
		if req.SenderSuspended {
			return out, mxerr.UserSuspended()
		}
		pl, err := e.PowerLevels(ctx, state)
		if err != nil {
			return out, err
		}
		if pl.UserLevel(spec.SenderID(req.Sender)) < pl.Redact {
			return out, mxerr.Forbidden("You cannot redact other users' events")
		}
	}
	// One more than the limit tells whether any are left after this page.
	cands, err := e.store.UnredactedEventsBy(ctx, req.RoomID, req.Target, limit+1)
	if err != nil {
		return out, err
	}
	if len(cands) > limit {
		cands, out.More = cands[:limit], true
	}
	content := map[string]any{}
	if req.Reason != "" {
		content["reason"] = req.Reason
	}
	for _, c := range cands {
		if _, err := e.Send(ctx, SendRequest{RoomID: req.RoomID, Sender: req.Sender, Type: spec.MRoomRedaction,
			Redacts: c.EventID, Content: content}); err != nil {
			// What was sent stays sent; a retry skips it, as redacted.
			return out, err
		}
		out.Redacted++
		if c.Status == roommodel.SoftFailed {
			out.SoftFailed++
		}
	}
	return out, nil
}
