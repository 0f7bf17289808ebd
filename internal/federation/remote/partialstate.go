package remote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
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
	f    *Service
	kick chan struct{}
	// retry is how long a room waits after every server failed.
	retry time.Duration
	// hold is held by every pass, and by Hold: a test keeps a room
	// partial for as long as it needs to look at it.
	hold sync.Mutex
}

func newPartialStateResync(f *Service) *PartialStateResync {
	return &PartialStateResync{f: f, kick: make(chan struct{}, 1), retry: 30 * time.Second}
}

// PartialStateResync is the worker that completes partial-state rooms
// (nil without a federation client).
func (f *Service) PartialStateResync() *PartialStateResync {
	return f.partial
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
		p.hold.Lock()
		pending := p.pass(ctx)
		p.hold.Unlock()
		var retry <-chan time.Time
		var t *time.Timer
		if pending {
			t = time.NewTimer(p.retry)
			retry = t.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-retry:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// Hold stops the worker before its next pass until release is called,
// so that a room joined meanwhile stays partial (tests look at it then).
func (p *PartialStateResync) Hold() (release func()) {
	p.hold.Lock()
	var once sync.Once
	return func() { once.Do(p.hold.Unlock) }
}

// pass tries every partial-state room once; it reports whether some
// stayed partial.
func (p *PartialStateResync) pass(ctx context.Context) bool {
	list, err := p.f.d.Rooms.PartialStateRooms(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.f.d.Log.Warn("partial-state rooms", "err", err)
		}
		return true
	}
	pending := false
	for _, r := range list {
		if err := p.f.completeRoom(ctx, r); err != nil {
			pending = true
			if ctx.Err() != nil {
				return true
			}
			p.f.d.Log.Info("completing a partial-state room", "room_id", r.RoomID, "err", err)
		}
	}
	return pending
}

// completeRoom fetches and stores one room's full state from the first
// of its servers that supplies it.
func (f *Service) completeRoom(ctx context.Context, r store.PartialStateRoom) error {
	v, err := f.d.Rooms.RoomVersion(ctx, r.RoomID)
	if err != nil {
		return err
	}
	joins, err := f.d.Rooms.EventsByID(ctx, []string{r.JoinEventID})
	if err != nil {
		return err
	}
	if len(joins) == 0 || !joins[0].HasState() {
		// The join is being stored (the mark comes first), or failed
		// and its mark could not be cleared: tried again later.
		return fmt.Errorf("join %s not stored", r.JoinEventID)
	}
	var errs []error
	for _, server := range r.Servers {
		if server == f.d.ServerName {
			continue
		}
		state, err := f.fullStateAt(ctx, server, v, r.RoomID, joins[0])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", server, err))
			continue
		}
		refused, err := f.d.Rooms.CompleteStoredPartialState(ctx, r.RoomID, state)
		if err != nil {
			return err
		}
		f.d.Log.Info("partial-state room complete", "room_id", r.RoomID, "server", server, "state", len(state),
			"refused", len(refused))
		return nil
	}
	if len(errs) == 0 {
		return errors.New("no server to fetch the state from")
	}
	return errors.Join(errs...)
}

// fullStateAt stores the state before a partial-state join and its auth
// chain, as server has them, checked, and returns the state's
// references (storeChecked: a slice at a time). What this server holds already
// is not fetched or checked again (Synapse's resync likewise fetches
// only the events it lacks): with /event only the missing events are
// asked for; from a /state answer, the state the partial state has by
// its key and the auth events other than memberships (the send_join
// answer's auth chain brought those) are left out. What the rest refers
// to is looked up here first.
func (f *Service) fullStateAt(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, roomID string, join *rooms.Event) (state []rooms.StateRef, err error) {
	self, dest := spec.ServerName(f.d.ServerName), spec.ServerName(server)
	partial, err := f.d.Rooms.StateBefore(ctx, join)
	if err != nil {
		return nil, err
	}
	ids, err := f.d.Client.LookupStateIDs(ctx, self, dest, roomID, join.EventID())
	if err != nil {
		return nil, fmt.Errorf("state_ids: %w", err)
	}
	all := append(append([]string{}, ids.StateEventIDs...), ids.AuthEventIDs...)
	// The same bounds as StateAt's: a broken answer is refused before
	// anything is looked up.
	if len(all) > maxRemoteState {
		return nil, badAnswer("state_ids from %s: %d events, more than %d", server, len(all), maxRemoteState)
	}
	for _, id := range all {
		if err := ident.CheckID(id); err != nil {
			return nil, badAnswer("state_ids from %s: event ID %q: %w", server, id, err)
		}
	}
	known, err := f.d.Rooms.EventsByID(ctx, all)
	if err != nil {
		return nil, err
	}
	have := make(map[string]*rooms.Event, len(known))
	for _, ev := range known {
		have[ev.EventID()] = ev
	}
	var missing []string
	seen := make(map[string]bool, len(all))
	for _, id := range all {
		if have[id] == nil && !seen[id] {
			seen[id] = true
			missing = append(missing, id)
		}
	}
	var resp fclient.RespState
	viaState := len(missing)*10 >= len(all)
	if viaState {
		// Most of it is missing: one /state is cheaper than many /event.
		// The spec guarantees only /state_ids and /event (some servers
		// do not serve /state): a refused /state falls back to /event.
		if resp, err = f.d.Client.LookupState(ctx, self, dest, roomID, join.EventID(), v.Version()); err != nil {
			f.d.Log.Debug("state refused, fetching the events one by one", "room_id", roomID, "server", server, "err", err)
			viaState, resp = false, fclient.RespState{}
		}
	}
	if viaState {
		resp.StateEvents = slices.DeleteFunc(resp.StateEvents, func(raw spec.RawJSON) bool {
			r := gjson.GetManyBytes(raw, "type", "state_key")
			_, ok := partial[roommodel.StateKey{Type: r[0].Str, StateKey: r[1].Str}]
			return ok && r[1].Exists()
		})
		resp.AuthEvents = slices.DeleteFunc(resp.AuthEvents, func(raw spec.RawJSON) bool {
			return gjson.GetBytes(raw, "type").Str != spec.MRoomMember
		})
	} else {
		// Their signatures are checked with the rest below. Fetched a
		// slice at a time and kept as JSON only, so that the parsed
		// events do not pile up either.
		inState := make(map[string]bool, len(ids.StateEventIDs))
		for _, id := range ids.StateEventIDs {
			inState[id] = true
		}
		fetch := f.EventProvider(server)
		for start := 0; start < len(missing); start += resyncSlice {
			pdus, err := fetch(v.Version(), missing[start:min(start+resyncSlice, len(missing))])
			if err != nil {
				return nil, err
			}
			for _, pdu := range pdus {
				if inState[pdu.EventID()] {
					resp.StateEvents = append(resp.StateEvents, pdu.JSON())
				} else {
					resp.AuthEvents = append(resp.AuthEvents, pdu.JSON())
				}
			}
		}
	}
	keys := make(map[roommodel.StateKey]bool, len(ids.StateEventIDs))
	if state, err = f.storeChecked(ctx, v, roomID, server, &resp, keys); err != nil {
		return nil, err
	}
	for _, id := range ids.StateEventIDs {
		if ev := have[id]; ev != nil && ev.StateKey() != nil && !keys[ev.Key()] {
			keys[ev.Key()] = true
			state = append(state, rooms.RefOf(ev.PDU))
		}
	}
	return state, nil
}

// resyncSlice is how many events of a state answer the resync parses,
// checks and stores at a time. Parsed, an event costs several times its
// JSON; a slice of this size is a few MiB, where the 50,000 events of a
// big room's state, all parsed at once, made the joining server's peak
// RSS 358 MiB.
const resyncSlice = 2000

// storeChecked checks and stores a state answer a slice at a time,
// oldest (by depth) first, so that the auth events an event names are
// mostly checked and stored before it (localFirst then reads them from
// the store; any other is fetched from the server); each slice's raw
// JSON is let go once it is stored. It returns the references of the
// state events stored, and refuses an answer with two events for one
// state key, as CheckStateResponse does.
func (f *Service) storeChecked(ctx context.Context, v gomatrixserverlib.IRoomVersion, roomID, server string, resp *fclient.RespState, seen map[roommodel.StateKey]bool) ([]rooms.StateRef, error) {
	type item struct {
		raw   spec.RawJSON
		state bool
		depth int64
	}
	items := make([]item, 0, len(resp.AuthEvents)+len(resp.StateEvents))
	for _, raw := range resp.AuthEvents {
		items = append(items, item{raw, false, gjson.GetBytes(raw, "depth").Int()})
	}
	for _, raw := range resp.StateEvents {
		items = append(items, item{raw, true, gjson.GetBytes(raw, "depth").Int()})
	}
	resp.AuthEvents, resp.StateEvents = nil, nil
	slices.SortStableFunc(items, func(a, b item) int { return cmp.Compare(a.depth, b.depth) })
	provider := f.localFirst(server)
	refs := make([]rooms.StateRef, 0, len(items))
	for start := 0; start < len(items); start += resyncSlice {
		batch := items[start:min(start+resyncSlice, len(items))]
		var slice fclient.RespState
		for _, it := range batch {
			if it.state {
				slice.StateEvents = append(slice.StateEvents, it.raw)
			} else {
				slice.AuthEvents = append(slice.AuthEvents, it.raw)
			}
		}
		chain, state, err := f.checkStateAnswer(ctx, v, roomID, &slice, provider)
		if err != nil {
			return nil, err
		}
		for _, p := range state {
			k := roommodel.StateKey{Type: p.Type(), StateKey: *p.StateKey()}
			if seen[k] {
				return nil, fmt.Errorf("duplicate state key tuple (%q, %q)", k.Type, k.StateKey)
			}
			seen[k] = true
			refs = append(refs, rooms.RefOf(p))
		}
		if err := f.d.Rooms.StoreResyncSlice(ctx, roomID, append(chain, state...)); err != nil {
			return nil, err
		}
		for i := range batch {
			batch[i].raw = nil
		}
	}
	return refs, nil
}

// localFirst provides the auth events a check needs from this server's
// store, and asks server for those it lacks.
func (f *Service) localFirst(server string) gomatrixserverlib.EventProvider {
	fetch := f.EventProvider(server)
	return func(v gomatrixserverlib.RoomVersion, ids []string) ([]gomatrixserverlib.PDU, error) {
		evs, err := f.d.Rooms.EventsByID(context.Background(), ids)
		if err != nil {
			return nil, err
		}
		out := make([]gomatrixserverlib.PDU, 0, len(ids))
		found := make(map[string]bool, len(evs))
		for _, ev := range evs {
			if ev.Status != roommodel.Rejected {
				out = append(out, ev.PDU)
				found[ev.EventID()] = true
			}
		}
		var rest []string
		for _, id := range ids {
			if !found[id] {
				rest = append(rest, id)
			}
		}
		if len(rest) == 0 {
			return out, nil
		}
		more, err := fetch(v, rest)
		return append(out, more...), err
	}
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
func (f *Service) importPartialJoin(ctx context.Context, via string, join gomatrixserverlib.PDU, state, chain []gomatrixserverlib.PDU, servers []string) error {
	list := []string{via}
	for _, s := range servers {
		if s != via && s != f.d.ServerName {
			list = append(list, s)
		}
	}
	if _, err := f.d.Rooms.ImportPartialJoin(ctx, join, state, chain, list); err != nil {
		return err
	}
	f.partial.wake()
	return nil
}

// joinedServers are the servers with joined members in a room, with,
// while its state is partial, those the resident server named: EDUs
// (typing, receipts, device lists) reach them too, as Synapse sends to
// its partial_state_rooms_servers.
func (f *Service) joinedServers(ctx context.Context, roomID string) ([]string, error) {
	servers, err := f.d.Store.JoinedServers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	partial, named, err := f.d.Rooms.PartialState(ctx, roomID)
	if err != nil || !partial {
		return servers, err
	}
	for _, s := range named {
		if !slices.Contains(servers, s) {
			servers = append(servers, s)
		}
	}
	return servers, nil
}
