package remote

import (
	"context"
	"sort"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// The federation admin API (Synapse's docs/usage/administration/admin_api/
// federation.md): the servers this one federates with and the sender's
// back-off for each, read from the sender's own state.

// DestinationsStore is what the federation admin API reads.
type DestinationsStore interface {
	DestinationRows(ctx context.Context) ([]store.DestinationRow, error)
	JoinedMemberServers(ctx context.Context) ([]string, error)
	QueueCounts(ctx context.Context) (map[string]store.QueueCount, error)
	RoomsWithServer(ctx context.Context, server string) ([]string, error)
	DestinationRoomPositions(ctx context.Context, destination string) (map[string]int64, error)
	Destination(ctx context.Context, destination string) (store.DestinationState, error)
}

// RetryTimings is a destination's retry timings in Synapse's terms.
type RetryTimings struct {
	Destination string
	// RetryLastTS is the last failed attempt (0 when the last succeeded).
	RetryLastTS int64
	// RetryInterval is the wait after that attempt (0 when not failing).
	RetryInterval int64
	// FailureTS is when the failures began (0: none).
	FailureTS int64
	// LastSuccessfulStreamOrdering is the stream position of the newest
	// event delivered to the destination (0: none yet).
	LastSuccessfulStreamOrdering int64
	// Queued is what waits to be delivered (not in Synapse's API).
	Queued store.QueueCount
}

// Destinations answers the federation admin API.
type Destinations struct {
	serverName string
	store      DestinationsStore
	sender     *Sender
}

// NewDestinations reads destinations from st; sender (nil without
// federation) is woken by a connection reset.
func NewDestinations(serverName string, st DestinationsStore, sender *Sender) *Destinations {
	return &Destinations{serverName: serverName, store: st, sender: sender}
}

func fromState(dest string, st store.DestinationState) RetryTimings {
	d := RetryTimings{Destination: dest}
	if st.Failures > 0 {
		d.RetryLastTS, d.FailureTS = st.RetryLastTS, st.FailureTS
		d.RetryInterval = max(0, st.RetryAfterTS-st.RetryLastTS)
	}
	return d
}

// All lists the servers this one federates with: every server with a
// member joined to a room here, every server with deliveries queued, and
// every server in back-off; sorted by name.
func (d *Destinations) All(ctx context.Context) ([]RetryTimings, error) {
	recorded, err := d.store.DestinationRows(ctx)
	if err != nil {
		return nil, err
	}
	joined, err := d.store.JoinedMemberServers(ctx)
	if err != nil {
		return nil, err
	}
	queued, err := d.store.QueueCounts(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]RetryTimings{}
	for _, name := range joined {
		if name != d.serverName {
			byName[name] = RetryTimings{Destination: name}
		}
	}
	for name := range queued {
		if name != d.serverName {
			byName[name] = RetryTimings{Destination: name}
		}
	}
	for _, f := range recorded {
		// A destination delivered to once but no longer shared nor
		// failing is left out, as before any delivery was recorded.
		if _, listed := byName[f.Destination]; !listed && f.Failures == 0 {
			continue
		}
		t := fromState(f.Destination, f.DestinationState)
		t.LastSuccessfulStreamOrdering = f.LastSuccessfulStreamOrdering
		byName[f.Destination] = t
	}
	out := make([]RetryTimings, 0, len(byName))
	for name, v := range byName {
		v.Queued = queued[name]
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out, nil
}

// Get is one destination; 404 M_NOT_FOUND for a server this one does not
// federate with, as Synapse answers.
func (d *Destinations) Get(ctx context.Context, dest string) (RetryTimings, error) {
	all, err := d.All(ctx)
	if err != nil {
		return RetryTimings{}, err
	}
	i := sort.Search(len(all), func(i int) bool { return all[i].Destination >= dest })
	if i == len(all) || all[i].Destination != dest {
		return RetryTimings{}, mxerr.NotFound("Unknown destination")
	}
	return all[i], nil
}

// DestinationRoom is a room a destination shares with this server and
// the stream position of the room's last event delivered to it (0: none
// yet), Synapse's destination_rooms.stream_ordering.
type DestinationRoom struct {
	RoomID         string
	StreamOrdering int64
}

// Rooms lists the rooms a destination has joined members in, by room ID.
func (d *Destinations) Rooms(ctx context.Context, dest string) ([]DestinationRoom, error) {
	if _, err := d.Get(ctx, dest); err != nil {
		return nil, err
	}
	rooms, err := d.store.RoomsWithServer(ctx, dest)
	if err != nil {
		return nil, err
	}
	positions, err := d.store.DestinationRoomPositions(ctx, dest)
	if err != nil {
		return nil, err
	}
	sort.Strings(rooms)
	out := make([]DestinationRoom, len(rooms))
	for i, r := range rooms {
		out[i] = DestinationRoom{RoomID: r, StreamOrdering: positions[r]}
	}
	return out, nil
}

// ResetConnection ends a destination's back-off and sends its queue now
// (Synapse: 400 for this server or a destination not in back-off).
func (d *Destinations) ResetConnection(ctx context.Context, dest string) error {
	if dest == d.serverName {
		return mxerr.InvalidParam("Cannot reset the connection to this server")
	}
	if _, err := d.Get(ctx, dest); err != nil {
		return err
	}
	st, err := d.store.Destination(ctx, dest)
	if err != nil {
		return err
	}
	if st.Failures == 0 {
		return mxerr.InvalidParam("The retry timing does not need to be reset for a destination.")
	}
	if d.sender == nil {
		return mxerr.InvalidParam("Federation is disabled")
	}
	d.sender.ResetBackoff(ctx, dest)
	return nil
}

// ResetBackoff ends dest's back-off at an admin's request and sends its
// queue now, as when the destination reaches this server.
func (s *Sender) ResetBackoff(ctx context.Context, dest string) {
	s.up.Remove(dest)
	s.RemoteUp(ctx, dest)
}
