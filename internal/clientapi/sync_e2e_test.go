package clientapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// The /sync tests read responses into these types rather than mautrix's,
// so that they see exactly what the server sent (empty sections,
// prev_batch, unsigned fields, stripped state).

type syEvent struct {
	Type     string         `json:"type"`
	StateKey *string        `json:"state_key"`
	Sender   string         `json:"sender"`
	EventID  string         `json:"event_id"`
	RoomID   string         `json:"room_id"`
	OriginTS int64          `json:"origin_server_ts"`
	Content  map[string]any `json:"content"`
	Unsigned map[string]any `json:"unsigned"`
}

func (e syEvent) membership() string {
	m, _ := e.Content["membership"].(string)
	return m
}

type syEvents struct {
	Events []syEvent `json:"events"`
}

type syTimeline struct {
	Events    []syEvent `json:"events"`
	Limited   bool      `json:"limited"`
	PrevBatch string    `json:"prev_batch"`
}

type syRoom struct {
	Summary     map[string]any `json:"summary"`
	State       *syEvents      `json:"state"`
	Timeline    *syTimeline    `json:"timeline"`
	InviteState *syEvents      `json:"invite_state"`
	KnockState  *syEvents      `json:"knock_state"`
}

type syResp struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join   map[string]*syRoom `json:"join"`
		Invite map[string]*syRoom `json:"invite"`
		Leave  map[string]*syRoom `json:"leave"`
		Knock  map[string]*syRoom `json:"knock"`
	} `json:"rooms"`
}

// roomCount is the number of rooms in all sections with events: joined
// rooms listed only for news besides their timeline and state (unread
// counts, which push evaluation stores just after the events, receipts,
// typing) do not count.
func (r *syResp) roomCount() int {
	n := len(r.Rooms.Invite) + len(r.Rooms.Leave) + len(r.Rooms.Knock)
	for _, j := range r.Rooms.Join {
		if (j.Timeline != nil && len(j.Timeline.Events) > 0) || (j.State != nil && len(j.State.Events) > 0) {
			n++
		}
	}
	return n
}

// sySync calls /sync with the query parameters q and fails the test on
// any error.
func sySync(t *testing.T, c *mautrix.Client, q map[string]string) *syResp {
	t.Helper()
	resp, err := sySyncErr(c, q)
	if err != nil {
		t.Fatalf("sync %v as %s: %v", q, c.UserID, err)
	}
	return resp
}

func sySyncErr(c *mautrix.Client, q map[string]string) (*syResp, error) {
	var resp syResp
	_, err := c.MakeRequest(context.Background(), http.MethodGet, c.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, q), nil, &resp)
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// sySince is an incremental sync without waiting.
func sySince(t *testing.T, c *mautrix.Client, since string, extra ...string) *syResp {
	t.Helper()
	q := map[string]string{"since": since, "timeout": "0"}
	for i := 0; i+1 < len(extra); i += 2 {
		q[extra[i]] = extra[i+1]
	}
	return sySync(t, c, q)
}

func syFilter(f any) string {
	raw, err := json.Marshal(f)
	if err != nil {
		panic(err)
	}
	return string(raw)
}

// syJoined is a joined room's entry in a /sync response; a response
// without it fails the test rather than panicking on a nil pointer,
// which would end the package's whole run.
func syJoined(t *testing.T, resp *syResp, roomID id.RoomID) *syRoom {
	t.Helper()
	r := resp.Rooms.Join[roomID.String()]
	if r == nil || r.Timeline == nil || r.State == nil {
		t.Fatalf("room %s missing from the sync, or its timeline or state: %+v", roomID, resp.Rooms.Join)
	}
	return r
}

func syIDs(evs []syEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID
	}
	return out
}

func syFind(evs []syEvent, typ, stateKey string) *syEvent {
	for i := range evs {
		if evs[i].Type == typ && evs[i].StateKey != nil && *evs[i].StateKey == stateKey {
			return &evs[i]
		}
	}
	return nil
}

// syCreate creates a room and fails the test on error.
func syCreate(t *testing.T, c *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	t.Helper()
	resp, err := c.CreateRoom(context.Background(), req)
	if err != nil {
		t.Fatalf("createRoom as %s: %v", c.UserID, err)
	}
	return resp.RoomID
}

// sySend sends a text message and returns its event ID.
func sySend(t *testing.T, c *mautrix.Client, roomID id.RoomID, text string) string {
	t.Helper()
	resp, err := c.SendText(context.Background(), roomID, text)
	if err != nil {
		t.Fatalf("send %q as %s: %v", text, c.UserID, err)
	}
	return resp.EventID.String()
}

// sySendN sends n messages and returns their event IDs, oldest first.
func sySendN(t *testing.T, c *mautrix.Client, roomID id.RoomID, prefix string, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = sySend(t, c, roomID, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

// syState sends a state event and returns its event ID.
func syState(t *testing.T, c *mautrix.Client, roomID id.RoomID, typ, stateKey string, content any) string {
	t.Helper()
	resp, err := c.SendStateEvent(context.Background(), roomID, event.NewEventType(typ), stateKey, content)
	if err != nil {
		t.Fatalf("state %s as %s: %v", typ, c.UserID, err)
	}
	return resp.EventID.String()
}

func syJoin(t *testing.T, c *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	if _, err := c.JoinRoomByID(context.Background(), roomID); err != nil {
		t.Fatalf("%s joins %s: %v", c.UserID, roomID, err)
	}
}

func syLeave(t *testing.T, c *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	if _, err := c.LeaveRoom(context.Background(), roomID); err != nil {
		t.Fatalf("%s leaves %s: %v", c.UserID, roomID, err)
	}
}

func syInvite(t *testing.T, c *mautrix.Client, roomID id.RoomID, user id.UserID) {
	t.Helper()
	if _, err := c.InviteUser(context.Background(), roomID, &mautrix.ReqInviteUser{UserID: user}); err != nil {
		t.Fatalf("%s invites %s: %v", c.UserID, user, err)
	}
}

// syMessages pages /messages and returns the chunk and end token.
func syMessages(t *testing.T, c *mautrix.Client, roomID id.RoomID, q map[string]string) ([]syEvent, string) {
	t.Helper()
	var resp struct {
		Chunk []syEvent `json:"chunk"`
		End   string    `json:"end"`
	}
	u := c.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", roomID, "messages"}, q)
	if _, err := c.MakeRequest(context.Background(), http.MethodGet, u, nil, &resp); err != nil {
		t.Fatalf("messages %v: %v", q, err)
	}
	return resp.Chunk, resp.End
}

// syStatus returns the HTTP status and errcode of an error (200 for nil).
func syStatus(err error) (int, string) {
	if err == nil {
		return http.StatusOK, ""
	}
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.RespError != nil {
		return httpErr.RespError.StatusCode, httpErr.RespError.ErrCode
	}
	if errors.As(err, &httpErr) && httpErr.Response != nil {
		return httpErr.Response.StatusCode, ""
	}
	return 0, err.Error()
}

func syWantStatus(t *testing.T, what string, err error, status int, errcode string) {
	t.Helper()
	got, code := syStatus(err)
	if got != status || (errcode != "" && code != errcode) {
		t.Fatalf("%s: got %d %s (%v), want %d %s", what, got, code, err, status, errcode)
	}
}

func syMustNotContain(t *testing.T, what string, ids []string, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if slices.Contains(ids, u) {
			t.Fatalf("%s contains %s: %v", what, u, ids)
		}
	}
}

// TestSyncInitialTimeline checks an initial sync's joined room: the
// default and filtered timeline limits, limited, the state at the start
// of the timeline (not the current state, and never repeating timeline
// events), and prev_batch paging back with /messages without gaps or
// duplicates.
func TestSyncInitialTimeline(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		roomID := syCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Tea"})
		oldName := ""
		if ev, err := alice.FullStateEvent(ctx, roomID, event.StateRoomName, ""); err != nil {
			t.Fatalf("name: %v", err)
		} else {
			oldName = ev.ID.String()
		}
		msgs := sySendN(t, alice, roomID, "m", 12)
		newName := syState(t, alice, roomID, "m.room.name", "", map[string]any{"name": "Coffee"})
		tail := sySendN(t, alice, roomID, "t", 2)
		all := append(append(append([]string{}, msgs...), newName), tail...)

		// The default limit is 10.
		resp := sySync(t, alice, nil)
		room := resp.Rooms.Join[roomID.String()]
		if room == nil || room.Timeline == nil || room.State == nil {
			t.Fatalf("room missing from initial sync: %+v", resp.Rooms)
		}
		if got, want := syIDs(room.Timeline.Events), all[len(all)-10:]; !slices.Equal(got, want) {
			t.Fatalf("timeline = %v, want %v", got, want)
		}
		if !room.Timeline.Limited || room.Timeline.PrevBatch == "" {
			t.Fatalf("timeline limited=%v prev_batch=%q, want limited with a prev_batch", room.Timeline.Limited, room.Timeline.PrevBatch)
		}
		// State is the state at the start of the timeline: the old name,
		// never the new one, which is in the timeline.
		if n := syFind(room.State.Events, "m.room.name", ""); n == nil || n.EventID != oldName {
			t.Fatalf("state name = %+v, want the old name %s", n, oldName)
		}
		syMustNotContain(t, "state", syIDs(room.State.Events), syIDs(room.Timeline.Events)...)
		for _, typ := range []string{"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.history_visibility"} {
			if syFind(room.State.Events, typ, "") == nil {
				t.Fatalf("state lacks %s: %v", typ, room.State.Events)
			}
		}
		if syFind(room.State.Events, "m.room.member", alice.UserID.String()) == nil {
			t.Fatalf("state lacks alice's membership")
		}

		// Paging back from prev_batch continues right before the timeline.
		var paged []string
		from := room.Timeline.PrevBatch
		for range 20 {
			chunk, end := syMessages(t, alice, roomID, map[string]string{"dir": "b", "from": from, "limit": "3"})
			for _, ev := range chunk {
				paged = append(paged, ev.EventID)
			}
			if end == "" || len(chunk) == 0 {
				break
			}
			from = end
		}
		slices.Reverse(paged)
		// paged is the whole room before the timeline: the creation events,
		// then msgs[0:5].
		if len(paged) < 5 || !slices.Equal(paged[len(paged)-5:], msgs[:5]) {
			t.Fatalf("paging from prev_batch ended with %v, want %v", paged, msgs[:5])
		}
		seen := map[string]bool{}
		for _, id := range append(paged, syIDs(room.Timeline.Events)...) {
			if seen[id] {
				t.Fatalf("event %s seen twice across the timeline and /messages", id)
			}
			seen[id] = true
		}
		if !slices.Contains(paged, oldName) {
			t.Fatalf("paging back never reached the room's creation: %v", paged)
		}

		// A filter's limit.
		resp = sySync(t, alice, map[string]string{"filter": syFilter(map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 3}}})})
		room = syJoined(t, resp, roomID)
		if got, want := syIDs(room.Timeline.Events), []string{newName, tail[0], tail[1]}; !slices.Equal(got, want) || !room.Timeline.Limited {
			t.Fatalf("timeline with limit 3 = %v limited=%v, want %v limited", got, room.Timeline.Limited, want)
		}
		if n := syFind(room.State.Events, "m.room.name", ""); n == nil || n.EventID != oldName {
			t.Fatalf("state name with limit 3 = %+v, want %s", n, oldName)
		}
		// prev_batch of that timeline pages to the last message before it.
		chunk, _ := syMessages(t, alice, roomID, map[string]string{"dir": "b", "from": room.Timeline.PrevBatch, "limit": "1"})
		if len(chunk) != 1 || chunk[0].EventID != msgs[len(msgs)-1] {
			t.Fatalf("page before the limit-3 timeline = %v, want %s", syIDs(chunk), msgs[len(msgs)-1])
		}

		// A timeline that holds the whole room is not limited, and its state
		// section is empty (everything is in the timeline).
		small := syCreate(t, alice, &mautrix.ReqCreateRoom{})
		resp = sySync(t, alice, map[string]string{"filter": syFilter(map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 50}}})})
		room = resp.Rooms.Join[small.String()]
		if room == nil || room.Timeline.Limited || len(room.Timeline.Events) == 0 || room.Timeline.Events[0].Type != "m.room.create" {
			t.Fatalf("small room: %+v", room)
		}
		if len(room.State.Events) != 0 {
			t.Fatalf("small room's state repeats timeline events: %v", syIDs(room.State.Events))
		}
	})
}

// TestSyncInitialSections checks the summary, invites with invite_state,
// knocks with knock_state, include_leave and forgotten rooms.
func TestSyncInitialSections(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		dave := s.Register("dave", "pw")

		// Summary: alice and bob joined, carol invited.
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		syJoin(t, bob, room)
		syInvite(t, alice, room, carol.UserID)
		resp := sySync(t, alice, nil)
		sum := syJoined(t, resp, room).Summary
		if sum["m.joined_member_count"] != float64(2) || sum["m.invited_member_count"] != float64(1) {
			t.Fatalf("summary counts: %v", sum)
		}
		heroes, _ := sum["m.heroes"].([]any)
		if len(heroes) != 2 || !slices.Contains(heroes, any(bob.UserID.String())) || !slices.Contains(heroes, any(carol.UserID.String())) {
			t.Fatalf("heroes = %v, want bob and carol (never alice herself)", heroes)
		}

		// Invite with invite_state: the room's stripped state and the invite.
		secret := syCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Secret", Topic: "hush"})
		sySend(t, alice, secret, "not for invitees")
		syInvite(t, alice, secret, bob.UserID)
		resp = sySync(t, bob, nil)
		inv := resp.Rooms.Invite[secret.String()]
		if inv == nil || inv.InviteState == nil {
			t.Fatalf("bob's invite missing: %+v", resp.Rooms.Invite)
		}
		if resp.Rooms.Join[secret.String()] != nil || resp.Rooms.Leave[secret.String()] != nil {
			t.Fatalf("invited room also listed as joined or left")
		}
		st := inv.InviteState.Events
		for _, typ := range []string{"m.room.create", "m.room.join_rules", "m.room.name", "m.room.topic"} {
			if syFind(st, typ, "") == nil {
				t.Fatalf("invite_state lacks %s: %+v", typ, st)
			}
		}
		own := syFind(st, "m.room.member", bob.UserID.String())
		if own == nil || own.membership() != "invite" || own.Sender != alice.UserID.String() {
			t.Fatalf("invite_state lacks the invite event: %+v", st)
		}
		for _, ev := range st {
			// The create event alone is shared whole (MSC4311).
			if ev.Type == "m.room.message" || (ev.EventID != "" && ev.Type != "m.room.create") {
				t.Fatalf("invite_state has a non-stripped event: %+v", ev)
			}
		}
		if n := syFind(st, "m.room.name", ""); n.Content["name"] != "Secret" {
			t.Fatalf("stripped name: %+v", n)
		}

		// Knock with knock_state.
		knockRoom := syCreate(t, alice, &mautrix.ReqCreateRoom{Name: "Knock knock", InitialState: []*event.Event{{
			Type: event.StateJoinRules, StateKey: new(string), Content: event.Content{Raw: map[string]any{"join_rule": "knock"}},
		}}})
		if _, err := carol.KnockRoom(ctx, knockRoom.String(), &mautrix.ReqKnockRoom{Reason: "let me in"}); err != nil {
			t.Fatalf("knock: %v", err)
		}
		resp = sySync(t, carol, nil)
		kn := resp.Rooms.Knock[knockRoom.String()]
		if kn == nil || kn.KnockState == nil {
			t.Fatalf("carol's knock missing: %+v", resp.Rooms.Knock)
		}
		if own := syFind(kn.KnockState.Events, "m.room.member", carol.UserID.String()); own == nil || own.membership() != "knock" {
			t.Fatalf("knock_state lacks the knock: %+v", kn.KnockState.Events)
		}
		if jr := syFind(kn.KnockState.Events, "m.room.join_rules", ""); jr == nil || jr.Content["join_rule"] != "knock" {
			t.Fatalf("knock_state lacks the join rules: %+v", kn.KnockState.Events)
		}
		if _, ok := resp.Rooms.Invite[room.String()]; !ok {
			t.Fatalf("carol's invite to the first room missing")
		}

		// Left rooms only with include_leave; forgotten rooms never.
		left := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		forgotten := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		syJoin(t, dave, left)
		syJoin(t, dave, forgotten)
		before := sySend(t, alice, left, "while dave is here")
		syLeave(t, dave, left)
		after := sySend(t, alice, left, "after dave left")
		syLeave(t, dave, forgotten)
		if _, err := dave.ForgetRoom(ctx, forgotten); err != nil {
			t.Fatalf("forget: %v", err)
		}
		resp = sySync(t, dave, nil)
		if resp.roomCount() != 0 {
			t.Fatalf("dave's sync without include_leave lists rooms: %+v", resp.Rooms)
		}
		resp = sySync(t, dave, map[string]string{"filter": `{"room":{"include_leave":true}}`})
		if len(resp.Rooms.Leave) != 1 || resp.roomCount() != 1 {
			t.Fatalf("dave's rooms with include_leave: %+v", resp.Rooms)
		}
		lr := resp.Rooms.Leave[left.String()]
		if lr == nil || lr.Timeline == nil || len(lr.Timeline.Events) == 0 {
			t.Fatalf("left room missing: %+v", resp.Rooms.Leave)
		}
		tl := lr.Timeline.Events
		if last := tl[len(tl)-1]; last.Type != "m.room.member" || last.membership() != "leave" || *last.StateKey != dave.UserID.String() {
			t.Fatalf("left room's timeline does not end with the leave: %+v", last)
		}
		if ids := syIDs(tl); !slices.Contains(ids, before) || slices.Contains(ids, after) {
			t.Fatalf("left room's timeline %v should hold %s and not %s", ids, before, after)
		}
		if lr.State == nil || syFind(lr.State.Events, "m.room.create", "") == nil && syFind(tl, "m.room.create", "") == nil {
			t.Fatalf("left room comes without its state: %+v", lr.State)
		}
		syMustNotContain(t, "left room's state", syIDs(lr.State.Events), syIDs(tl)...)
	})
}

// TestSyncIncremental checks incremental syncs: only new events; limited
// timelines with exactly the state changes between the token and the
// timeline's start; empty state for non-limited timelines; newly joined
// rooms with full state; leaving, rejected invites, kicks and bans in
// rooms.leave; invites; full_state.
func TestSyncIncremental(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lobby"})
		syJoin(t, bob, room)
		since := sySync(t, bob, nil).NextBatch

		// Only the new events, not limited, no state.
		m1, m2 := sySend(t, alice, room, "one"), sySend(t, alice, room, "two")
		resp := sySince(t, bob, since)
		r := resp.Rooms.Join[room.String()]
		if r == nil || !slices.Equal(syIDs(r.Timeline.Events), []string{m1, m2}) || r.Timeline.Limited {
			t.Fatalf("incremental timeline: %+v", r)
		}
		if len(r.State.Events) != 0 {
			t.Fatalf("non-limited incremental sync has state: %v", r.State.Events)
		}
		since = resp.NextBatch
		// Nothing new: the room is not listed.
		if resp = sySince(t, bob, since); resp.roomCount() != 0 || resp.NextBatch == "" {
			t.Fatalf("empty incremental sync: %+v", resp)
		}

		// A state change in a non-limited timeline stays in the timeline.
		topic := syState(t, alice, room, "m.room.topic", "", map[string]any{"topic": "first"})
		m3 := sySend(t, alice, room, "three")
		resp = sySince(t, bob, since)
		r = syJoined(t, resp, room)
		if !slices.Equal(syIDs(r.Timeline.Events), []string{topic, m3}) || r.Timeline.Limited || len(r.State.Events) != 0 {
			t.Fatalf("timeline with a topic change: %+v", r)
		}
		since = resp.NextBatch

		// More than the limit: limited, and the state section carries
		// exactly the state that changed between the token and the timeline.
		name := syState(t, alice, room, "m.room.name", "", map[string]any{"name": "Hall"})
		topic2 := syState(t, alice, room, "m.room.topic", "", map[string]any{"topic": "second"})
		syJoin(t, carol, room)
		carolJoin := ""
		if ev, err := alice.FullStateEvent(ctx, room, event.StateMember, carol.UserID.String()); err == nil {
			carolJoin = ev.ID.String()
		}
		gap := sySendN(t, alice, room, "gap", 3)
		lateTopic := syState(t, alice, room, "m.room.topic", "", map[string]any{"topic": "third"})
		recent := sySendN(t, alice, room, "recent", 9)
		resp = sySince(t, bob, since)
		r = syJoined(t, resp, room)
		wantTL := append([]string{lateTopic}, recent...)
		if !slices.Equal(syIDs(r.Timeline.Events), wantTL) || !r.Timeline.Limited {
			t.Fatalf("limited timeline = %v limited=%v, want %v", syIDs(r.Timeline.Events), r.Timeline.Limited, wantTL)
		}
		gotState := syIDs(r.State.Events)
		slices.Sort(gotState)
		wantState := []string{name, topic2, carolJoin}
		slices.Sort(wantState)
		if !slices.Equal(gotState, wantState) {
			t.Fatalf("limited sync's state = %v, want exactly %v (name, topic, carol's join)", gotState, wantState)
		}
		// prev_batch pages back to the events between the token and the
		// timeline, without gaps or duplicates.
		chunk, _ := syMessages(t, bob, room, map[string]string{"dir": "b", "from": r.Timeline.PrevBatch, "to": since, "limit": "50"})
		paged := syIDs(chunk)
		slices.Reverse(paged)
		if want := append([]string{name, topic2, carolJoin}, gap...); !slices.Equal(paged, want) {
			t.Fatalf("paging from prev_batch to since = %v, want %v", paged, want)
		}
		since = resp.NextBatch

		// Newly joined rooms come with their full state.
		other := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Other", Topic: "elsewhere"})
		sySendN(t, alice, other, "history", 12)
		carolSince := sySync(t, carol, nil).NextBatch
		syJoin(t, carol, other)
		resp = sySince(t, carol, carolSince)
		r = resp.Rooms.Join[other.String()]
		if r == nil {
			t.Fatalf("newly joined room missing: %+v", resp.Rooms)
		}
		for _, typ := range []string{"m.room.create", "m.room.power_levels", "m.room.name", "m.room.topic"} {
			if syFind(r.State.Events, typ, "") == nil {
				t.Fatalf("newly joined room's state lacks %s", typ)
			}
		}
		if syFind(r.State.Events, "m.room.member", alice.UserID.String()) == nil {
			t.Fatalf("newly joined room's state lacks alice's membership")
		}
		if j := syFind(r.Timeline.Events, "m.room.member", carol.UserID.String()); j == nil || j.membership() != "join" {
			t.Fatalf("newly joined room's timeline lacks carol's join")
		}
		syMustNotContain(t, "newly joined state", syIDs(r.State.Events), syIDs(r.Timeline.Events)...)
		carolSince = resp.NextBatch

		// Leaving: rooms.leave with the timeline up to the leave.
		pre := sySend(t, alice, room, "before bob leaves")
		syLeave(t, bob, room)
		post := sySend(t, alice, room, "after bob left")
		resp = sySince(t, bob, since)
		if resp.Rooms.Join[room.String()] != nil {
			t.Fatalf("left room still in join")
		}
		lr := resp.Rooms.Leave[room.String()]
		if lr == nil {
			t.Fatalf("left room missing from leave: %+v", resp.Rooms)
		}
		ids := syIDs(lr.Timeline.Events)
		if len(ids) != 2 || ids[0] != pre || lr.Timeline.Events[1].membership() != "leave" {
			t.Fatalf("left room's timeline = %v, want [%s, leave]", ids, pre)
		}
		syMustNotContain(t, "left room's timeline", ids, post)
		since = resp.NextBatch
		if resp = sySince(t, bob, since); resp.roomCount() != 0 {
			t.Fatalf("after the leave was synced, the room is still listed: %+v", resp.Rooms)
		}

		// Invites arrive in rooms.invite; a rejected invite shows in leave.
		syInvite(t, alice, room, bob.UserID)
		resp = sySince(t, bob, since)
		if inv := resp.Rooms.Invite[room.String()]; inv == nil || syFind(inv.InviteState.Events, "m.room.member", bob.UserID.String()) == nil {
			t.Fatalf("invite missing from incremental sync: %+v", resp.Rooms)
		}
		since = resp.NextBatch
		syLeave(t, bob, room) // reject
		resp = sySince(t, bob, since)
		lr = resp.Rooms.Leave[room.String()]
		if lr == nil || resp.Rooms.Invite[room.String()] != nil {
			t.Fatalf("rejected invite not in leave: %+v", resp.Rooms)
		}
		if tl := lr.Timeline.Events; len(tl) != 1 || tl[0].membership() != "leave" || *tl[0].StateKey != bob.UserID.String() {
			t.Fatalf("rejected invite's timeline = %+v, want only the rejection", tl)
		}
		for _, ev := range lr.State.Events {
			if ev.Type != "m.room.member" || *ev.StateKey != bob.UserID.String() {
				t.Fatalf("rejected invite leaks room state to a non-member: %+v", ev)
			}
		}
		since = resp.NextBatch

		// Kicked and banned users see the room in leave.
		if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "out"}); err != nil {
			t.Fatalf("kick: %v", err)
		}
		resp = sySince(t, carol, carolSince)
		lr = resp.Rooms.Leave[room.String()]
		if lr == nil || resp.Rooms.Join[room.String()] != nil {
			t.Fatalf("kicked room not in leave: %+v", resp.Rooms)
		}
		if tl := lr.Timeline.Events; tl[len(tl)-1].membership() != "leave" || tl[len(tl)-1].Sender != alice.UserID.String() {
			t.Fatalf("kick missing from carol's timeline: %+v", tl[len(tl)-1])
		}
		carolSince = resp.NextBatch
		if _, err := alice.BanUser(ctx, other, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "gone"}); err != nil {
			t.Fatalf("ban: %v", err)
		}
		resp = sySince(t, carol, carolSince)
		lr = resp.Rooms.Leave[other.String()]
		if lr == nil || resp.Rooms.Join[other.String()] != nil {
			t.Fatalf("banned room not in leave: %+v", resp.Rooms)
		}
		if tl := lr.Timeline.Events; tl[len(tl)-1].membership() != "ban" {
			t.Fatalf("ban missing from carol's timeline: %+v", tl[len(tl)-1])
		}

		// full_state: every joined room with its whole state, even unchanged.
		second := syCreate(t, alice, &mautrix.ReqCreateRoom{})
		aliceSince := sySync(t, alice, nil).NextBatch
		resp = sySince(t, alice, aliceSince, "full_state", "true")
		for _, rid := range []id.RoomID{room, other, second} {
			r := resp.Rooms.Join[rid.String()]
			if r == nil || syFind(r.State.Events, "m.room.create", "") == nil || syFind(r.State.Events, "m.room.power_levels", "") == nil {
				t.Fatalf("full_state sync lacks the state of %s: %+v", rid, r)
			}
		}
		if resp = sySince(t, alice, aliceSince); resp.roomCount() != 0 {
			t.Fatalf("same sync without full_state lists rooms: %+v", resp.Rooms)
		}
	})
}

// TestSyncIncrementalMembershipRoundTrips checks membership changes that
// happen within one sync interval: a rejoin is a newly joined room, a
// join and leave shows the leave, and leave-then-invite shows both.
func TestSyncIncrementalMembershipRoundTrips(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Round"})
		syJoin(t, bob, room)
		since := sySync(t, bob, nil).NextBatch

		// Leave and rejoin between two syncs: joined, with full state.
		syLeave(t, bob, room)
		syJoin(t, bob, room)
		resp := sySince(t, bob, since)
		r := resp.Rooms.Join[room.String()]
		if r == nil || syFind(r.State.Events, "m.room.create", "") == nil {
			t.Fatalf("rejoined room should come with full state: %+v", r)
		}
		since = resp.NextBatch

		// Leave, then get invited again: leave (so the client drops the
		// joined room) and invite.
		syLeave(t, bob, room)
		syInvite(t, alice, room, bob.UserID)
		resp = sySince(t, bob, since)
		if resp.Rooms.Invite[room.String()] == nil || resp.Rooms.Leave[room.String()] == nil || resp.Rooms.Join[room.String()] != nil {
			t.Fatalf("leave then invite: %+v", resp.Rooms)
		}
		since = resp.NextBatch

		// Join and leave a new room between two syncs: the room shows in leave.
		other := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Brief"})
		syJoin(t, bob, other)
		msg := sySend(t, alice, other, "hello")
		syLeave(t, bob, other)
		resp = sySince(t, bob, since)
		lr := resp.Rooms.Leave[other.String()]
		if lr == nil || !slices.Contains(syIDs(lr.Timeline.Events), msg) {
			t.Fatalf("joined-and-left room: %+v", resp.Rooms)
		}
		if syFind(lr.State.Events, "m.room.create", "") == nil && syFind(lr.Timeline.Events, "m.room.create", "") == nil {
			t.Fatalf("joined-and-left room comes without its state: %+v", lr.State)
		}
	})
}

// TestSyncTokens checks that next_batch survives a restart and that bad
// tokens are refused.
func TestSyncTokens(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{})
		old := sySend(t, alice, room, "before restart")
		since := sySync(t, alice, nil).NextBatch

		s.Restart()
		s.Repoint(alice)
		if resp := sySince(t, alice, since); resp.roomCount() != 0 {
			t.Fatalf("after restart, the old token sees old events: %+v", resp.Rooms)
		}
		fresh := sySend(t, alice, room, "after restart")
		resp := sySince(t, alice, since)
		r := resp.Rooms.Join[room.String()]
		if r == nil || !slices.Equal(syIDs(r.Timeline.Events), []string{fresh}) {
			t.Fatalf("after restart, sync from the old token = %+v, want only %s (not %s)", r, fresh, old)
		}
		if resp.NextBatch == since {
			t.Fatalf("next_batch did not move past the new event")
		}

		for _, bad := range []string{"garbage", "s-1", "sabc", "12", "s"} {
			_, err := sySyncErr(alice, map[string]string{"since": bad})
			if status, _ := syStatus(err); status != http.StatusBadRequest {
				t.Fatalf("since=%q: status %d (%v), want 400", bad, status, err)
			}
		}
	})
}

type syResult struct {
	resp *syResp
	err  error
	at   time.Time
}

func syPoll(c *mautrix.Client, since string, timeout time.Duration) <-chan syResult {
	done := make(chan syResult, 1)
	go func() {
		resp, err := sySyncErr(c, map[string]string{"since": since, "timeout": strconv.FormatInt(timeout.Milliseconds(), 10)})
		done <- syResult{resp, err, time.Now()}
	}()
	return done
}

// TestSyncLongPoll checks that a waiting sync returns soon after an event
// in one of the user's rooms or an invite, not for events elsewhere, and
// after its timeout with nothing new.
func TestSyncLongPoll(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		shared := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		syJoin(t, bob, shared)
		elsewhere := syCreate(t, carol, &mautrix.ReqCreateRoom{})
		since := sySync(t, bob, nil).NextBatch

		// Nothing happens: an empty response with a next_batch after about
		// the timeout.
		start := time.Now()
		res := <-syPoll(bob, since, time.Second)
		if res.err != nil {
			t.Fatalf("idle long poll: %v", res.err)
		}
		if waited := res.at.Sub(start); waited < 900*time.Millisecond || waited > 10*time.Second {
			t.Fatalf("idle long poll returned after %v, want about 1s", waited)
		}
		if res.resp.roomCount() != 0 || res.resp.NextBatch == "" {
			t.Fatalf("idle long poll: %+v", res.resp)
		}

		// An event in a room bob is not in does not wake him; one in his
		// room does, quickly.
		done := syPoll(bob, since, 60*time.Second)
		time.Sleep(100 * time.Millisecond)
		sySend(t, carol, elsewhere, "not for bob")
		select {
		case res := <-done:
			t.Fatalf("long poll woken by a room bob is not in: %+v %v", res.resp, res.err)
		case <-time.After(700 * time.Millisecond):
		}
		sent := time.Now()
		msg := sySend(t, alice, shared, "for bob")
		select {
		case res := <-done:
			if res.err != nil {
				t.Fatalf("long poll: %v", res.err)
			}
			r := res.resp.Rooms.Join[shared.String()]
			if r == nil || !slices.Equal(syIDs(r.Timeline.Events), []string{msg}) || res.resp.Rooms.Join[elsewhere.String()] != nil {
				t.Fatalf("woken long poll: %+v", res.resp.Rooms)
			}
			if d := res.at.Sub(sent); d > 5*time.Second {
				t.Fatalf("long poll took %v to wake", d)
			}
			since = res.resp.NextBatch
		case <-time.After(20 * time.Second):
			t.Fatal("long poll not woken by an event in bob's room")
		}

		// An invite wakes the invitee. (Bob's unread count for "for bob",
		// counted behind the event, or alice's presence may wake him first.)
		done = syPoll(bob, since, 60*time.Second)
		time.Sleep(100 * time.Millisecond)
		syInvite(t, carol, elsewhere, bob.UserID)
		deadline := time.After(20 * time.Second)
		for invited := false; !invited; {
			select {
			case res := <-done:
				if res.err != nil {
					t.Fatal(res.err)
				}
				invited = res.resp.Rooms.Invite[elsewhere.String()] != nil
				if !invited {
					if res.resp.roomCount() != 0 {
						t.Fatalf("long poll woken without the invite: %+v", res.resp)
					}
					done = syPoll(bob, res.resp.NextBatch, 60*time.Second)
				}
			case <-deadline:
				t.Fatal("long poll not woken by an invite")
			}
		}
	})
}

// TestSyncFilters checks stored and inline filters: timeline types,
// not_types and senders, rooms and not_rooms, state types,
// lazy_load_members, and the filter endpoints' permissions.
func TestSyncFilters(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		dave := s.Register("dave", "pw")
		r1 := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "One"})
		r2 := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Two"})
		for _, c := range []*mautrix.Client{bob, carol, dave} {
			syJoin(t, c, r1)
		}
		topic := syState(t, alice, r1, "m.room.topic", "", map[string]any{"topic": "filters"})
		aliceMsg := sySend(t, alice, r1, "from alice")
		bobMsgs := sySendN(t, bob, r1, "from bob", 11)

		// Stored filter: create, read back, use.
		var created struct {
			FilterID string `json:"filter_id"`
		}
		stored := map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 2}}}
		if _, err := alice.MakeRequest(ctx, http.MethodPost, alice.BuildClientURL("v3", "user", alice.UserID, "filter"), stored, &created); err != nil || created.FilterID == "" {
			t.Fatalf("create filter: %v %+v", err, created)
		}
		var back map[string]any
		if _, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v3", "user", alice.UserID, "filter", created.FilterID), nil, &back); err != nil {
			t.Fatalf("get filter: %v", err)
		}
		if tl, _ := back["room"].(map[string]any)["timeline"].(map[string]any); tl["limit"] != float64(2) {
			t.Fatalf("filter read back = %v", back)
		}
		resp := sySync(t, alice, map[string]string{"filter": created.FilterID})
		if got := syIDs(syJoined(t, resp, r1).Timeline.Events); !slices.Equal(got, bobMsgs[9:]) {
			t.Fatalf("stored filter's timeline = %v, want %v", got, bobMsgs[9:])
		}
		// Another user's filter is not theirs to read or write; unknown IDs are 404.
		_, err := bob.MakeRequest(ctx, http.MethodGet, bob.BuildClientURL("v3", "user", alice.UserID, "filter", created.FilterID), nil, nil)
		syWantStatus(t, "bob reads alice's filter", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = bob.MakeRequest(ctx, http.MethodPost, bob.BuildClientURL("v3", "user", alice.UserID, "filter"), stored, nil)
		syWantStatus(t, "bob writes alice's filter", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = bob.MakeRequest(ctx, http.MethodGet, bob.BuildClientURL("v3", "user", bob.UserID, "filter", created.FilterID), nil, nil)
		syWantStatus(t, "bob reads alice's filter ID as his", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = sySyncErr(bob, map[string]string{"filter": created.FilterID})
		syWantStatus(t, "bob syncs with alice's filter ID", err, http.StatusNotFound, "")
		_, err = sySyncErr(alice, map[string]string{"filter": `{"room":`})
		syWantStatus(t, "sync with broken inline filter", err, http.StatusBadRequest, "")

		wide := func(room map[string]any) string {
			if _, ok := room["timeline"]; !ok {
				room["timeline"] = map[string]any{}
			}
			room["timeline"].(map[string]any)["limit"] = 100
			return syFilter(map[string]any{"room": room})
		}
		// Timeline types / not_types / senders.
		resp = sySync(t, alice, map[string]string{"filter": wide(map[string]any{"timeline": map[string]any{"types": []string{"m.room.message"}}})})
		tl := syJoined(t, resp, r1).Timeline.Events
		if len(tl) != 12 || tl[0].EventID != aliceMsg {
			t.Fatalf("types filter: %v", syIDs(tl))
		}
		resp = sySync(t, alice, map[string]string{"filter": wide(map[string]any{"timeline": map[string]any{"not_types": []string{"m.room.message"}}})})
		tl = syJoined(t, resp, r1).Timeline.Events
		if len(tl) == 0 || tl[len(tl)-1].EventID != topic {
			t.Fatalf("not_types filter: %v", syIDs(tl))
		}
		for _, ev := range tl {
			if ev.Type == "m.room.message" {
				t.Fatalf("not_types filter let a message through")
			}
		}
		resp = sySync(t, alice, map[string]string{"filter": wide(map[string]any{"timeline": map[string]any{"senders": []string{bob.UserID.String()}}})})
		tl = syJoined(t, resp, r1).Timeline.Events
		for _, ev := range tl {
			if ev.Sender != bob.UserID.String() {
				t.Fatalf("senders filter let %s through", ev.Sender)
			}
		}
		if len(tl) != 12 { // bob's join and 11 messages
			t.Fatalf("senders filter: %d events", len(tl))
		}

		// Rooms and not_rooms.
		resp = sySync(t, alice, map[string]string{"filter": syFilter(map[string]any{"room": map[string]any{"rooms": []string{r2.String()}}})})
		if len(resp.Rooms.Join) != 1 || resp.Rooms.Join[r2.String()] == nil {
			t.Fatalf("rooms filter: %v", resp.Rooms.Join)
		}
		resp = sySync(t, alice, map[string]string{"filter": syFilter(map[string]any{"room": map[string]any{"not_rooms": []string{r2.String()}}})})
		if len(resp.Rooms.Join) != 1 || resp.Rooms.Join[r1.String()] == nil {
			t.Fatalf("not_rooms filter: %v", resp.Rooms.Join)
		}

		// State types.
		resp = sySync(t, alice, map[string]string{"filter": syFilter(map[string]any{"room": map[string]any{"state": map[string]any{"types": []string{"m.room.name"}}}})})
		if st := syJoined(t, resp, r1).State.Events; len(st) != 1 || st[0].Type != "m.room.name" {
			t.Fatalf("state types filter: %+v", st)
		}

		// lazy_load_members: the timeline holds only bob's messages, so the
		// state carries bob's membership and alice's own, no other member.
		lazy := map[string]string{"filter": syFilter(map[string]any{"room": map[string]any{"state": map[string]any{"lazy_load_members": true}}})}
		resp = sySync(t, alice, lazy)
		members := map[string]bool{}
		for _, ev := range syJoined(t, resp, r1).State.Events {
			if ev.Type == "m.room.member" {
				members[*ev.StateKey] = true
			}
		}
		if len(members) != 2 || !members[bob.UserID.String()] || !members[alice.UserID.String()] {
			t.Fatalf("lazy-loaded members = %v, want bob and alice", members)
		}
		if syFind(syJoined(t, resp, r1).State.Events, "m.room.topic", "") == nil {
			t.Fatalf("lazy loading dropped non-member state")
		}
		full := sySync(t, alice, nil)
		n := 0
		for _, ev := range syJoined(t, full, r1).State.Events {
			if ev.Type == "m.room.member" {
				n++
			}
		}
		if n != 4 {
			t.Fatalf("without lazy loading, state has %d members, want 4", n)
		}
		// Incrementally, a new sender's membership comes with their message.
		carolMsg := sySend(t, carol, r1, "from carol")
		lazy["since"], lazy["timeout"] = resp.NextBatch, "0"
		resp = sySync(t, alice, lazy)
		r := syJoined(t, resp, r1)
		if !slices.Equal(syIDs(r.Timeline.Events), []string{carolMsg}) {
			t.Fatalf("lazy incremental timeline: %v", syIDs(r.Timeline.Events))
		}
		if syFind(r.State.Events, "m.room.member", carol.UserID.String()) == nil || syFind(r.State.Events, "m.room.member", dave.UserID.String()) != nil {
			t.Fatalf("lazy incremental state should carry carol's membership only: %+v", r.State.Events)
		}
	})
}

// TestSyncNoGapsUnderConcurrency sends messages into several rooms at once
// while a user syncs incrementally in a loop, and a room is joined
// meanwhile: every message reaches the user exactly once.
func TestSyncNoGapsUnderConcurrency(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		const perRoom = 15
		bob := s.Register("bob", "pw")
		senders := make([]*mautrix.Client, 3)
		roomIDs := make([]id.RoomID, 3)
		for i := range senders {
			senders[i] = s.Register(fmt.Sprintf("sender%d", i), "pw")
			roomIDs[i] = syCreate(t, senders[i], &mautrix.ReqCreateRoom{Preset: "public_chat"})
			syJoin(t, bob, roomIDs[i])
		}
		late := syCreate(t, senders[0], &mautrix.ReqCreateRoom{Preset: "public_chat"})
		f := syFilter(map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 1000, "types": []string{"m.room.message"}}}})
		since := sySync(t, bob, map[string]string{"filter": f}).NextBatch

		sent := make(chan string, 4*perRoom)
		afterJoin := make(chan string, perRoom)
		errs := make(chan error, 4)
		for i := range senders {
			go func() {
				for j := range perRoom {
					resp, err := senders[i].SendText(context.Background(), roomIDs[i], fmt.Sprintf("m%d", j))
					if err != nil {
						errs <- err
						return
					}
					sent <- resp.EventID.String()
				}
				errs <- nil
			}()
		}
		go func() {
			// Messages in the late room before and after bob joins.
			for j := range perRoom {
				if j == perRoom/2 {
					if _, err := bob.JoinRoomByID(context.Background(), late); err != nil {
						errs <- err
						return
					}
				}
				resp, err := senders[0].SendText(context.Background(), late, fmt.Sprintf("late %d", j))
				if err != nil {
					errs <- err
					return
				}
				sent <- resp.EventID.String()
				if j >= perRoom/2 {
					afterJoin <- resp.EventID.String()
				}
			}
			errs <- nil
		}()

		got := map[string]int{}
		lateSeen := false
		collect := func(resp *syResp) {
			for roomID, r := range resp.Rooms.Join {
				// The late room, newly joined, is limited once: its history
				// before the token is not in the timeline (Synapse).
				if r.Timeline.Limited && (roomID != late.String() || lateSeen) {
					t.Fatalf("timeline limited despite the large limit")
				}
				if roomID == late.String() {
					lateSeen = true
				}
				for _, ev := range r.Timeline.Events {
					got[ev.EventID]++
				}
			}
		}
		running := 4
		for running > 0 {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatalf("sender: %v", err)
				}
				running--
			default:
			}
			resp := sySync(t, bob, map[string]string{"since": since, "timeout": "50", "filter": f})
			collect(resp)
			since = resp.NextBatch
		}
		collect(sySync(t, bob, map[string]string{"since": since, "timeout": "0", "filter": f}))
		close(sent)
		n := 0
		for evID := range sent {
			n++
			if got[evID] > 1 {
				t.Fatalf("event %s synced %d times", evID, got[evID])
			}
		}
		if n != 4*perRoom {
			t.Fatalf("sent %d messages, want %d", n, 4*perRoom)
		}
		for evID, c := range got {
			if c != 1 {
				t.Fatalf("event %s synced %d times", evID, c)
			}
		}
		// Every message of the rooms bob was in arrived; of the late room,
		// those after his join (the ones before are history, which the
		// newly joined room's prev_batch pages to).
		missing := 0
		for i := range roomIDs {
			chunk, _ := syMessages(t, bob, roomIDs[i], map[string]string{"dir": "b", "limit": "100", "filter": `{"types":["m.room.message"]}`})
			for _, ev := range chunk {
				if got[ev.EventID] != 1 {
					missing++
				}
			}
			if len(chunk) != perRoom {
				t.Fatalf("room %d has %d messages, want %d", i, len(chunk), perRoom)
			}
		}
		if missing != 0 {
			t.Fatalf("%d messages never reached bob's sync", missing)
		}
		close(afterJoin)
		for evID := range afterJoin {
			if got[evID] != 1 {
				t.Fatalf("late room message %s, sent after bob joined, never reached his sync", evID)
			}
		}
	})
}
