package clientapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

const ssPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// ssRoom is a room of a sliding sync answer, as the rust-sdk reads it.
type ssRoom struct {
	Name          string            `json:"name"`
	Initial       bool              `json:"initial"`
	RequiredState []json.RawMessage `json:"required_state"`
	Timeline      []struct {
		Type    string         `json:"type"`
		Sender  string         `json:"sender"`
		Content map[string]any `json:"content"`
	} `json:"timeline"`
	Limited     bool              `json:"limited"`
	PrevBatch   string            `json:"prev_batch"`
	NumLive     *int              `json:"num_live"`
	JoinedCount *int              `json:"joined_count"`
	BumpStamp   int64             `json:"bump_stamp"`
	InviteState []json.RawMessage `json:"invite_state"`
}

type ssResp struct {
	Pos   string `json:"pos"`
	Lists map[string]struct {
		Count int `json:"count"`
	} `json:"lists"`
	Rooms      map[string]*ssRoom `json:"rooms"`
	Extensions struct {
		ToDevice *struct {
			NextBatch string `json:"next_batch"`
			Events    []struct {
				Sender  string         `json:"sender"`
				Type    string         `json:"type"`
				Content map[string]any `json:"content"`
			} `json:"events"`
		} `json:"to_device"`
		E2EE *struct {
			DeviceLists *struct {
				Changed []string `json:"changed"`
			} `json:"device_lists"`
			OTKCounts map[string]int `json:"device_one_time_keys_count"`
			Unused    []string       `json:"device_unused_fallback_key_types"`
		} `json:"e2ee"`
	} `json:"extensions"`
}

// elementXRequiredState is the required_state of Element X's room list
// (matrix-rust-sdk room_list_service).
var elementXRequiredState = [][]string{
	{"m.room.encryption", ""}, {"m.room.member", "$LAZY"}, {"m.room.member", "$ME"}, {"m.room.name", ""},
	{"m.room.canonical_alias", ""}, {"m.room.power_levels", ""}, {"m.room.join_rules", ""}, {"m.room.avatar", ""},
	{"m.room.topic", ""}, {"m.room.create", ""}, {"m.room.history_visibility", ""}, {"m.room.pinned_events", ""},
	{"m.room.tombstone", ""}, {"m.space.parent", "*"}, {"m.call.member", "*"},
}

// roomList is the body of Element X's room list request for a range.
func roomList(from, to int) map[string]any {
	return map[string]any{
		"conn_id": "room-list",
		"lists": map[string]any{"all_rooms": map[string]any{
			"ranges": [][]int{{from, to}}, "timeline_limit": 1, "required_state": elementXRequiredState,
			"filters": map[string]any{"not_room_types": []string{"m.space"}},
		}},
		"extensions": map[string]any{"to_device": map[string]any{"enabled": true}, "e2ee": map[string]any{"enabled": true},
			"account_data": map[string]any{"enabled": true}},
	}
}

func ssync(t *testing.T, s *testserver.Server, c *mautrix.Client, pos string, timeoutMS int, body any) (int, *ssResp, testserver.Response) {
	t.Helper()
	q := url.Values{"timeout": {fmt.Sprint(timeoutMS)}}
	if pos != "" {
		q.Set("pos", pos)
	}
	r := testserver.Send(t, nil, http.MethodPost, s.URL+ssPath+"?"+q.Encode(), c.AccessToken, body)
	var out ssResp
	if r.Status == http.StatusOK {
		if err := json.Unmarshal(r.Raw, &out); err != nil {
			t.Fatalf("sliding sync answer: %v: %s", err, r.Raw)
		}
	}
	return r.Status, &out, r
}

func ssOK(t *testing.T, s *testserver.Server, c *mautrix.Client, pos string, timeoutMS int, body any) *ssResp {
	t.Helper()
	st, resp, raw := ssync(t, s, c, pos, timeoutMS, body)
	if st != http.StatusOK {
		t.Fatalf("sliding sync: status %d: %s", st, raw.Raw)
	}
	return resp
}

func ssHas(evs []json.RawMessage, typ, key string) bool {
	for _, raw := range evs {
		var ev struct {
			Type     string `json:"type"`
			StateKey string `json:"state_key"`
		}
		_ = json.Unmarshal(raw, &ev)
		if ev.Type == typ && ev.StateKey == key {
			return true
		}
	}
	return false
}

// TestSlidingSyncRoomList drives Element X's room list: a first window
// of 20 rooms among 25 with the newest first, the next window, a room
// that moves to the top when a message arrives (and comes alone, not
// initial, in the incremental answer), a $LAZY member sent once, and an
// unknown pos.
func TestSlidingSyncRoomList(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		v := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/versions", "", nil)
		if flags, _ := v.JSON["unstable_features"].(map[string]any); flags["org.matrix.simplified_msc3575"] != true {
			t.Fatalf("/versions does not advertise org.matrix.simplified_msc3575: %s", v.Raw)
		}
		alice, bob := s.Register("alice", "pw"), s.Register("bob", "pw")
		var ids []id.RoomID
		for i := range 25 {
			ids = append(ids, syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: fmt.Sprintf("room %d", i)}))
		}
		first := ssOK(t, s, alice, "", 0, roomList(0, 19))
		if first.Lists["all_rooms"].Count != 25 || len(first.Rooms) != 20 {
			t.Fatalf("first window: count %d, %d rooms", first.Lists["all_rooms"].Count, len(first.Rooms))
		}
		for _, old := range ids[:5] {
			if first.Rooms[old.String()] != nil {
				t.Fatalf("first window has one of the oldest rooms, %s", old)
			}
		}
		newest := first.Rooms[ids[24].String()]
		if newest == nil || !newest.Initial || newest.Name != "room 24" || len(newest.Timeline) != 1 ||
			!ssHas(newest.RequiredState, "m.room.create", "") || !ssHas(newest.RequiredState, "m.room.member", string(alice.UserID)) ||
			newest.JoinedCount == nil || *newest.JoinedCount != 1 || newest.BumpStamp == 0 {
			t.Fatalf("newest room: %+v", newest)
		}
		if first.Extensions.E2EE == nil || first.Extensions.ToDevice == nil || first.Extensions.ToDevice.NextBatch == "" {
			t.Fatalf("extensions missing: %+v", first.Extensions)
		}

		next := ssOK(t, s, alice, first.Pos, 0, roomList(0, 24))
		if len(next.Rooms) != 5 {
			t.Fatalf("next window: %d rooms, want the 5 not sent yet", len(next.Rooms))
		}
		for _, old := range ids[:5] {
			if r := next.Rooms[old.String()]; r == nil || !r.Initial {
				t.Fatalf("next window lacks %s: %+v", old, r)
			}
		}

		// The oldest room gets a message from bob: it alone comes, with the
		// message, bob's membership ($LAZY) and the highest bump_stamp.
		oldest := ids[0]
		syJoin(t, bob, oldest)
		sySend(t, bob, oldest, "hello")
		moved := ssOK(t, s, alice, next.Pos, 0, roomList(0, 24))
		r := moved.Rooms[oldest.String()]
		if len(moved.Rooms) != 1 || r == nil || r.Initial || len(r.Timeline) != 1 || r.Timeline[0].Content["body"] != "hello" ||
			!ssHas(r.RequiredState, "m.room.member", string(bob.UserID)) || r.NumLive == nil || *r.NumLive != 1 {
			t.Fatalf("after a message: %d rooms, room %+v", len(moved.Rooms), r)
		}
		if r.BumpStamp <= newest.BumpStamp {
			t.Fatalf("bump_stamp %d of the room with the message is not above %d", r.BumpStamp, newest.BumpStamp)
		}
		// (Another conn_id: the same one without pos would start this
		// connection over.)
		other := roomList(0, 0)
		other["conn_id"] = "other"
		top := ssOK(t, s, alice, "", 0, other)
		if len(top.Rooms) != 1 || top.Rooms[oldest.String()] == nil {
			t.Fatalf("a new connection's first room is not the one with the message: %v", top.Rooms)
		}

		sySend(t, bob, oldest, "again")
		again := ssOK(t, s, alice, moved.Pos, 0, roomList(0, 24))
		r = again.Rooms[oldest.String()]
		if r == nil || len(r.Timeline) != 1 || r.Timeline[0].Content["body"] != "again" {
			t.Fatalf("second message: %+v", r)
		}
		if ssHas(r.RequiredState, "m.room.member", string(bob.UserID)) {
			t.Fatal("bob's membership ($LAZY) was sent twice on one connection")
		}

		// Nothing new: a zero timeout answers at once, with no room but
		// one whose unread counts push updated behind the message.
		idle := ssOK(t, s, alice, again.Pos, 0, roomList(0, 24))
		for id, r := range idle.Rooms {
			if id != oldest.String() || len(r.Timeline) != 0 || len(r.RequiredState) != 0 || r.Initial {
				t.Fatalf("nothing new, yet room %s: %+v", id, r)
			}
		}

		st, _, raw := ssync(t, s, alice, "nonsense", 0, roomList(0, 1))
		testserver.WantError(t, "unknown pos", st, raw.JSON, http.StatusBadRequest, "M_UNKNOWN_POS")
		st, _, raw = ssync(t, s, bob, again.Pos, 0, roomList(0, 1))
		testserver.WantError(t, "another user's pos", st, raw.JSON, http.StatusBadRequest, "M_UNKNOWN_POS")
		st, _, raw = ssync(t, s, alice, "", 0, `{"lists":{"a":{"ranges":[[3,1]]}}}`)
		testserver.WantError(t, "bad range", st, raw.JSON, http.StatusBadRequest, "M_INVALID_PARAM")
		st, _, raw = ssync(t, s, alice, "", 0, `{"lists":`)
		testserver.WantError(t, "bad JSON", st, raw.JSON, http.StatusBadRequest, "M_BAD_JSON")
	})
}

// TestSlidingSyncInviteAndLongPoll: an invite appears with its stripped
// state, and once accepted the room comes whole (initial); a long-poll
// waiting on the connection is woken by a message.
func TestSlidingSyncInviteAndLongPoll(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob := s.Register("alice", "pw"), s.Register("bob", "pw")
		start := ssOK(t, s, alice, "", 0, roomList(0, 9))
		room := syCreate(t, bob, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "secret", Invite: []id.UserID{alice.UserID}})
		inv := ssOK(t, s, alice, start.Pos, 0, roomList(0, 9))
		r := inv.Rooms[room.String()]
		if r == nil || !r.Initial || !ssHas(r.InviteState, "m.room.name", "") || !ssHas(r.InviteState, "m.room.member", string(alice.UserID)) ||
			inv.Lists["all_rooms"].Count != 1 {
			t.Fatalf("invite: %+v", r)
		}
		syJoin(t, alice, room)
		joined := ssOK(t, s, alice, inv.Pos, 0, roomList(0, 9))
		r = joined.Rooms[room.String()]
		if r == nil || !r.Initial || r.Name != "secret" || r.InviteState != nil || len(r.Timeline) != 1 ||
			!ssHas(r.RequiredState, "m.room.create", "") {
			t.Fatalf("accepted invite: %+v", r)
		}

		poll := func(pos string) chan *ssResp {
			done := make(chan *ssResp, 1)
			go func() {
				_, resp, _ := ssync(t, s, alice, pos, 60000, roomList(0, 9))
				done <- resp
			}()
			return done
		}
		done := poll(joined.Pos)
		sySend(t, bob, room, "wake up")
		var woken *ssResp
		for deadline := time.After(30 * time.Second); woken == nil; {
			select {
			case resp := <-done:
				if resp == nil {
					t.Fatal("long-poll failed")
				}
				r = resp.Rooms[room.String()]
				// Woken first by the invite's unread count, which push
				// stores behind the invite: the room without events.
				if r != nil && len(r.Timeline) == 0 && len(r.RequiredState) == 0 {
					done = poll(resp.Pos)
					continue
				}
				if r == nil || len(r.Timeline) != 1 || r.Timeline[0].Content["body"] != "wake up" {
					t.Fatalf("long-poll answer: %+v", resp.Rooms)
				}
				woken = resp
			case <-deadline:
				t.Fatal("the long-poll was not woken by the message")
			}
		}

		// Leaving: the room comes once more with the leave, then is gone.
		if _, err := alice.LeaveRoom(context.Background(), room); err != nil {
			t.Fatal(err)
		}
		left := ssOK(t, s, alice, woken.Pos, 0, roomList(0, 9))
		r = left.Rooms[room.String()]
		if r == nil || len(r.Timeline) == 0 {
			t.Fatalf("after leaving: %+v", left.Rooms)
		}
		if last := r.Timeline[len(r.Timeline)-1]; last.Type != "m.room.member" || last.Sender != string(alice.UserID) || last.Content["membership"] != "leave" {
			t.Fatalf("after leaving, the timeline ends with %+v", last)
		}
		gone := ssOK(t, s, alice, left.Pos, 0, roomList(0, 9))
		if gone.Rooms[room.String()] != nil || gone.Lists["all_rooms"].Count != 0 {
			t.Fatalf("left room still listed: count %d, %+v", gone.Lists["all_rooms"].Count, gone.Rooms)
		}
	})
}

// TestSlidingSyncToDeviceAndE2EE: the to_device extension delivers a
// message until its since passes it; the e2ee extension reports a
// roommate's new device keys and the device's one-time key counts.
func TestSlidingSyncToDeviceAndE2EE(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob := s.Register("alice", "pw"), s.Register("bob", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		syJoin(t, bob, room)
		enc := func(since string) map[string]any {
			td := map[string]any{"enabled": true}
			if since != "" {
				td["since"] = since
			}
			return map[string]any{"conn_id": "encryption", "extensions": map[string]any{"to_device": td, "e2ee": map[string]any{"enabled": true}}}
		}
		first := ssOK(t, s, alice, "", 0, enc(""))
		since := first.Extensions.ToDevice.NextBatch

		st, body := s.Do(t, http.MethodPut, "/_matrix/client/v3/sendToDevice/m.test/t1", tok(bob), map[string]any{
			"messages": map[string]any{string(alice.UserID): map[string]any{string(alice.DeviceID): map[string]any{"n": "one"}}}})
		testserver.WantStatus(t, "send to device", st, body, http.StatusOK)
		uploadDeviceKeys(t, s, bob, 1)
		uploadDeviceKeys(t, s, alice, 3)

		got := ssOK(t, s, alice, first.Pos, 30000, enc(since))
		td := got.Extensions.ToDevice
		if td == nil || len(td.Events) != 1 || td.Events[0].Sender != string(bob.UserID) || td.Events[0].Content["n"] != "one" {
			t.Fatalf("to_device: %+v", td)
		}
		e := got.Extensions.E2EE
		if e == nil || e.DeviceLists == nil || !slices.Contains(e.DeviceLists.Changed, string(bob.UserID)) ||
			e.OTKCounts["signed_curve25519"] != 3 || !slices.Equal(e.Unused, []string{"signed_curve25519"}) {
			t.Fatalf("e2ee: %+v", e)
		}
		after := ssOK(t, s, alice, got.Pos, 0, enc(td.NextBatch))
		if n := len(after.Extensions.ToDevice.Events); n != 0 {
			t.Fatalf("to-device message delivered again after its since: %d", n)
		}

		// The connection resumes after a restart (issue 18): the pos from
		// before it is still known, and the to-device since still works
		// (the inbox is stored). A pos the server never gave is
		// M_UNKNOWN_POS.
		st, body = s.Do(t, http.MethodPut, "/_matrix/client/v3/sendToDevice/m.test/t2", tok(bob), map[string]any{
			"messages": map[string]any{string(alice.UserID): map[string]any{string(alice.DeviceID): map[string]any{"n": "two"}}}})
		testserver.WantStatus(t, "send to device", st, body, http.StatusOK)
		s.Restart()
		st, _, raw := ssync(t, s, alice, "0123456789_1", 0, enc(after.Extensions.ToDevice.NextBatch))
		testserver.WantError(t, "pos never given", st, raw.JSON, http.StatusBadRequest, "M_UNKNOWN_POS")
		resumed := ssOK(t, s, alice, after.Pos, 0, enc(after.Extensions.ToDevice.NextBatch))
		if evs := resumed.Extensions.ToDevice.Events; len(evs) != 1 || evs[0].Content["n"] != "two" {
			t.Fatalf("to_device after the restart: %+v", evs)
		}
		if dl := resumed.Extensions.E2EE.DeviceLists; dl == nil || len(dl.Changed) != 0 {
			t.Fatalf("device lists sent again after the restart: %+v", dl)
		}
		if again := ssOK(t, s, alice, resumed.Pos, 0, enc(resumed.Extensions.ToDevice.NextBatch)); again.Pos == "" {
			t.Fatal("no pos on the resumed connection")
		}
	})
}

// TestSlidingSyncEphemeralAndAccountData: the typing, receipts and
// account_data extensions carry, for the rooms of the lists, what
// changed since the pos; a connection without them gets none.
func TestSlidingSyncEphemeralAndAccountData(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob := s.Register("alice", "pw"), s.Register("bob", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		syJoin(t, bob, room)
		body := roomList(0, 9)
		ext := body["extensions"].(map[string]any)
		ext["receipts"] = map[string]any{"enabled": true, "rooms": []string{"*"}}
		ext["typing"] = map[string]any{"enabled": true}
		first := ssOK(t, s, alice, "", 0, body)

		st, b := s.Do(t, http.MethodPut, "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/typing/"+url.PathEscape(bob.UserID.String()),
			tok(bob), map[string]any{"typing": true, "timeout": 30000})
		testserver.WantStatus(t, "typing", st, b, http.StatusOK)
		evID := sySend(t, bob, room, "read me")
		st, b = s.Do(t, http.MethodPost, "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/receipt/m.read/"+url.PathEscape(evID),
			tok(bob), map[string]any{})
		testserver.WantStatus(t, "receipt", st, b, http.StatusOK)
		st, b = s.Do(t, http.MethodPut, "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/account_data/org.example.test",
			tok(alice), map[string]any{"a": 1})
		testserver.WantStatus(t, "account data", st, b, http.StatusOK)
		st, b = s.Do(t, http.MethodPut, "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/rooms/"+url.PathEscape(room.String())+"/account_data/org.example.room",
			tok(alice), map[string]any{"b": 2})
		testserver.WantStatus(t, "room account data", st, b, http.StatusOK)

		st, _, raw := ssync(t, s, alice, first.Pos, 0, body)
		testserver.WantStatus(t, "incremental", st, raw.JSON, http.StatusOK)
		var got struct {
			Extensions struct {
				Typing struct {
					Rooms map[string]struct {
						Content struct {
							UserIDs []string `json:"user_ids"`
						} `json:"content"`
					} `json:"rooms"`
				} `json:"typing"`
				Receipts struct {
					Rooms map[string]struct {
						Type    string                    `json:"type"`
						Content map[string]map[string]any `json:"content"`
					} `json:"rooms"`
				} `json:"receipts"`
				AccountData struct {
					Global []struct {
						Type string `json:"type"`
					} `json:"global"`
					Rooms map[string][]struct {
						Type string `json:"type"`
					} `json:"rooms"`
				} `json:"account_data"`
			} `json:"extensions"`
		}
		if err := json.Unmarshal(raw.Raw, &got); err != nil {
			t.Fatal(err)
		}
		e := got.Extensions
		if !slices.Contains(e.Typing.Rooms[room.String()].Content.UserIDs, string(bob.UserID)) {
			t.Fatalf("typing: %s", raw.Raw)
		}
		if rc := e.Receipts.Rooms[room.String()]; rc.Type != "m.receipt" || rc.Content[evID] == nil {
			t.Fatalf("receipts: %s", raw.Raw)
		}
		if !slices.ContainsFunc(e.AccountData.Global, func(x struct {
			Type string `json:"type"`
		}) bool {
			return x.Type == "org.example.test"
		}) || len(e.AccountData.Rooms[room.String()]) != 1 || e.AccountData.Rooms[room.String()][0].Type != "org.example.room" {
			t.Fatalf("account_data: %s", raw.Raw)
		}

		// Without the extensions, none of them.
		plain := map[string]any{"conn_id": "plain", "lists": body["lists"]}
		r := testserver.Send(t, nil, http.MethodPost, s.URL+ssPath+"?timeout=0", alice.AccessToken, plain)
		if exts, ok := r.JSON["extensions"].(map[string]any); !ok || exts["typing"] != nil || r.Status != http.StatusOK {
			t.Fatalf("typing sent without the extension: %s", r.Raw)
		}
	})
}

// TestSlidingSyncHostileInput: odd but well-formed requests are answered
// (no 5xx), malformed ones are 400 with the spec's errcodes.
func TestSlidingSyncHostileInput(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		odd := `{"lists":{"a":{"ranges":[[0,1000000000]],"required_state":[["",""],["*","$LAZY"],["m.room.member","*"]],"timeline_limit":0,
			"filters":{"spaces":["not a room","!nope:localhost"],"tags":["u.x"],"not_tags":["u.y"],"room_types":[null,"m.space"],"is_dm":true,"is_encrypted":false}}},
			"room_subscriptions":{"junk":{"timeline_limit":5},"!unknown:localhost":{"required_state":[["*","*"]]}},
			"extensions":{"to_device":{"enabled":false},"e2ee":{},"receipts":{"enabled":true,"lists":["nope"],"rooms":["junk"]},"typing":{"enabled":true,"rooms":["*"]},"account_data":{"enabled":true}}}`
		st, resp, raw := ssync(t, s, alice, "", 0, odd)
		if st != http.StatusOK || resp.Lists["a"].Count != 0 {
			t.Fatalf("odd request: %d %s", st, raw.Raw)
		}
		for _, c := range []struct{ body, code string }{
			{`{"lists":{"a":{"ranges":[[0]]}}}`, "M_INVALID_PARAM"},
			{`{"lists":{"a":{"ranges":[[-1,2]]}}}`, "M_INVALID_PARAM"},
			{`{"lists":{"a":{"timeline_limit":-1}}}`, "M_INVALID_PARAM"},
			{`{"lists":{"a":{"required_state":[["only type"]]}}}`, "M_INVALID_PARAM"},
			{`{"extensions":{"to_device":{"enabled":true,"since":"x"}}}`, "M_INVALID_PARAM"},
			{`{"lists":{"a":{"ranges":"all"}}}`, "M_BAD_JSON"},
			{`[1,2]`, "M_BAD_JSON"},
		} {
			st, _, raw := ssync(t, s, alice, "", 0, c.body)
			testserver.WantError(t, c.body, st, raw.JSON, http.StatusBadRequest, c.code)
		}
		r := testserver.Send(t, nil, http.MethodPost, s.URL+ssPath+"?timeout=-5", alice.AccessToken, `{}`)
		testserver.WantError(t, "negative timeout", r.Status, r.JSON, http.StatusBadRequest, "M_INVALID_PARAM")
		r = testserver.Send(t, nil, http.MethodPost, s.URL+ssPath+"?set_presence=busy", alice.AccessToken, `{}`)
		testserver.WantError(t, "bad set_presence", r.Status, r.JSON, http.StatusBadRequest, "M_INVALID_PARAM")
		r = testserver.Send(t, nil, http.MethodPost, s.URL+ssPath, "", `{}`)
		testserver.WantError(t, "no token", r.Status, r.JSON, http.StatusUnauthorized, "M_MISSING_TOKEN")
	})
}
