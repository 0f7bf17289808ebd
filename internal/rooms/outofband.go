package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// LeaveOutOfBand rejects an invite, or withdraws a knock, of a room this
// server is not in without asking the room's servers: when none of them
// answers (all unreachable, or all gone from the room), the user would
// otherwise keep an invite they cannot get rid of. Synapse does the same
// (_generate_local_out_of_band_leave): a leave built on the invite or
// knock alone (its only prev event, and with that event's auth events its
// auth events), signed here and never sent anywhere (this server has no
// room to send it in), which makes the user's membership leave, so that
// the invite leaves their /sync. Should the room's servers still hold the
// invite, a later leave or join through them supersedes it.
func (e *Engine) LeaveOutOfBand(ctx context.Context, roomID, userID, reason string) (*Event, error) {
	m, nid, err := e.MembershipEventOf(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	if (m != spec.Invite && m != spec.Knock) || nid == 0 {
		return nil, mxerr.Forbidden("You have no invite or knock to leave in %s", roomID)
	}
	prev, err := e.outOfBandMembership(ctx, nid)
	if err != nil {
		return nil, err
	}
	content := map[string]any{"membership": spec.Leave}
	if reason != "" {
		content["reason"] = reason
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return nil, err
	}
	v, err := gomatrixserverlib.GetRoomVersion(prev.Version())
	if err != nil {
		return nil, err
	}
	target := userID
	proto := gomatrixserverlib.ProtoEvent{
		SenderID: userID, RoomID: roomID, Type: spec.MRoomMember, StateKey: &target, Content: raw,
		PrevEvents: []string{prev.EventID()}, AuthEvents: append(append([]string{}, prev.AuthEventIDs()...), prev.EventID()),
		Depth: prev.Depth() + 1,
	}
	pdu, err := v.NewEventBuilderFromProtoEvent(&proto).Build(e.now(), spec.ServerName(e.opts.ServerName), e.opts.KeyID, e.opts.PrivateKey)
	if err != nil {
		return nil, buildError(err)
	}
	if len(pdu.JSON()) > maxEventBytes {
		return nil, mxerr.TooLarge("Event is larger than %d bytes", maxEventBytes)
	}
	return e.ReceiveOutOfBand(ctx, pdu)
}

// outOfBandMembership loads an invite or knock of a room this server is
// not in.
func (e *Engine) outOfBandMembership(ctx context.Context, nid int64) (gomatrixserverlib.PDU, error) {
	evs, err := e.EventsByNID(ctx, []int64{nid})
	if err != nil {
		return nil, err
	}
	if len(evs) != 1 {
		return nil, mxerr.NotFound("Unknown membership event")
	}
	return evs[0].PDU, nil
}

// outOfBandVersion is the room version of a stored membership of a room
// this server is not in, which has no stored version (the room is
// unknown until someone here joins; unknownRoom is why RoomVersion
// failed, returned for any other row). An invite or knock names it in
// the create event of the stripped state it was stored with; a leave
// that rejects or rescinds one names that invite among its prev or auth
// events.
func (e *Engine) outOfBandVersion(ctx context.Context, r store.EventRow, unknownRoom error) (gomatrixserverlib.IRoomVersion, error) {
	if me, ok := mxerr.As(unknownRoom); !ok || me.Code != "M_NOT_FOUND" || r.Type != spec.MRoomMember {
		return nil, unknownRoom
	}
	if v, err := strippedStateVersion(r.JSON); err == nil {
		return v, nil
	}
	var refs struct {
		EventID    string          `json:"event_id"`
		PrevEvents json.RawMessage `json:"prev_events"`
		AuthEvents json.RawMessage `json:"auth_events"`
	}
	if json.Unmarshal([]byte(r.JSON), &refs) != nil {
		return nil, unknownRoom
	}
	if refs.EventID != "" {
		// Only versions 1 and 2 carry the ID in the event, and parse alike.
		return gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersionV1)
	}
	var ids, auth []string
	_ = json.Unmarshal(refs.PrevEvents, &ids)
	_ = json.Unmarshal(refs.AuthEvents, &auth)
	if len(ids) > 20 || len(auth) > 10 { // the spec's limits on a PDU
		return nil, unknownRoom
	}
	rows, err := e.store.EventsByID(ctx, append(ids, auth...))
	if err != nil {
		return nil, err
	}
	for _, ref := range rows {
		if ref.RoomID != r.RoomID {
			continue
		}
		if v, err := strippedStateVersion(ref.JSON); err == nil {
			return v, nil
		}
	}
	return nil, unknownRoom
}

// strippedStateVersion is the room version the create event of an
// out-of-band membership's stripped state names ("1" when its content
// has none, as the spec defines).
func strippedStateVersion(raw string) (gomatrixserverlib.IRoomVersion, error) {
	var ev struct {
		Unsigned struct {
			Invite []json.RawMessage `json:"invite_room_state"`
			Knock  []json.RawMessage `json:"knock_room_state"`
		} `json:"unsigned"`
	}
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		return nil, err
	}
	for _, st := range append(ev.Unsigned.Invite, ev.Unsigned.Knock...) {
		var s struct {
			Type    string `json:"type"`
			Content struct {
				RoomVersion *string `json:"room_version"`
			} `json:"content"`
		}
		if json.Unmarshal(st, &s) != nil || s.Type != spec.MRoomCreate {
			continue
		}
		version := "1"
		if s.Content.RoomVersion != nil {
			version = *s.Content.RoomVersion
		}
		return gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(version))
	}
	return nil, errors.New("rooms: the room's version is unknown")
}

// InviteVersion is the room version of a local user's pending invite to
// a room this server is not in (the version the invite came in), so
// that an event about it, such as its rescission, can be parsed.
func (e *Engine) InviteVersion(ctx context.Context, roomID, userID string) (gomatrixserverlib.IRoomVersion, error) {
	invite, err := e.pendingInvite(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	return gomatrixserverlib.GetRoomVersion(invite.Version())
}

// ReceiveRescinded takes the leave by which the inviter withdrew a local
// user's invite to a room this server is not in; its signatures are the
// caller's to check. Without the room's state the leave cannot be
// authorised, so only what the invite itself vouches for is taken: the
// leave is the inviter's (a room moderator's rescission cannot be told
// from a forgery here) and names the invite among its auth events. It is
// stored out of band, like the invite, so that the invite leaves the
// user's /sync (as Synapse does, element-hq/synapse#18823).
func (e *Engine) ReceiveRescinded(ctx context.Context, pdu gomatrixserverlib.PDU) (*Event, error) {
	m, _ := pdu.Membership()
	if pdu.Type() != spec.MRoomMember || pdu.StateKey() == nil || m != spec.Leave {
		return nil, refused("rooms: %s is no rescinded invite", pdu.EventID())
	}
	roomID := pdu.RoomID().String()
	// An unknown room (M_NOT_FOUND) is one this server is not in.
	if in, err := e.ServerInRoom(ctx, roomID, e.opts.ServerName); in {
		return nil, refused("rooms: %s is an event of a room this server is in", pdu.EventID())
	} else if me, ok := mxerr.As(err); err != nil && (!ok || me.Code != "M_NOT_FOUND") {
		return nil, err
	}
	invite, err := e.pendingInvite(ctx, roomID, *pdu.StateKey())
	if err != nil {
		return nil, err
	}
	if pdu.SenderID() != invite.SenderID() || !slices.Contains(pdu.AuthEventIDs(), invite.EventID()) {
		return nil, refused("rooms: %s does not rescind the invite of %s", pdu.EventID(), *pdu.StateKey())
	}
	return e.ReceiveOutOfBand(ctx, pdu)
}

// pendingInvite is a user's current invite to a room, refused when the
// user has none.
func (e *Engine) pendingInvite(ctx context.Context, roomID, userID string) (gomatrixserverlib.PDU, error) {
	m, nid, err := e.MembershipEventOf(ctx, roomID, userID)
	if err != nil {
		return nil, err
	}
	if m != spec.Invite || nid == 0 {
		return nil, refused("rooms: %s has no pending invite to %s", userID, roomID)
	}
	return e.outOfBandMembership(ctx, nid)
}
