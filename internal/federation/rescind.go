package federation

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

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
		head.Content.Membership != spec.Leave || serverName(*head.StateKey) != a.d.ServerName {
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
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, pdu, a.d.KeyRing, userIDForSender); err != nil {
		return pdu.EventID(), true, &refusedPDU{fmt.Errorf("signature check failed: %w", err)}
	}
	_, err = a.d.Rooms.ReceiveRescinded(ctx, pdu)
	return pdu.EventID(), true, err
}
