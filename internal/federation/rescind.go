package federation

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// receiveRescinded takes a PDU of a room this server does not know if it
// is the leave with which an inviter withdrew a local user's invite:
// the inviter's server sends it to the invitee's server (see the
// sender's destinations), which has nothing but the invite to check it
// against. It reports whether the PDU was such a candidate; other PDUs
// of unknown rooms are the caller's to refuse.
func (a *API) receiveRescinded(ctx context.Context, origin string, raw json.RawMessage) (id string, candidate bool, err error) {
	var head struct {
		RoomID   string  `json:"room_id"`
		Type     string  `json:"type"`
		StateKey *string `json:"state_key"`
		Content  struct {
			Membership string `json:"membership"`
		} `json:"content"`
	}
	if json.Unmarshal(raw, &head) != nil || head.Type != spec.MRoomMember || head.StateKey == nil ||
		head.Content.Membership != spec.Leave || remote.ServerOf(*head.StateKey) != a.d.ServerName {
		return "", false, nil
	}
	v, err := a.d.Rooms.InviteVersion(ctx, head.RoomID, *head.StateKey)
	if err != nil {
		return "", false, nil
	}
	pdu, err := rooms.ParsePDU(v, raw)
	if err != nil {
		return "", true, &refusedPDU{fmt.Errorf("invalid event: %w", err)}
	}
	// No ACL to apply: the room's state is not here.
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, pdu, a.d.KeyRing, remote.UserIDForSender); err != nil {
		return pdu.EventID(), true, &refusedPDU{fmt.Errorf("signature check failed: %w", err)}
	}
	_, err = a.d.Rooms.ReceiveRescinded(ctx, pdu)
	return pdu.EventID(), true, err
}

// rescindsInvite reports whether a PDU of a room this server knows but
// is not in (a room a local user left and was invited to again) is a
// leave of a local user's pending invite: the room's events since are
// not this server's to fetch (the resident server refuses
// /get_missing_events and /state to a server not in the room), so the
// leave is taken as the rescission of the invite, as in an unknown room.
func (a *API) rescindsInvite(ctx context.Context, pdu gomatrixserverlib.PDU) bool {
	m, _ := pdu.Membership()
	if pdu.Type() != spec.MRoomMember || pdu.StateKey() == nil || m != spec.Leave || remote.ServerOf(*pdu.StateKey()) != a.d.ServerName {
		return false
	}
	roomID := pdu.RoomID().String()
	if current, err := a.d.Rooms.MembershipOf(ctx, roomID, *pdu.StateKey()); err != nil || current != spec.Invite {
		return false
	}
	in, err := a.d.Rooms.ServerInRoom(ctx, roomID, a.d.ServerName)
	return err == nil && !in
}
