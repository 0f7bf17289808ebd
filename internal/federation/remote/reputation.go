package remote

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib"
)

// TakedownScreen is what the server's reputation feeds decide about an
// event from another server (reputation.Points.EventVerdict): with a
// takedown recommendation it is not stored.
type TakedownScreen interface {
	EventVerdict(ctx context.Context, sender, eventID string) (hidden, takedown bool)
}

// MediaIndex records the media an event references with its room
// (reputation.MediaRooms.Posted): backfilled events are stored without
// the notification the index otherwise hears them by.
type MediaIndex interface {
	Posted(roomID string, content []byte)
}

// takenDown reports whether a backfilled event is left out: a non-state
// event whose sender the feeds list for a takedown, as the transaction
// path refuses it when it arrives live (federation's takenDown), so that
// history fetched later does not bring back what the live path dropped.
// State events are stored as there: the room's state depends on them.
// The events after a hole get the state before them from the server, as
// after any event the batch lacks.
func (f *Service) takenDown(ctx context.Context, pdu gomatrixserverlib.PDU) bool {
	if f.d.Reputation == nil || pdu.StateKey() != nil {
		return false
	}
	_, takedown := f.d.Reputation.EventVerdict(ctx, string(pdu.SenderID()), pdu.EventID())
	return takedown
}
