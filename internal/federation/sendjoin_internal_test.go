package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestSendJoinAnswerFromStoredJSON: the send_join answer served from the
// stored JSON (issue 14) is the one the parsed events gave, with and
// without omit_members, in a room whose state holds outliers (as a room
// joined over federation does), a redacted state event and a redacted
// member event (served redacted), beside a rejected event and a member
// who left, with no name (so that omit_members keeps the heroes); and
// its "event" is the join itself, not the base64 string of its JSON the
// old answer sent. /state, /state_ids and /event_auth, which share the
// path, likewise.
func TestSendJoinAnswerFromStoredJSON(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dbURL, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		stream, err := rooms.OpenStream(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, priv, _ := ed25519.GenerateKey(nil)
		e := rooms.New(db, stream, bus.New(), rooms.Options{ServerName: "a.test", KeyID: "ed25519:a", PrivateKey: priv, DefaultVersion: "10"})
		r := newImportedRoom(t, e)

		// A redacted state event and a redacted membership, a rejected
		// event, then c.test's join, which the answer is for.
		topic := r.send(t, "@owner:b.test", spec.MRoomTopic, strPtr(""), map[string]any{"topic": "secret topic"})
		member := r.send(t, "@m2:b.test", spec.MRoomMember, strPtr("@m2:b.test"), map[string]any{"membership": "join", "displayname": "Secret Name"})
		for _, target := range []string{topic.EventID(), member.EventID()} {
			if _, err := e.Send(ctx, rooms.SendRequest{RoomID: r.id, Sender: "@local:a.test", Type: spec.MRoomRedaction, Redacts: target,
				Content: map[string]any{}}); err != nil {
				t.Fatal(err)
			}
		}
		if ev, err := e.Event(ctx, topic.EventID()); err != nil || ev.RedactedBy == "" {
			t.Fatalf("topic not redacted: %+v %v", ev, err)
		}
		r.send(t, "@m1:b.test", spec.MRoomMember, strPtr("@m1:b.test"), map[string]any{"membership": "leave"})
		rejected, err := e.Receive(ctx, r.build(t, "@m1:b.test", spec.MRoomPowerLevels, strPtr(""), map[string]any{"users": map[string]int{"@m1:b.test": 100}}))
		if err != nil || rejected.Status != roommodel.Rejected {
			t.Fatalf("m1's power levels: %+v %v", rejected, err)
		}
		join, err := e.ReceiveOnBehalf(ctx, r.build(t, "@joiner:c.test", spec.MRoomMember, strPtr("@joiner:c.test"), map[string]any{"membership": "join"}), "c.test")
		if err != nil || join.Status != roommodel.Accepted {
			t.Fatalf("joiner's join: %+v %v", join, err)
		}

		a := &API{d: Deps{ServerName: "a.test", Rooms: e}}
		for _, omit := range []bool{false, true} {
			t.Run(fmt.Sprintf("omit_members=%v", omit), func(t *testing.T) {
				// Both from the store: the old build fills the cache.
				got, err := a.sendJoinResponse(ctx, join, omit)
				if err != nil {
					t.Fatal(err)
				}
				want, err := sendJoinResponseParsed(ctx, a, join, omit)
				if err != nil {
					t.Fatal(err)
				}
				gotJSON, wantJSON := normalisedAnswer(t, got), normalisedAnswer(t, want)
				if !bytes.Equal(gotJSON, wantJSON) {
					t.Errorf("answer from stored JSON:\n%s\nwant (parsed events):\n%s", gotJSON, wantJSON)
				}
				if bytes.Contains(gotJSON, []byte("secret topic")) || bytes.Contains(gotJSON, []byte("Secret Name")) {
					t.Errorf("a redacted event is served with its content: %s", gotJSON)
				}
				if n := bytes.Count(gotJSON, []byte(`"type": "m.room.member"`)); omit && n > 8 || !omit && n < 11 {
					t.Errorf("omit_members %v: %d member events in the answer", omit, n)
				}
				var answer struct {
					Event json.RawMessage `json:"event"`
				}
				if err := json.Unmarshal(got.(httpapi.RawJSON), &answer); err != nil || !bytes.Equal(answer.Event, join.JSON()) {
					t.Errorf("the answer's event is %s, want the join %s (%v)", answer.Event, join.JSON(), err)
				}
				if !bytes.Contains(gotJSON, []byte(`"type": "m.room.topic"`)) {
					t.Errorf("the redacted topic is not in the answer: %s", gotJSON)
				}
			})
		}

		// /state, /state_ids and /event_auth at the join share the path.
		req := func(path string) *Request {
			hr := httptest.NewRequest(http.MethodGet, path, nil)
			hr.SetPathValue("roomId", r.id)
			hr.SetPathValue("eventId", join.EventID())
			return &Request{Request: hr, Origin: "b.test"}
		}
		stateURL := "/_matrix/federation/v1/state/" + url.PathEscape(r.id) + "?event_id=" + url.QueryEscape(join.EventID())
		before, err := e.StateBefore(ctx, join)
		if err != nil {
			t.Fatal(err)
		}
		byKey, err := e.StateEvents(ctx, before)
		if err != nil {
			t.Fatal(err)
		}
		state := slices.SortedFunc(maps.Values(byKey), func(x, y *rooms.Event) int { return int(x.NID - y.NID) })
		chain, err := e.AuthChain(ctx, state)
		if err != nil {
			t.Fatal(err)
		}
		joinChain, err := e.AuthChain(ctx, []*rooms.Event{join})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			get  func(*Request) (any, error)
			want any
		}{
			{"state", a.getState, fclient.RespState{StateEvents: parsedJSONs(state), AuthEvents: parsedJSONs(chain)}},
			{"state_ids", a.getStateIDs, fclient.RespStateIDs{StateEventIDs: parsedIDs(state), AuthEventIDs: parsedIDs(chain)}},
			{"event_auth", a.getEventAuth, fclient.RespEventAuth{AuthEvents: parsedJSONs(joinChain)}},
		} {
			got, err := c.get(req(stateURL))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			gotJSON, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			wantJSON, _ := json.Marshal(c.want)
			if !jsonEqual(gotJSON, wantJSON) {
				t.Errorf("%s from stored JSON:\n%s\nwant (parsed events):\n%s", c.name, gotJSON, wantJSON)
			}
		}
	})
}

// sendJoinResponseParsed is the send_join answer as it was built before
// issue 14: every event parsed (EventsByNID, AuthChain).
func sendJoinResponseParsed(ctx context.Context, a *API, join *rooms.Event, omitMembers bool) (any, error) {
	state, err := a.d.Rooms.StateBefore(ctx, join)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	if omitMembers {
		if keep, err = keptMembersParsed(ctx, a, state, join); err != nil {
			return nil, err
		}
	}
	nids := make([]int64, 0, len(state))
	for k, n := range state {
		if !omitMembers || k.Type != spec.MRoomMember || keep[k.StateKey] {
			nids = append(nids, n)
		}
	}
	evs, err := a.d.Rooms.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	chain, err := a.d.Rooms.AuthChain(ctx, append(evs, join))
	if err != nil {
		return nil, err
	}
	stateJSON := make([]json.RawMessage, 0, len(evs))
	inState := make(map[string]bool, len(evs))
	for _, ev := range evs {
		stateJSON = append(stateJSON, ev.JSON())
		inState[ev.EventID()] = true
	}
	chainJSON := make([]json.RawMessage, 0, len(chain))
	for _, ev := range chain {
		if !omitMembers || !inState[ev.EventID()] {
			chainJSON = append(chainJSON, ev.JSON())
		}
	}
	// The old answer had "event": join.JSON(), a []byte, which
	// encoding/json sends as a base64 string, not the event; the new one
	// sends the event, as the spec (and a restricted join's countersigned
	// copy) needs.
	resp := map[string]any{"origin": a.d.ServerName, "state": stateJSON, "auth_chain": chainJSON, "event": json.RawMessage(join.JSON())}
	if omitMembers {
		current, err := a.d.Rooms.CurrentState(ctx, join.RoomID().String())
		if err != nil {
			return nil, err
		}
		members, err := a.d.Rooms.Members(ctx, current)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		var servers []string
		for _, m := range members {
			if ms, _ := m.Membership(); ms == spec.Join {
				if uid, err := spec.NewUserID(*m.StateKey(), true); err == nil && !seen[string(uid.Domain())] {
					seen[string(uid.Domain())] = true
					servers = append(servers, string(uid.Domain()))
				}
			}
		}
		resp["members_omitted"], resp["servers_in_room"] = true, servers
	}
	return resp, nil
}

// keptMembersParsed is keptMembers as it was before issue 14, the
// memberships read from the parsed events.
func keptMembersParsed(ctx context.Context, a *API, state rooms.StateMap, join *rooms.Event) (map[string]bool, error) {
	keep := map[string]bool{string(join.SenderID()): true}
	var c struct {
		Via string `json:"join_authorised_via_users_server"`
	}
	if json.Unmarshal(join.Content(), &c) == nil && c.Via != "" {
		keep[c.Via] = true
	}
	_, named := state[roommodel.StateKey{Type: spec.MRoomName}]
	_, aliased := state[roommodel.StateKey{Type: spec.MRoomCanonicalAlias}]
	if named || aliased {
		return keep, nil
	}
	var nids []int64
	for k, n := range state {
		if k.Type == spec.MRoomMember {
			nids = append(nids, n)
		}
	}
	evs, err := a.d.Rooms.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	members := make(map[string]string, len(evs))
	for _, ev := range evs {
		m, _ := ev.Membership()
		members[*ev.StateKey()] = m
	}
	for _, h := range rooms.Heroes(members, string(join.SenderID())) {
		keep[h] = true
	}
	return keep, nil
}

// normalisedAnswer marshals an answer as it goes on the wire, its lists
// sorted (the spec gives them no order; the state comes from a map).
func normalisedAnswer(t *testing.T, answer any) []byte {
	t.Helper()
	raw, err := json.Marshal(answer)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"state", "auth_chain", "servers_in_room"} {
		list, _ := m[k].([]any)
		if list == nil && k != "servers_in_room" {
			t.Fatalf("answer without %s: %s", k, raw)
		}
		slices.SortFunc(list, func(x, y any) int {
			bx, _ := json.Marshal(x)
			by, _ := json.Marshal(y)
			return bytes.Compare(bx, by)
		})
	}
	out, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func strPtr(s string) *string { return &s }

func parsedJSONs(evs []*rooms.Event) gomatrixserverlib.EventJSONs {
	out := make(gomatrixserverlib.EventJSONs, len(evs))
	for i, ev := range evs {
		out[i] = ev.JSON()
	}
	return out
}

func parsedIDs(evs []*rooms.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID()
	}
	return out
}

// jsonEqual compares two JSON texts as values, in their own order.
func jsonEqual(x, y []byte) bool {
	var vx, vy any
	if json.Unmarshal(x, &vx) != nil || json.Unmarshal(y, &vy) != nil {
		return false
	}
	return reflect.DeepEqual(vx, vy)
}

// importedRoom is a room of b.test that a.test joined through
// send_join: its state and auth chain are outliers.
type importedRoom struct {
	e     *rooms.Engine
	id    string
	v     gomatrixserverlib.IRoomVersion
	key   ed25519.PrivateKey
	depth int64
}

// newImportedRoom imports a room of b.test (version 10, no name) with
// eight members of b.test besides its owner (more than the heroes of
// its summary); @local:a.test joins it with power 100.
func newImportedRoom(t *testing.T, e *rooms.Engine) *importedRoom {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	r := &importedRoom{e: e, id: "!imported:b.test", v: gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV10), key: key}
	var prev string
	build := func(sender, typ string, stateKey *string, content any, auth ...string) gomatrixserverlib.PDU {
		raw, _ := json.Marshal(content)
		r.depth++
		proto := &gomatrixserverlib.ProtoEvent{SenderID: sender, RoomID: r.id, Type: typ, StateKey: stateKey, Depth: r.depth,
			Content: raw, AuthEvents: append([]string{}, auth...), PrevEvents: []string{}}
		if prev != "" {
			proto.PrevEvents = []string{prev}
		}
		pdu, err := r.v.NewEventBuilderFromProtoEvent(proto).Build(time.Now(), spec.ServerName("b.test"), "ed25519:b", key)
		if err != nil {
			t.Fatal(err)
		}
		prev = pdu.EventID()
		return pdu
	}
	owner := "@owner:b.test"
	create := build(owner, spec.MRoomCreate, strPtr(""), map[string]any{"creator": owner, "room_version": "10"})
	ownerJoin := build(owner, spec.MRoomMember, strPtr(owner), map[string]any{"membership": "join"}, create.EventID())
	power := build(owner, spec.MRoomPowerLevels, strPtr(""), map[string]any{"users": map[string]int{owner: 100, "@local:a.test": 100}},
		create.EventID(), ownerJoin.EventID())
	base := []string{create.EventID(), power.EventID()}
	rules := build(owner, spec.MRoomJoinRules, strPtr(""), map[string]any{"join_rule": "public"}, append(base, ownerJoin.EventID())...)
	state := []gomatrixserverlib.PDU{create, ownerJoin, power, rules}
	for i := 1; i <= 8; i++ {
		m := fmt.Sprintf("@m%d:b.test", i)
		state = append(state, build(m, spec.MRoomMember, strPtr(m), map[string]any{"membership": "join"}, append(base, rules.EventID())...))
	}
	join := build("@local:a.test", spec.MRoomMember, strPtr("@local:a.test"), map[string]any{"membership": "join"}, append(base, rules.EventID())...)
	if _, err := e.ImportJoin(context.Background(), join, state, nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// build makes an event of b.test's (or c.test's: the key is the test's)
// on the room's head with the auth events the spec selects from the
// current state.
func (r *importedRoom) build(t *testing.T, sender, typ string, stateKey *string, content any) gomatrixserverlib.PDU {
	t.Helper()
	ctx := context.Background()
	prevs, depth, err := r.e.Extremities(ctx, r.id)
	if err != nil {
		t.Fatal(err)
	}
	current, err := r.e.CurrentState(ctx, r.id)
	if err != nil {
		t.Fatal(err)
	}
	keys := []roommodel.StateKey{{Type: spec.MRoomCreate}, {Type: spec.MRoomPowerLevels}, {Type: spec.MRoomMember, StateKey: sender}}
	if m, _ := content.(map[string]any)["membership"]; m == spec.Join {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomJoinRules})
	}
	evs, err := r.e.StateEvents(ctx, current, keys...)
	if err != nil {
		t.Fatal(err)
	}
	var auth []string
	for _, k := range keys {
		if ev, ok := evs[k]; ok {
			auth = append(auth, ev.EventID())
		}
	}
	raw, _ := json.Marshal(content)
	server, _ := spec.NewUserID(sender, true)
	pdu, err := r.v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{SenderID: sender, RoomID: r.id, Type: typ,
		StateKey: stateKey, Depth: depth + 1, Content: raw, AuthEvents: auth, PrevEvents: prevs}).
		Build(time.Now(), server.Domain(), "ed25519:b", r.key)
	if err != nil {
		t.Fatal(err)
	}
	return pdu
}

// send receives an event of b.test's that must be accepted.
func (r *importedRoom) send(t *testing.T, sender, typ string, stateKey *string, content any) *rooms.Event {
	t.Helper()
	ev, err := r.e.Receive(context.Background(), r.build(t, sender, typ, stateKey, content))
	if err != nil || ev.Status != roommodel.Accepted {
		t.Fatalf("%s's %s: %+v %v", sender, typ, ev, err)
	}
	return ev
}
