package peer

import (
	"crypto/rand"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Room is a room the peer holds: its events and the state after each.
// Every method is safe to call from a test while the peer serves.
type Room struct {
	ID      string
	Version gomatrixserverlib.IRoomVersion
	// Creator is the peer's user who created the room.
	Creator string

	p *Peer
	// guarded by p.mu
	events      map[string]gomatrixserverlib.PDU
	order       []string
	stateAfter  map[string]stateMap
	extremities []string
}

type stateKey struct{ typ, key string }

type stateMap map[stateKey]gomatrixserverlib.PDU

func (m stateMap) list() []gomatrixserverlib.PDU {
	out := make([]gomatrixserverlib.PDU, 0, len(m))
	for _, ev := range m {
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EventID() < out[j].EventID() })
	return out
}

// CreateRoom creates a public room (room version 10) of the peer's user
// @creator: create, join, power levels, join rules, history visibility.
func (p *Peer) CreateRoom(t testing.TB) *Room {
	t.Helper()
	return p.CreateRoomVersion(t, gomatrixserverlib.RoomVersionV10)
}

// CreateRoomVersion is CreateRoom in another room version; versions whose
// room ID is the create event's (12 and up) are not supported.
func (p *Peer) CreateRoomVersion(t testing.TB, version gomatrixserverlib.RoomVersion) *Room {
	t.Helper()
	v, err := gomatrixserverlib.GetRoomVersion(version)
	if err != nil || v.DomainlessRoomIDs() {
		t.Fatalf("peer: room version %q not supported", version)
	}
	creator := p.UserID("creator")
	r := &Room{
		ID: "!" + randomString(12) + ":" + p.Name, Version: v, Creator: creator, p: p,
		events: map[string]gomatrixserverlib.PDU{}, stateAfter: map[string]stateMap{},
	}
	p.mu.Lock()
	p.rooms[r.ID] = r
	p.mu.Unlock()
	empty := ""
	r.Create(t, creator, spec.MRoomCreate, &empty, map[string]any{"creator": creator, "room_version": string(v.Version())})
	r.Create(t, creator, spec.MRoomMember, &creator, map[string]any{"membership": spec.Join})
	r.Create(t, creator, spec.MRoomPowerLevels, &empty, map[string]any{
		"users": map[string]int{creator: 100}, "users_default": 0, "events_default": 0, "state_default": 50,
		"ban": 50, "kick": 50, "redact": 50, "invite": 0,
	})
	r.Create(t, creator, spec.MRoomJoinRules, &empty, map[string]any{"join_rule": spec.Public})
	r.Create(t, creator, spec.MRoomHistoryVisibility, &empty, map[string]any{"history_visibility": "shared"})
	return r
}

// Create builds, signs and adds an event on top of the room's forward
// extremities.
func (r *Room) Create(t testing.TB, sender, typ string, stateKey *string, content any) gomatrixserverlib.PDU {
	t.Helper()
	return r.CreateAfter(t, r.Extremities(), sender, typ, stateKey, content)
}

// CreateAfter builds, signs and adds an event whose prev events are
// prevs (to make forks and gaps); its auth events come from the state
// after prevs (merged, the deeper event winning a key: enough for forks
// whose branches touch different keys).
func (r *Room) CreateAfter(t testing.TB, prevs []string, sender, typ string, stateKey *string, content any) gomatrixserverlib.PDU {
	t.Helper()
	pdu := r.Build(t, prevs, sender, typ, stateKey, content)
	r.Add(pdu)
	return pdu
}

// Build is CreateAfter without adding the event: the test decides who
// sees it.
func (r *Room) Build(t testing.TB, prevs []string, sender, typ string, stateKey *string, content any) gomatrixserverlib.PDU {
	t.Helper()
	return r.BuildWithAuth(t, prevs, sender, typ, stateKey, content)
}

// BuildWithAuth is Build with auth events of the test's choosing: each
// of auth replaces the auth event of its type and state key that the
// state after prevs gives (or joins them), so that an event can name
// auth events from a branch another server never saw.
func (r *Room) BuildWithAuth(t testing.TB, prevs []string, sender, typ string, stateKey *string, content any, auth ...string) gomatrixserverlib.PDU {
	t.Helper()
	raw, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	r.p.mu.Lock()
	before := r.stateAt(prevs)
	var depth int64
	for _, id := range prevs {
		depth = max(depth, r.events[id].Depth())
	}
	r.p.mu.Unlock()
	proto := &gomatrixserverlib.ProtoEvent{
		SenderID: sender, RoomID: r.ID, Type: typ, StateKey: stateKey, PrevEvents: nonNil(prevs), Depth: depth + 1, Content: raw,
	}
	if typ == spec.MRoomRedaction {
		// Before v11 a redaction names its target at the top level; the
		// content's redacts is kept there too, as Synapse sends it.
		var c struct {
			Redacts string `json:"redacts"`
		}
		_ = json.Unmarshal(raw, &c)
		proto.Redacts = c.Redacts
	}
	b := r.Version.NewEventBuilderFromProtoEvent(proto)
	if !(typ == spec.MRoomCreate && len(prevs) == 0) {
		authEvs, err := gomatrixserverlib.NewAuthEvents(before.list())
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AddAuthEvents(authEvs); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range auth {
		r.p.mu.Lock()
		a := r.events[id]
		r.p.mu.Unlock()
		if a == nil || a.StateKey() == nil {
			t.Fatalf("peer: %s is not a state event of the room", id)
		}
		var kept []string
		for _, have := range b.AuthEvents.([]string) {
			r.p.mu.Lock()
			h := r.events[have]
			r.p.mu.Unlock()
			if h == nil || h.Type() != a.Type() || *h.StateKey() != *a.StateKey() {
				kept = append(kept, have)
			}
		}
		b.AuthEvents = append(kept, id)
	}
	pdu, err := b.Build(time.Now(), spec.ServerName(r.p.Name), r.p.KeyID, r.p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pdu
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Add records an event in the room (one the peer built, or one another
// server sent it) and makes it a forward extremity.
func (r *Room) Add(pdu gomatrixserverlib.PDU) {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	r.add(pdu)
}

func (r *Room) add(pdu gomatrixserverlib.PDU) {
	if _, ok := r.events[pdu.EventID()]; ok {
		return
	}
	r.events[pdu.EventID()] = pdu
	r.order = append(r.order, pdu.EventID())
	after := r.stateAt(pdu.PrevEventIDs())
	if pdu.StateKey() != nil {
		after = maps.Clone(after)
		after[stateKey{pdu.Type(), *pdu.StateKey()}] = pdu
	}
	r.stateAfter[pdu.EventID()] = after
	var x []string
	for _, id := range r.extremities {
		if !slices.Contains(pdu.PrevEventIDs(), id) {
			x = append(x, id)
		}
	}
	r.extremities = append(x, pdu.EventID())
}

// stateAt is the state after a set of events (merged; p.mu held). The
// map may be an event's own: not to be changed (a message shares its
// prev event's, so that a room of many events stays cheap to hold).
func (r *Room) stateAt(ids []string) stateMap {
	if len(ids) == 1 {
		if m, ok := r.stateAfter[ids[0]]; ok {
			return m
		}
	}
	out := stateMap{}
	for _, id := range ids {
		for k, ev := range r.stateAfter[id] {
			if cur, ok := out[k]; !ok || ev.Depth() > cur.Depth() {
				out[k] = ev
			}
		}
	}
	return out
}

// stateBefore is the state before an event (p.mu held).
func (r *Room) stateBefore(id string) stateMap {
	ev, ok := r.events[id]
	if !ok {
		return nil
	}
	return r.stateAt(ev.PrevEventIDs())
}

// Extremities are the room's forward extremities.
func (r *Room) Extremities() []string {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return slices.Clone(r.extremities)
}

// Event returns an event of the room, nil when the peer lacks it.
func (r *Room) Event(id string) gomatrixserverlib.PDU {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return r.events[id]
}

// authChain is the auth chain of events: every event reachable through
// auth_events (p.mu held).
func (r *Room) authChain(evs []gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	seen := map[string]bool{}
	var out []gomatrixserverlib.PDU
	queue := slices.Clone(evs)
	for len(queue) > 0 {
		ev := queue[0]
		queue = queue[1:]
		for _, id := range ev.AuthEventIDs() {
			if seen[id] {
				continue
			}
			seen[id] = true
			if a, ok := r.events[id]; ok {
				out = append(out, a)
				queue = append(queue, a)
			}
		}
	}
	return out
}

func dedupe(evs []gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	seen := map[string]bool{}
	var out []gomatrixserverlib.PDU
	for _, ev := range evs {
		if !seen[ev.EventID()] {
			seen[ev.EventID()] = true
			out = append(out, ev)
		}
	}
	return out
}

func ids(evs []gomatrixserverlib.PDU) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID()
	}
	return out
}

func jsons(evs []gomatrixserverlib.PDU) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		out[i] = ev.JSON()
	}
	return out
}

// walkBack lists events reachable backwards from the given ones (them
// included), breadth first, stopping at stop and after limit events
// (p.mu held): /backfill and /get_missing_events.
func (r *Room) walkBack(from []string, stop map[string]bool, limit int, minDepth int64, includeFrom bool) []gomatrixserverlib.PDU {
	seen := map[string]bool{}
	queue := slices.Clone(from)
	var out []gomatrixserverlib.PDU
	for len(queue) > 0 && len(out) < limit {
		id := queue[0]
		queue = queue[1:]
		if seen[id] || stop[id] {
			continue
		}
		seen[id] = true
		ev, ok := r.events[id]
		if !ok || ev.Depth() < minDepth {
			continue
		}
		if includeFrom || !slices.Contains(from, id) {
			out = append(out, ev)
		}
		queue = append(queue, ev.PrevEventIDs()...)
	}
	return out
}

func randomString(n int) string { return rand.Text()[:n] }
