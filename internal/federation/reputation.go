package federation

import (
	"context"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Reputation is what the server's reputation feeds decide about what
// other servers send (issue 16 item 5; reputation.Points).
type Reputation interface {
	// EventVerdict: events of a listed sender are hidden from local users
	// (the room engine decides that when they are read); with a takedown
	// they are not stored at all. The event ID is recorded.
	EventVerdict(ctx context.Context, sender, eventID string) (hidden, takedown bool)
	// RefusesInvite: an invite from a listed user or server, or to a
	// listed room, is refused; reason is the listing rule's.
	RefusesInvite(ctx context.Context, sender, roomID, eventID string) (reason string, refused bool)
}

// takenDown refuses a PDU whose sender the reputation feeds list with a
// takedown recommendation (m.takedown): it is answered as a refused
// event in the transaction, as Synapse answers an event it rejects, and
// never stored, nor fetched again as a missing event (which goes through
// the same check). State events are kept, though, hidden from nobody:
// the room's state depends on them, and dropping a member or power
// levels event would leave this server unable to follow the room; the
// events after them are then judged by their own senders. A listed
// sender without a takedown has its events stored, and hidden at read
// time (rooms.Engine.HiddenByReputation), so that removing the rule
// shows them again. Either way the decision is recorded with the event
// ID, once, as the event arrives.
func (a *API) takenDown(ctx context.Context, pdu gomatrixserverlib.PDU) error {
	if a.d.Reputation == nil {
		return nil
	}
	_, takedown := a.d.Reputation.EventVerdict(ctx, string(pdu.SenderID()), pdu.EventID())
	if takedown && pdu.StateKey() == nil {
		return &refusedPDU{fmt.Errorf("the sender %s is taken down by this server's reputation feeds", pdu.SenderID())}
	}
	return nil
}

// refuseListedInvite refuses an invite from a user or server the
// reputation feeds list, or to a room they list, with 403 M_FORBIDDEN,
// as Synapse answers an invite its spam checker refuses.
func (a *API) refuseListedInvite(ctx context.Context, pdu gomatrixserverlib.PDU) error {
	if a.d.Reputation == nil {
		return nil
	}
	if reason, refused := a.d.Reputation.RefusesInvite(ctx, string(pdu.SenderID()), pdu.RoomID().String(), pdu.EventID()); refused {
		if reason == "" {
			return mxerr.Forbidden("Invites from %s are blocked by this server's reputation feeds", pdu.SenderID())
		}
		return mxerr.Forbidden("Invites from %s are blocked by this server's reputation feeds: %s", pdu.SenderID(), reason)
	}
	return nil
}
