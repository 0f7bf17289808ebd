package membership

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// StateReader loads the events of a state map (the room engine).
type StateReader interface {
	StateEvents(ctx context.Context, state rooms.StateMap, keys ...roommodel.StateKey) (map[roommodel.StateKey]*rooms.Event, error)
}

// StrippedState is what a user sees of a room before joining it: the
// stripped forms of the state events clients need to show an invite or a
// knock (clientevent.StrippedTypes, Synapse's room_prejoin_state) and,
// for an invite, the inviter's own membership, as Synapse adds it
// (membership_user_id=event.sender) so that the client can show who
// invited. inviter is empty for a knock, whose sender is the knocker. It
// is the one builder behind /sync's invite_state and knock_state and
// federation's invite_room_state and knock_room_state.
func StrippedState(ctx context.Context, r StateReader, state rooms.StateMap, inviter string) ([]clientevent.Stripped, error) {
	return strippedState(ctx, r, state, inviter, false)
}

// FederationStrippedState is StrippedState as it crosses federation
// (invite_room_state, knock_room_state): every event whole, as the
// server-server spec asks since v1.16 (MSC4311: all events listed MUST be
// formatted according to the room version), so that the receiver can
// check their signatures and room; a receiving Myelin strips all but the
// create event again for its clients (clientevent.Stripped).
func FederationStrippedState(ctx context.Context, r StateReader, state rooms.StateMap, inviter string) ([]clientevent.Stripped, error) {
	return strippedState(ctx, r, state, inviter, true)
}

func strippedState(ctx context.Context, r StateReader, state rooms.StateMap, inviter string, whole bool) ([]clientevent.Stripped, error) {
	keys := make([]roommodel.StateKey, 0, len(clientevent.StrippedTypes)+1)
	for _, t := range clientevent.StrippedTypes {
		keys = append(keys, roommodel.StateKey{Type: t})
	}
	if inviter != "" {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomMember, StateKey: inviter})
	}
	found, err := r.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	out := []clientevent.Stripped{}
	for _, k := range keys {
		if ev, ok := found[k]; ok {
			st := clientevent.Strip(ev)
			if whole {
				st.Full = json.RawMessage(ev.JSON())
			}
			out = append(out, st)
		}
	}
	return out, nil
}
