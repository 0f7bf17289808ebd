package clientapi_test

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// visGet makes an authenticated GET and decodes the JSON answer into out
// (when not nil); it returns the HTTP status and errcode.
func visGet(c *mautrix.Client, out any, query map[string]string, path ...any) (int, string) {
	u := c.BuildURLWithQuery(mautrix.ClientURLPath(append([]any{"v3"}, path...)), query)
	_, err := c.MakeRequest(context.Background(), http.MethodGet, u, nil, out)
	return syStatus(err)
}

// visLabels maps event IDs to the labels a test gave them.
type visLabels map[string]string

// seen returns the sorted labels of the labelled events among evs.
func (l visLabels) seen(evs []syEvent) []string {
	var out []string
	for _, ev := range evs {
		if label, ok := l[ev.EventID]; ok {
			out = append(out, label)
		}
	}
	sort.Strings(out)
	return out
}

func visSorted(s ...string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return out
}

// visMessages pages /messages backwards from the end of the room.
func visMessages(c *mautrix.Client, roomID id.RoomID) ([]syEvent, int, string) {
	var resp struct {
		Chunk []syEvent `json:"chunk"`
	}
	status, code := visGet(c, &resp, map[string]string{"dir": "b", "limit": "1000"}, "rooms", roomID, "messages")
	return resp.Chunk, status, code
}

// TestHistoryVisibilityMatrix checks, for each history visibility, what a
// user who is invited, joins and leaves later sees of the messages sent
// before the invite, between invite and join, while joined and after
// leaving, on /messages, /context, /event, /sync, /state and /members; and
// what a user who never joined sees (only world_readable rooms are open
// to them).
func TestHistoryVisibilityMatrix(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		eve := s.Register("eve", "pw")
		contextServed := true

		// Expected labels bob sees: while joined, and after leaving (/event
		// may show events after the leave only in world_readable rooms).
		cases := []struct {
			hv                     string
			whileJoined, afterLeft []string
		}{
			{"world_readable", visSorted("before", "invite", "between", "joined"), visSorted("before", "invite", "between", "joined")},
			{"shared", visSorted("before", "invite", "between", "joined"), visSorted("before", "invite", "between", "joined")},
			{"invited", visSorted("invite", "between", "joined"), visSorted("invite", "between", "joined")},
			// Bob's own invite is hidden too: neither "invite" (before) nor
			// nothing (after) may see a "joined" room.
			{"joined", []string{"joined"}, []string{"joined"}},
		}
		for _, tc := range cases {
			t.Run(tc.hv, func(t *testing.T) {
				room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Topic: "old topic", InitialState: []*event.Event{{
					Type: event.StateHistoryVisibility, StateKey: new(string), Content: event.Content{Raw: map[string]any{"history_visibility": tc.hv}},
				}}})
				labels := visLabels{}
				send := func(label string) string {
					evID := sySend(t, alice, room, label)
					labels[evID] = label
					return evID
				}
				ids := map[string]string{}
				ids["before"] = send("before")
				syInvite(t, alice, room, bob.UserID)
				if inv, err := alice.FullStateEvent(ctx, room, event.StateMember, bob.UserID.String()); err != nil {
					t.Fatalf("invite event: %v", err)
				} else {
					ids["invite"] = inv.ID.String()
					labels[inv.ID.String()] = "invite"
				}
				ids["between"] = send("between")
				syJoin(t, bob, room)
				ids["joined"] = send("joined")
				all := []string{"before", "invite", "between", "joined"}

				check := func(phase string, want []string, leftRoom bool) {
					t.Helper()
					// /messages
					chunk, status, code := visMessages(bob, room)
					if status != http.StatusOK {
						t.Fatalf("%s: bob's /messages: %d %s", phase, status, code)
					}
					if got := labels.seen(chunk); !slices.Equal(got, want) {
						t.Fatalf("%s: bob's /messages shows %v, want %v", phase, got, want)
					}
					// /event and /context
					for _, label := range append(all, "after") {
						evID, ok := ids[label]
						if !ok {
							continue
						}
						visible := slices.Contains(want, label)
						mayVary := label == "after" && tc.hv == "world_readable"
						var ev syEvent
						status, code := visGet(bob, &ev, nil, "rooms", room, "event", evID)
						switch {
						case label == "after" && tc.hv == "world_readable":
							if status != http.StatusOK {
								t.Fatalf("%s: /event of %q in a world_readable room: %d %s", phase, label, status, code)
							}
						case visible && (status != http.StatusOK || ev.EventID != evID):
							t.Fatalf("%s: /event of visible %q: %d %s", phase, label, status, code)
						case !visible && (status != http.StatusNotFound || code != "M_NOT_FOUND"):
							t.Fatalf("%s: /event of hidden %q: %d %s, want 404 M_NOT_FOUND", phase, label, status, code)
						}
						if !contextServed {
							continue
						}
						var cx struct {
							Event        syEvent   `json:"event"`
							EventsBefore []syEvent `json:"events_before"`
							EventsAfter  []syEvent `json:"events_after"`
						}
						status, code = visGet(bob, &cx, map[string]string{"limit": "20"}, "rooms", room, "context", evID)
						if status == http.StatusNotFound && code == "M_UNRECOGNIZED" {
							contextServed = false
							continue
						}
						switch {
						case mayVary:
						case visible && (status != http.StatusOK || cx.Event.EventID != evID):
							t.Fatalf("%s: /context of visible %q: %d %s", phase, label, status, code)
						case !visible && status != http.StatusNotFound:
							t.Fatalf("%s: /context of hidden %q: %d %s, want 404", phase, label, status, code)
						}
						around := labels.seen(append(cx.EventsBefore, cx.EventsAfter...))
						for _, l := range around {
							if !slices.Contains(want, l) && !(tc.hv == "world_readable" && l == "after") {
								t.Fatalf("%s: /context of %q shows hidden %q", phase, label, l)
							}
						}
					}
					// /sync
					f := syFilter(map[string]any{"room": map[string]any{"rooms": []string{room.String()}, "include_leave": true,
						"timeline": map[string]any{"limit": 100}}})
					resp := sySync(t, bob, map[string]string{"filter": f})
					r := resp.Rooms.Join[room.String()]
					if leftRoom {
						r = resp.Rooms.Leave[room.String()]
					}
					if r == nil {
						t.Fatalf("%s: room missing from bob's sync: %+v", phase, resp.Rooms)
					}
					if got := labels.seen(r.Timeline.Events); !slices.Equal(got, want) {
						t.Fatalf("%s: bob's sync timeline shows %v, want %v", phase, got, want)
					}
					if got := labels.seen(r.State.Events); len(got) != 0 {
						t.Fatalf("%s: messages in bob's sync state: %v", phase, got)
					}
				}

				// While invited, only world_readable rooms can be read.
				syInvite(t, alice, room, carol.UserID)
				_, status, _ := visMessages(carol, room)
				if want := tc.hv == "world_readable"; want != (status == http.StatusOK) {
					t.Fatalf("invited carol's /messages: %d", status)
				}
				if tc.hv != "world_readable" && status != http.StatusForbidden {
					t.Fatalf("invited carol's /messages: %d, want 403", status)
				}

				check("joined", tc.whileJoined, false)

				// After leaving.
				syLeave(t, bob, room)
				ids["after"] = send("after")
				newTopic := syState(t, alice, room, "m.room.topic", "", map[string]any{"topic": "new topic"})
				syJoin(t, carol, room)
				check("left", tc.afterLeft, true)

				// /state and /members show the room as bob left it.
				var topic map[string]any
				if status, code := visGet(bob, &topic, nil, "rooms", room, "state", "m.room.topic", ""); status != http.StatusOK || topic["topic"] != "old topic" {
					t.Fatalf("bob's topic after leaving: %d %s %v", status, code, topic)
				}
				var state []syEvent
				if status, code := visGet(bob, &state, nil, "rooms", room, "state"); status != http.StatusOK {
					t.Fatalf("bob's /state after leaving: %d %s", status, code)
				}
				if cm := syFind(state, "m.room.member", carol.UserID.String()); slices.Contains(syIDs(state), newTopic) || cm == nil || cm.membership() != "invite" {
					t.Fatalf("bob's /state after leaving shows later state: %+v", state)
				}
				if own := syFind(state, "m.room.member", bob.UserID.String()); own == nil || own.membership() != "leave" {
					t.Fatalf("bob's /state after leaving lacks his leave")
				}
				var members struct {
					Chunk []syEvent `json:"chunk"`
				}
				if status, code := visGet(bob, &members, nil, "rooms", room, "members"); status != http.StatusOK {
					t.Fatalf("bob's /members after leaving: %d %s", status, code)
				}
				if m := syFind(members.Chunk, "m.room.member", carol.UserID.String()); m == nil || m.membership() != "invite" {
					t.Fatalf("bob's /members after leaving shows carol's later join: %+v", m)
				}
				// Not even with a later "at".
				now := sySync(t, alice, map[string]string{"filter": `{"room":{"rooms":[]}}`}).NextBatch
				members.Chunk = nil
				if status, code := visGet(bob, &members, map[string]string{"at": now}, "rooms", room, "members"); status != http.StatusOK {
					t.Fatalf("bob's /members?at after leaving: %d %s", status, code)
				}
				if m := syFind(members.Chunk, "m.room.member", carol.UserID.String()); m == nil || m.membership() != "invite" {
					t.Fatalf("bob's /members?at=now after leaving shows carol's later join: %+v", m)
				}
				if status, _ := visGet(bob, nil, nil, "rooms", room, "event", newTopic); status != http.StatusOK && tc.hv == "world_readable" || status != http.StatusNotFound && tc.hv != "world_readable" {
					t.Fatalf("bob's /event of the topic set after he left: %d", status)
				}

				// Eve never joined: world_readable rooms are open to her.
				chunk, status, _ := visMessages(eve, room)
				var eveState []syEvent
				stateStatus, _ := visGet(eve, &eveState, nil, "rooms", room, "state")
				if tc.hv == "world_readable" {
					if status != http.StatusOK || !slices.Equal(labels.seen(chunk), visSorted("before", "invite", "between", "joined", "after")) {
						t.Fatalf("eve's /messages of a world_readable room: %d %v", status, labels.seen(chunk))
					}
					if stateStatus != http.StatusOK || !slices.Contains(syIDs(eveState), newTopic) {
						t.Fatalf("eve's /state of a world_readable room: %d", stateStatus)
					}
				} else if status != http.StatusForbidden || stateStatus != http.StatusForbidden {
					t.Fatalf("eve's /messages and /state of a %s room: %d %d, want 403", tc.hv, status, stateStatus)
				}
				for label, evID := range ids {
					status, _ := visGet(eve, nil, nil, "rooms", room, "event", evID)
					if want := map[bool]int{true: http.StatusOK, false: http.StatusNotFound}[tc.hv == "world_readable"]; status != want {
						t.Fatalf("eve's /event of %q: %d, want %d", label, status, want)
					}
				}
			})
		}
		if !contextServed {
			t.Log("/context is not served yet: skipped its checks")
		}
	})
}

// TestRoomStateEndpoints checks /state, /state/{type}/{key}, state
// deduplication, /members filters, /joined_members, /joined_rooms,
// forget, transaction IDs and redaction.
func TestRoomStateEndpoints(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		dave := s.Register("dave", "pw")
		// Membership events carry the profile at the time of joining.
		if err := bob.SetDisplayName(ctx, "Bobby"); err != nil {
			t.Fatal(err)
		}
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "State"})

		// GET /state and /state/{type}/{key}.
		var state []syEvent
		if status, code := visGet(alice, &state, nil, "rooms", room, "state"); status != http.StatusOK {
			t.Fatalf("/state: %d %s", status, code)
		}
		for _, typ := range []string{"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.name"} {
			if syFind(state, typ, "") == nil {
				t.Fatalf("/state lacks %s", typ)
			}
		}
		var name map[string]any
		if status, _ := visGet(alice, &name, nil, "rooms", room, "state", "m.room.name", ""); status != http.StatusOK || name["name"] != "State" || len(name) != 1 {
			t.Fatalf("/state/m.room.name: %d %v", status, name)
		}
		var full syEvent
		if status, _ := visGet(alice, &full, map[string]string{"format": "event"}, "rooms", room, "state", "m.room.name", ""); status != http.StatusOK ||
			full.Type != "m.room.name" || full.EventID == "" || full.StateKey == nil || *full.StateKey != "" || full.Content["name"] != "State" {
			t.Fatalf("/state/m.room.name?format=event: %d %+v", status, full)
		}
		if status, code := visGet(alice, nil, nil, "rooms", room, "state", "m.room.topic", ""); status != http.StatusNotFound || code != "M_NOT_FOUND" {
			t.Fatalf("absent state: %d %s, want 404 M_NOT_FOUND", status, code)
		}
		if status, code := visGet(alice, nil, nil, "rooms", room, "state", "m.room.member", "@nobody:hs1.test"); status != http.StatusNotFound || code != "M_NOT_FOUND" {
			t.Fatalf("absent member state: %d %s, want 404 M_NOT_FOUND", status, code)
		}

		// PUT state: identical state is deduplicated.
		t1 := syState(t, alice, room, "m.room.topic", "", map[string]any{"topic": "same"})
		if again := syState(t, alice, room, "m.room.topic", "", map[string]any{"topic": "same"}); again != t1 {
			t.Fatalf("identical state got a new event %s, want %s", again, t1)
		}
		if other := syState(t, alice, room, "m.room.topic", "", map[string]any{"topic": "different"}); other == t1 {
			t.Fatalf("changed state kept the old event")
		}
		syJoin(t, bob, room)
		_, err := bob.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "bob's"})
		syWantStatus(t, "bob sets the topic without power", err, http.StatusForbidden, "M_FORBIDDEN")

		// /members with membership, not_membership and at.
		beforeCarol := sySync(t, alice, nil).NextBatch
		syJoin(t, carol, room)
		syLeave(t, carol, room)
		syInvite(t, alice, room, dave.UserID)
		members := func(q map[string]string) map[string]string {
			t.Helper()
			var resp struct {
				Chunk []syEvent `json:"chunk"`
			}
			if status, code := visGet(alice, &resp, q, "rooms", room, "members"); status != http.StatusOK {
				t.Fatalf("/members %v: %d %s", q, status, code)
			}
			out := map[string]string{}
			for _, ev := range resp.Chunk {
				if ev.Type != "m.room.member" {
					t.Fatalf("/members returned a %s", ev.Type)
				}
				out[*ev.StateKey] = ev.membership()
			}
			return out
		}
		a, b, c, d := alice.UserID.String(), bob.UserID.String(), carol.UserID.String(), dave.UserID.String()
		want := map[string]string{a: "join", b: "join", c: "leave", d: "invite"}
		if got := members(nil); !mapsEqual(got, want) {
			t.Fatalf("/members = %v, want %v", got, want)
		}
		if got := members(map[string]string{"membership": "join"}); !mapsEqual(got, map[string]string{a: "join", b: "join"}) {
			t.Fatalf("/members?membership=join = %v", got)
		}
		if got := members(map[string]string{"not_membership": "leave"}); !mapsEqual(got, map[string]string{a: "join", b: "join", d: "invite"}) {
			t.Fatalf("/members?not_membership=leave = %v", got)
		}
		if got := members(map[string]string{"membership": "invite"}); !mapsEqual(got, map[string]string{d: "invite"}) {
			t.Fatalf("/members?membership=invite = %v", got)
		}
		if got := members(map[string]string{"at": beforeCarol}); !mapsEqual(got, map[string]string{a: "join", b: "join"}) {
			t.Fatalf("/members?at=<before carol> = %v", got)
		}

		// /joined_members and /joined_rooms.
		var jm struct {
			Joined map[string]struct {
				DisplayName *string `json:"display_name"`
			} `json:"joined"`
		}
		if status, code := visGet(alice, &jm, nil, "rooms", room, "joined_members"); status != http.StatusOK {
			t.Fatalf("/joined_members: %d %s", status, code)
		}
		if len(jm.Joined) != 2 || jm.Joined[b].DisplayName == nil || *jm.Joined[b].DisplayName != "Bobby" {
			t.Fatalf("/joined_members = %+v", jm.Joined)
		}
		if status, _ := visGet(carol, nil, nil, "rooms", room, "joined_members"); status != http.StatusForbidden {
			t.Fatalf("/joined_members by a former member: %d, want 403", status)
		}
		other := syCreate(t, bob, &mautrix.ReqCreateRoom{})
		jr, err := bob.JoinedRooms(ctx)
		if err != nil || !slices.Equal(visSorted(roomStrings(jr.JoinedRooms)...), visSorted(room.String(), other.String())) {
			t.Fatalf("/joined_rooms = %v %v", jr, err)
		}

		// forget: refused while joined; afterwards gone from sync.
		_, err = bob.ForgetRoom(ctx, room)
		syWantStatus(t, "forget while joined", err, http.StatusBadRequest, "")
		leaveFilter := map[string]string{"filter": `{"room":{"include_leave":true}}`}
		if resp := sySync(t, carol, leaveFilter); resp.Rooms.Leave[room.String()] == nil {
			t.Fatalf("carol's left room missing before forgetting: %+v", resp.Rooms)
		}
		if _, err := carol.ForgetRoom(ctx, room); err != nil {
			t.Fatalf("forget: %v", err)
		}
		if resp := sySync(t, carol, leaveFilter); resp.roomCount() != 0 {
			t.Fatalf("forgotten room still in sync: %+v", resp.Rooms)
		}

		// Transaction IDs: per device.
		alice2 := s.Client()
		if _, err := alice2.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "pw", StoreCredentials: true,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}}); err != nil {
			t.Fatalf("second login: %v", err)
		}
		sinceAlice := sySync(t, alice, nil).NextBatch
		txnSend := func(c *mautrix.Client, txn string) string {
			t.Helper()
			resp, err := c.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": txn}, mautrix.ReqSendEvent{TransactionID: txn})
			if err != nil {
				t.Fatalf("send with txn %s: %v", txn, err)
			}
			return resp.EventID.String()
		}
		e1 := txnSend(alice, "txn1")
		if again := txnSend(alice, "txn1"); again != e1 {
			t.Fatalf("same txn on the same device: %s, then %s", e1, again)
		}
		e2 := txnSend(alice2, "txn1")
		if e2 == e1 {
			t.Fatalf("same txn on another device reused the event")
		}
		txnOf := func(c *mautrix.Client) map[string]any {
			t.Helper()
			resp := sySince(t, c, sinceAlice)
			out := map[string]any{}
			for _, ev := range syJoined(t, resp, room).Timeline.Events {
				if tid, ok := ev.Unsigned["transaction_id"]; ok {
					out[ev.EventID] = tid
				}
			}
			if got := syIDs(syJoined(t, resp, room).Timeline.Events); !slices.Equal(got, []string{e1, e2}) {
				t.Fatalf("timeline after txn sends = %v, want [%s %s]", got, e1, e2)
			}
			return out
		}
		if got := txnOf(alice); len(got) != 1 || got[e1] != "txn1" {
			t.Fatalf("device 1 sees transaction IDs %v, want only its own", got)
		}
		if got := txnOf(alice2); len(got) != 1 || got[e2] != "txn1" {
			t.Fatalf("device 2 sees transaction IDs %v, want only its own", got)
		}
		var seen syEvent
		if status, _ := visGet(bob, &seen, nil, "rooms", room, "event", e1); status != http.StatusOK || seen.Unsigned["transaction_id"] != nil {
			t.Fatalf("bob sees alice's transaction ID: %d %+v", status, seen.Unsigned)
		}

		// Redaction: the sender or someone with the redact level.
		bobMsg := sySend(t, bob, room, "bob's secret")
		bobMsg2 := sySend(t, bob, room, "bob's regret")
		_, err = bob.RedactEvent(ctx, room, id.EventID(e1))
		syWantStatus(t, "bob redacts alice's message", err, http.StatusForbidden, "M_FORBIDDEN")
		sinceBob := sySync(t, bob, nil).NextBatch
		red, err := alice.RedactEvent(ctx, room, id.EventID(bobMsg), mautrix.ReqRedact{Reason: "spam"})
		if err != nil {
			t.Fatalf("alice redacts bob's message: %v", err)
		}
		if _, err := bob.RedactEvent(ctx, room, id.EventID(bobMsg2)); err != nil {
			t.Fatalf("bob redacts his own message: %v", err)
		}
		var redacted syEvent
		if status, _ := visGet(bob, &redacted, nil, "rooms", room, "event", bobMsg); status != http.StatusOK {
			t.Fatalf("/event of a redacted event: %d", status)
		}
		if len(redacted.Content) != 0 {
			t.Fatalf("redacted content still served: %v", redacted.Content)
		}
		rb, _ := redacted.Unsigned["redacted_because"].(map[string]any)
		if rb == nil || rb["event_id"] != red.EventID.String() {
			t.Fatalf("redacted_because = %v, want %s", redacted.Unsigned["redacted_because"], red.EventID)
		}
		// An initial sync shows the redacted form; an incremental one the
		// redaction events.
		resp := sySync(t, bob, nil)
		var found bool
		for _, ev := range syJoined(t, resp, room).Timeline.Events {
			if ev.EventID == bobMsg || ev.EventID == bobMsg2 {
				found = true
				if len(ev.Content) != 0 || ev.Unsigned["redacted_because"] == nil {
					t.Fatalf("sync shows a redacted event unredacted: %+v", ev)
				}
			}
		}
		if !found {
			t.Fatalf("redacted events missing from sync")
		}
		inc := sySince(t, bob, sinceBob)
		var redactions int
		for _, ev := range syJoined(t, inc, room).Timeline.Events {
			if ev.Type == "m.room.redaction" {
				redactions++
			}
		}
		if redactions != 2 {
			t.Fatalf("incremental sync has %d redactions, want 2", redactions)
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func roomStrings(ids []id.RoomID) []string {
	out := make([]string, len(ids))
	for i, r := range ids {
		out[i] = r.String()
	}
	return out
}
