package rooms

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// MembershipRequest changes a user's membership in a room.
type MembershipRequest struct {
	Sender     string
	RoomID     string
	Target     string
	Membership string // join, leave, invite, ban, knock
	Reason     string
	// Content carries extra content keys (displayname, avatar_url,
	// is_direct) set by the caller.
	Content map[string]any
	Txn     *Txn
	// Countersign, when set, has another server sign the built event
	// before it is stored (the invitee's server, for remote invites).
	Countersign func(context.Context, gomatrixserverlib.PDU) (gomatrixserverlib.PDU, error)
}

// SetMembership sends an m.room.member event. For restricted rooms it
// finds a local member who may authorise the join.
func (e *Engine) SetMembership(ctx context.Context, r MembershipRequest) (*Event, error) {
	h, err := e.lockRoom(ctx, r.RoomID)
	if err != nil {
		return nil, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		if r.Membership == spec.Join || r.Membership == spec.Knock {
			return nil, mxerr.NotFound("No known servers to join %s through", r.RoomID)
		}
		return nil, mxerr.Forbidden("Unknown room %s", r.RoomID)
	}
	content := map[string]any{}
	for k, v := range r.Content {
		content[k] = v
	}
	content["membership"] = r.Membership
	if r.Reason != "" {
		content["reason"] = r.Reason
	}
	if r.Membership == spec.Join && r.Sender == r.Target {
		via, err := e.restrictedJoinAuthoriser(ctx, h, r.Target)
		if err != nil {
			return nil, err
		}
		if via != "" {
			content["join_authorised_via_users_server"] = via
		}
	}
	// A change to what the member event already says, by the same
	// sender, changes nothing: as Synapse does (update_membership_locked),
	// the current event is returned instead of a new one, so that joining
	// a room one is in again is a no-op that still answers the room ID.
	if cur, err := e.StateEvent(ctx, h.state, spec.MRoomMember, r.Target); err == nil && cur != nil && cur.Sender() == r.Sender {
		if raw, err := json.Marshal(content); err == nil && jsonEqual(cur.Content(), raw) {
			return cur, nil
		}
	}
	target := r.Target
	req := SendRequest{RoomID: r.RoomID, Sender: r.Sender, Type: spec.MRoomMember, StateKey: &target, Content: content, Txn: r.Txn}
	if r.Countersign != nil {
		return e.sendCountersigned(ctx, h, req, r.Countersign)
	}
	return e.sendLocked(ctx, h, req)
}

// MembershipEventOf returns a user's membership in a room's current
// state and the NID of the event that set it (0 when none).
func (e *Engine) MembershipEventOf(ctx context.Context, roomID, userID string) (string, int64, error) {
	return e.store.CurrentMembershipEvent(ctx, roomID, userID)
}

// MembershipOf returns a user's membership in a room's current state
// ("" when none, or the room is unknown). It reads the materialised
// current state, never another room's lock, so that it is safe to call
// while holding one.
func (e *Engine) MembershipOf(ctx context.Context, roomID, userID string) (string, error) {
	return e.store.CurrentMembership(ctx, roomID, userID)
}

// MembershipIn returns a user's membership in a state ("" when none).
func (e *Engine) MembershipIn(ctx context.Context, state StateMap, userID string) (string, error) {
	ev, err := e.StateEvent(ctx, state, spec.MRoomMember, userID)
	if err != nil || ev == nil {
		return "", err
	}
	return ev.Membership()
}

// MembershipAfter is userID's membership in the state after ev, as
// unsigned.membership gives it (MSC4115, spec v1.11): the membership an
// event of the user's own sets, else the one in the state after the
// event, "leave" when there is none (or the event has no state, an
// outlier), as Synapse's filter_events_for_client.
func (e *Engine) MembershipAfter(ctx context.Context, ev *Event, userID string) (string, error) {
	if ev.Type() == spec.MRoomMember && ev.StateKey() != nil && *ev.StateKey() == userID {
		return ev.Membership()
	}
	if ev.StateAfter == 0 {
		return spec.Leave, nil
	}
	// One key, not the whole state (stateKeyAt): every event a /sync
	// shows asks.
	m, err := e.membershipAt(ctx, ev.StateAfter, userID)
	if err != nil || m != "" {
		return m, err
	}
	return spec.Leave, nil
}

// Members returns the m.room.member events of a state.
func (e *Engine) Members(ctx context.Context, state StateMap) ([]*Event, error) {
	var keys []roommodel.StateKey
	for k := range state {
		if k.Type == spec.MRoomMember {
			keys = append(keys, k)
		}
	}
	m, err := e.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	out := make([]*Event, 0, len(m))
	for _, k := range keys {
		if ev, ok := m[k]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}
