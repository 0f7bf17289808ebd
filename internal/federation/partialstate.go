package federation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Completing the state of rooms joined with partial state (send_join
// with omit_members; the engine side is in rooms/partial.go). As
// Synapse's _sync_partial_state_room does: ask the servers in the room,
// the one joined through first, for the state before our join with
// /state_ids, fetch what this server lacks with /event, or with /state
// when it lacks most of it (Synapse's threshold: a tenth), check it
// (signatures, each event allowed by its auth events) and hand it to
// the room engine. A room whose servers all fail is tried again later.

// PartialStateResync is the background worker that completes
// partial-state rooms.
type PartialStateResync struct {
	a    *API
	kick chan struct{}
	// retry is how long a room waits after every server failed.
	retry time.Duration
	// done is closed and replaced each time a pass ends (tests wait on it
	// through Settled).
	mu   sync.Mutex
	done chan struct{}
}

func newPartialStateResync(a *API) *PartialStateResync {
	return &PartialStateResync{a: a, kick: make(chan struct{}, 1), retry: 30 * time.Second, done: make(chan struct{})}
}

// PartialStateResync is the worker that completes partial-state rooms
// (nil without a federation client).
func (a *API) PartialStateResync() *PartialStateResync {
	return a.partial
}

// wake asks the worker for a pass (a partial join just happened).
func (p *PartialStateResync) wake() {
	if p == nil {
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run completes partial-state rooms until ctx ends: at start (rooms left
// partial by a restart), after each partial join, and every retry
// period while some room stays partial.
func (p *PartialStateResync) Run(ctx context.Context) error {
	for {
		pending := p.pass(ctx)
		p.mu.Lock()
		close(p.done)
		p.done = make(chan struct{})
		p.mu.Unlock()
		var retry <-chan time.Time
		if pending {
			t := time.NewTimer(p.retry)
			defer t.Stop()
			retry = t.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-retry:
		}
	}
}

// pass tries every partial-state room once; it reports whether some
// stayed partial.
func (p *PartialStateResync) pass(ctx context.Context) bool {
	list, err := p.a.d.Rooms.PartialStateRooms(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.a.d.Log.Warn("partial-state rooms", "err", err)
		}
		return true
	}
	pending := false
	for _, r := range list {
		if err := p.a.completeRoom(ctx, r); err != nil {
			pending = true
			if ctx.Err() != nil {
				return true
			}
			p.a.d.Log.Info("completing a partial-state room", "room_id", r.RoomID, "err", err)
		}
	}
	return pending
}

// completeRoom fetches and stores one room's full state from the first
// of its servers that supplies it.
func (a *API) completeRoom(ctx context.Context, r store.PartialStateRoom) error {
	v, err := a.d.Rooms.RoomVersion(ctx, r.RoomID)
	if err != nil {
		return err
	}
	var errs []error
	for _, server := range r.Servers {
		if server == a.d.ServerName {
			continue
		}
		state, chain, err := a.fullStateAt(ctx, server, v, r.RoomID, r.JoinEventID)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", server, err))
			continue
		}
		refused, err := a.d.Rooms.CompletePartialState(ctx, r.RoomID, state, chain)
		if err != nil {
			return err
		}
		a.d.Log.Info("partial-state room complete", "room_id", r.RoomID, "server", server, "state", len(state),
			"refused", len(refused))
		return nil
	}
	if len(errs) == 0 {
		return errors.New("no server to fetch the state from")
	}
	return errors.Join(errs...)
}

// fullStateAt is the state before an event and its auth chain, as
// server has them, checked.
func (a *API) fullStateAt(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, roomID, eventID string) (state, chain []gomatrixserverlib.PDU, err error) {
	self, dest := spec.ServerName(a.d.ServerName), spec.ServerName(server)
	ids, err := a.d.Client.LookupStateIDs(ctx, self, dest, roomID, eventID)
	if err != nil {
		return nil, nil, fmt.Errorf("state_ids: %w", err)
	}
	all := append(append([]string{}, ids.StateEventIDs...), ids.AuthEventIDs...)
	known, err := a.d.Rooms.EventsByID(ctx, all)
	if err != nil {
		return nil, nil, err
	}
	have := make(map[string]*rooms.Event, len(known))
	for _, ev := range known {
		have[ev.EventID()] = ev
	}
	missing := 0
	for _, id := range all {
		if have[id] == nil {
			missing++
		}
	}
	var resp fclient.RespState
	if missing*10 >= len(all) {
		// Most of it is missing: one /state is cheaper than many /event.
		if resp, err = a.d.Client.LookupState(ctx, self, dest, roomID, eventID, v.Version()); err != nil {
			return nil, nil, fmt.Errorf("state: %w", err)
		}
	} else {
		fetch := func(ids []string) (gomatrixserverlib.EventJSONs, error) {
			out := make(gomatrixserverlib.EventJSONs, 0, len(ids))
			for _, id := range ids {
				if ev := have[id]; ev != nil {
					out = append(out, ev.JSON())
					continue
				}
				pdu, err := a.fetchEvent(ctx, server, v, id)
				if err != nil {
					return nil, err
				}
				out = append(out, pdu.JSON())
			}
			return out, nil
		}
		if resp.StateEvents, err = fetch(ids.StateEventIDs); err != nil {
			return nil, nil, err
		}
		if resp.AuthEvents, err = fetch(ids.AuthEventIDs); err != nil {
			return nil, nil, err
		}
	}
	// CheckStateResponse answers the auth chain first.
	chain, state, err = gomatrixserverlib.CheckStateResponse(ctx, &resp, v.Version(), a.d.KeyRing, a.eventProvider(server), userIDForSender)
	return state, chain, err
}

// partialAnswer is what a send_join answer says about partial state.
type partialAnswer struct {
	omitted bool
	servers []string
}

// record keeps members_omitted and servers_in_room, which the spec
// requires with it; a server that omitted members without naming the
// servers in the room still gets the state fetched from itself.
func (p *partialAnswer) record(r fclient.RespSendJoin) {
	p.omitted = r.MembersOmitted
	for _, s := range r.ServersInRoom {
		if config.ValidateServerName(s) == nil && !contains(p.servers, s) {
			p.servers = append(p.servers, s)
		}
	}
}

// importPartialJoin stores a join whose answer omitted the members and
// wakes the worker that completes its state. The server joined through
// is asked first.
func (a *API) importPartialJoin(ctx context.Context, via string, join gomatrixserverlib.PDU, state, chain []gomatrixserverlib.PDU, servers []string) error {
	list := []string{via}
	for _, s := range servers {
		if s != via && s != a.d.ServerName {
			list = append(list, s)
		}
	}
	if _, err := a.d.Rooms.ImportPartialJoin(ctx, join, state, chain, list); err != nil {
		return err
	}
	a.partial.wake()
	return nil
}
