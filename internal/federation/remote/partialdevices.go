package remote

import (
	"context"
	"strings"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// Device lists and partial-state rooms (Synapse's
// DeviceHandler.handle_room_un_partial_stated). While a room's state is
// partial this server knows few of its members, so its local users'
// device changes go to the servers it knows: those in the partial state
// and those the resident server named in servers_in_room
// (Service.joinedServers). A server it learns of only from the full
// state (one the resident did not name) missed those changes; so when
// the state completes, each local member's device list is sent to every
// server of the full state that shares no other room with them, as on
// a join. A server that had the changes finds the list at the stream_id
// it holds and changes nothing.

// maxCompletedQueue bounds the completed rooms waiting for Run; past it
// one is skipped (its servers catch up with the members' next change).
const maxCompletedQueue = 100

// subscribeCompleted queues the rooms whose state completes.
func (j *JoinDeviceLists) subscribeCompleted(b bus.Bus) {
	j.completed = make(chan string, maxCompletedQueue)
	b.Subscribe("federation.partial-device-lists", func(_ context.Context, c bus.Change) {
		select {
		case j.completed <- c.(rooms.PartialStateCompleted).RoomID:
		default:
			j.f.d.Log.Info("device lists for a completed room skipped: queue full")
		}
	}, rooms.TopicPartialStateCompleted)
}

// Run handles queued joins and completed rooms until ctx ends.
func (j *JoinDeviceLists) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-j.queue:
			if err := j.handle(ctx, n.Event.RoomID().String(), *n.Event.StateKey()); err != nil && ctx.Err() == nil {
				j.log.Info("device lists for a join", "err", err)
			}
		case roomID := <-j.completed:
			if err := j.stateCompleted(ctx, roomID); err != nil && ctx.Err() == nil {
				j.log.Info("device lists for a completed room", "room_id", roomID, "err", err)
			}
		}
	}
}

// stateCompleted sends the local members' device lists to the servers
// of a room's full state that share no other room with them.
func (j *JoinDeviceLists) stateCompleted(ctx context.Context, roomID string) error {
	members, err := j.f.d.Store.JoinedMembers(ctx, roomID)
	if err != nil {
		return err
	}
	servers, err := j.f.d.Store.JoinedServers(ctx, roomID)
	if err != nil {
		return err
	}
	local := ":" + j.f.d.ServerName
	for _, m := range members {
		if !strings.HasSuffix(m, local) {
			continue
		}
		known, err := j.serversSharingOtherRooms(ctx, m, roomID)
		if err != nil {
			return err
		}
		var dests []string
		for _, s := range servers {
			if s != j.f.d.ServerName && !known[s] {
				dests = append(dests, s)
			}
		}
		if err := j.sendDeviceList(ctx, m, dests); err != nil {
			return err
		}
	}
	return nil
}
