package clientapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// ssFullRoom is a room of an answer with the fields the room list reads
// that ssRoom leaves out.
type ssFullRoom struct {
	Initial  bool `json:"initial"`
	Timeline []struct {
		Content map[string]any `json:"content"`
	} `json:"timeline"`
	Limited   bool   `json:"limited"`
	PrevBatch string `json:"prev_batch"`
	Expanded  bool   `json:"unstable_expanded_timeline"`
	Heroes    []struct {
		UserID      string `json:"user_id"`
		DisplayName string `json:"displayname"`
	} `json:"heroes"`
	JoinedCount       *int              `json:"joined_count"`
	InvitedCount      *int              `json:"invited_count"`
	NotificationCount *int              `json:"notification_count"`
	HighlightCount    *int              `json:"highlight_count"`
	IsDM              bool              `json:"is_dm"`
	KnockState        []json.RawMessage `json:"knock_state"`
	InviteState       []json.RawMessage `json:"invite_state"`
}

type ssFullResp struct {
	Pos   string `json:"pos"`
	Lists map[string]struct {
		Count int `json:"count"`
	} `json:"lists"`
	Rooms      map[string]*ssFullRoom `json:"rooms"`
	Extensions struct {
		Receipts struct {
			Rooms map[string]json.RawMessage `json:"rooms"`
		} `json:"receipts"`
		AccountData struct {
			Rooms map[string][]struct {
				Type string `json:"type"`
			} `json:"rooms"`
		} `json:"account_data"`
	} `json:"extensions"`
}

// ssFull posts a request (pos in the query when not empty) and decodes
// the whole answer.
func ssFull(t *testing.T, s *testserver.Server, c *mautrix.Client, pos string, body any, timeoutMS ...int) *ssFullResp {
	t.Helper()
	q := url.Values{"timeout": {"0"}}
	if len(timeoutMS) > 0 {
		q.Set("timeout", fmt.Sprint(timeoutMS[0]))
	}
	if pos != "" {
		q.Set("pos", pos)
	}
	r := testserver.Send(t, nil, http.MethodPost, s.URL+ssPath+"?"+q.Encode(), c.AccessToken, body)
	if r.Status != http.StatusOK {
		t.Fatalf("sliding sync: status %d: %s", r.Status, r.Raw)
	}
	var out ssFullResp
	if err := json.Unmarshal(r.Raw, &out); err != nil {
		t.Fatalf("sliding sync answer: %v: %s", err, r.Raw)
	}
	return &out
}

func ssRoomIDs(resp *ssFullResp) []string {
	var ids []string
	for id := range resp.Rooms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func sortedIDs(ids ...id.RoomID) []string {
	var out []string
	for _, r := range ids {
		out = append(out, r.String())
	}
	sort.Strings(out)
	return out
}

// TestSlidingSyncFiltersAndRoomFields: each list filter of MSC4186 as
// Element X and Synapse name them (is_dm from m.direct and from an
// invite's is_direct, is_encrypted, is_invite and the MSC's is_invited,
// room_types, not_room_types, tags, not_tags), the MSC's range, a
// body-level pos, and the room fields the room list shows: heroes,
// joined and invited counts, notification and highlight counts, is_dm,
// knock_state.
func TestSlidingSyncFiltersAndRoomFields(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob, carol := s.Register("alice", "pw"), s.Register("bob", "pw"), s.Register("carol", "pw")
		dave := s.Register("dave", "pw")
		enc := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "enc"})
		syState(t, alice, enc, "m.room.encryption", "", map[string]any{"algorithm": "m.megolm.v1.aes-sha2"})
		space := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "space", CreationContent: map[string]any{"type": "m.space"}})
		tagged := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "tagged"})
		st, b := s.Do(t, http.MethodPut, "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/rooms/"+url.PathEscape(tagged.String())+"/tags/u.work",
			tok(alice), map[string]any{"order": 0.5})
		testserver.WantStatus(t, "tag", st, b, http.StatusOK)
		// A room without a name: heroes; in m.direct: a DM.
		plain := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		syJoin(t, bob, plain)
		syJoin(t, carol, plain)
		syInvite(t, alice, plain, dave.UserID)
		st, b = s.Do(t, http.MethodPut, "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/account_data/m.direct",
			tok(alice), map[string]any{bob.UserID.String(): []string{plain.String()}})
		testserver.WantStatus(t, "m.direct", st, b, http.StatusOK)
		// An invite marked is_direct: a DM before it is in m.direct.
		dm := syCreate(t, bob, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{alice.UserID}})
		// A knock.
		knock := syCreate(t, bob, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "knock here"})
		syState(t, bob, knock, "m.room.join_rules", "", map[string]any{"join_rule": "knock"})
		st, b = s.Do(t, http.MethodPost, "/_matrix/client/v3/knock/"+url.PathEscape(knock.String()), tok(alice), map[string]any{})
		testserver.WantStatus(t, "knock", st, b, http.StatusOK)

		list := func(filters map[string]any) map[string]any {
			return map[string]any{"range": []int{0, 99}, "timeline_limit": 1, "required_state": [][]string{{"m.room.create", ""}},
				"filters": filters}
		}
		for i, c := range []struct {
			name    string
			filters map[string]any
			want    []string
		}{
			{"is_dm", map[string]any{"is_dm": true}, sortedIDs(plain, dm)},
			{"not is_dm", map[string]any{"is_dm": false}, sortedIDs(enc, space, tagged, knock)},
			{"is_encrypted", map[string]any{"is_encrypted": true}, sortedIDs(enc)},
			{"is_invite", map[string]any{"is_invite": true}, sortedIDs(dm)},
			{"is_invited (MSC4186's name)", map[string]any{"is_invited": true}, sortedIDs(dm)},
			{"room_types", map[string]any{"room_types": []string{"m.space"}}, sortedIDs(space)},
			{"room_types null", map[string]any{"room_types": []any{nil}, "is_invite": false}, sortedIDs(enc, tagged, plain, knock)},
			{"tags", map[string]any{"tags": []string{"u.work"}}, sortedIDs(tagged)},
			{"not_tags", map[string]any{"not_tags": []string{"u.work"}, "not_room_types": []string{"m.space"}}, sortedIDs(enc, plain, dm, knock)},
		} {
			resp := ssFull(t, s, alice, "", map[string]any{"conn_id": fmt.Sprint("filter", i), "lists": map[string]any{"l": list(c.filters)}})
			if got := ssRoomIDs(resp); !slices.Equal(got, c.want) || resp.Lists["l"].Count != len(c.want) {
				t.Errorf("%s: rooms %v (count %d), want %v", c.name, got, resp.Lists["l"].Count, c.want)
			}
		}

		// The room fields, on one connection; the position of the second
		// request in the body (the MSC's place).
		bodyFor := func(pos string) map[string]any {
			b := map[string]any{"conn_id": "fields", "lists": map[string]any{"all": list(nil)}}
			if pos != "" {
				b["pos"] = pos
			}
			return b
		}
		first := ssFull(t, s, alice, "", bodyFor(""))
		p := first.Rooms[plain.String()]
		var heroes []string
		for _, h := range p.Heroes {
			if h.DisplayName == "" {
				t.Errorf("hero %s without a display name", h.UserID)
			}
			heroes = append(heroes, h.UserID)
		}
		sort.Strings(heroes)
		if p == nil || !p.Initial || !p.IsDM || p.JoinedCount == nil || *p.JoinedCount != 3 || p.InvitedCount == nil || *p.InvitedCount != 1 ||
			!slices.Equal(heroes, []string{bob.UserID.String(), carol.UserID.String(), dave.UserID.String()}) ||
			p.NotificationCount == nil || p.HighlightCount == nil {
			t.Fatalf("room without a name: %+v (heroes %v)", p, heroes)
		}
		if r := first.Rooms[tagged.String()]; r == nil || r.Heroes != nil || r.IsDM {
			t.Fatalf("named room: %+v", r)
		}
		if r := first.Rooms[knock.String()]; r == nil || !r.Initial || r.InviteState != nil ||
			!ssHas(r.KnockState, "m.room.member", alice.UserID.String()) || !ssHas(r.KnockState, "m.room.join_rules", "") {
			t.Fatalf("knock: %+v", r)
		}
		if r := first.Rooms[dm.String()]; r == nil || !r.IsDM || !ssHas(r.InviteState, "m.room.member", alice.UserID.String()) {
			t.Fatalf("invite marked is_direct: %+v", r)
		}

		// bob mentions alice: her counts rise (push writes them behind
		// the message, and they wake the connection when they do).
		st, b = s.Do(t, http.MethodPut, "/_matrix/client/v3/rooms/"+url.PathEscape(plain.String())+"/send/m.room.message/mention", tok(bob),
			map[string]any{"msgtype": "m.text", "body": "alice: look", "m.mentions": map[string]any{"user_ids": []string{alice.UserID.String()}}})
		testserver.WantStatus(t, "mention", st, b, http.StatusOK)
		pos := first.Pos
		for deadline := time.Now().Add(30 * time.Second); ; {
			next := ssFull(t, s, alice, "", bodyFor(pos), 10000)
			if next.Pos == "" {
				t.Fatal("no pos for a body-level pos")
			}
			if r := next.Rooms[plain.String()]; r != nil {
				if r.Initial {
					t.Fatalf("the body-level pos was not taken: the room came initial: %+v", r)
				}
				if r.HighlightCount != nil && *r.HighlightCount == 1 && r.NotificationCount != nil && *r.NotificationCount == 1 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the mention's counts never came")
			}
			pos = next.Pos
		}
	})
}

// TestSlidingSyncExpandedTimelineAndScoping: a room subscription asking
// for a longer timeline than a list sent resends the recent timeline
// with unstable_expanded_timeline (Synapse's rule, which Element X's
// room subscription relies on); the receipts extension honours lists
// and rooms (rooms: room subscriptions only); a room entering a window
// later gets its account data from before.
func TestSlidingSyncExpandedTimelineAndScoping(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob := s.Register("alice", "pw"), s.Register("bob", "pw")
		old := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "old"})
		st, b := s.Do(t, http.MethodPut, "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/rooms/"+url.PathEscape(old.String())+"/account_data/org.example.seen",
			tok(alice), map[string]any{"seen": true})
		testserver.WantStatus(t, "room account data", st, b, http.StatusOK)
		work := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "work"})
		st, b = s.Do(t, http.MethodPut, "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/rooms/"+url.PathEscape(work.String())+"/tags/u.work",
			tok(alice), map[string]any{})
		testserver.WantStatus(t, "tag", st, b, http.StatusOK)
		chat := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "chat"})
		for _, r := range []id.RoomID{work, chat} {
			syJoin(t, bob, r)
			ev := sySend(t, bob, r, "read me")
			st, b := s.Do(t, http.MethodPost, "/_matrix/client/v3/rooms/"+url.PathEscape(r.String())+"/receipt/m.read/"+url.PathEscape(ev), tok(bob), map[string]any{})
			testserver.WantStatus(t, "receipt", st, b, http.StatusOK)
		}
		for i := range 4 {
			sySend(t, bob, chat, fmt.Sprint("message ", i))
		}

		lists := func(to int) map[string]any {
			return map[string]any{
				"work": map[string]any{"ranges": [][]int{{0, 9}}, "timeline_limit": 1, "filters": map[string]any{"tags": []string{"u.work"}}},
				"rest": map[string]any{"ranges": [][]int{{0, to}}, "timeline_limit": 1, "filters": map[string]any{"not_tags": []string{"u.work"}}},
			}
		}
		req := func(to int, subs map[string]any) map[string]any {
			return map[string]any{"conn_id": "scoped", "lists": lists(to), "room_subscriptions": subs, "extensions": map[string]any{
				"receipts":     map[string]any{"enabled": true, "lists": []string{"work"}, "rooms": []string{}},
				"account_data": map[string]any{"enabled": true},
			}}
		}
		// rest's window holds chat only (old is older).
		first := ssFull(t, s, alice, "", req(0, nil))
		if got := ssRoomIDs(first); !slices.Equal(got, sortedIDs(work, chat)) {
			t.Fatalf("first window: %v", got)
		}
		if _, ok := first.Extensions.Receipts.Rooms[work.String()]; !ok {
			t.Fatalf("receipts of the work list's room missing: %v", first.Extensions.Receipts.Rooms)
		}
		if _, ok := first.Extensions.Receipts.Rooms[chat.String()]; ok {
			t.Fatal("receipts sent for a room of a list the extension does not name")
		}
		c := first.Rooms[chat.String()]
		if c == nil || len(c.Timeline) != 1 || c.Timeline[0].Content["body"] != "message 3" || !c.Limited || c.Expanded || c.PrevBatch == "" {
			t.Fatalf("chat in the list: %+v", c)
		}
		// prev_batch is where /messages goes on backwards from.
		older, _ := syMessages(t, alice, chat, map[string]string{"from": c.PrevBatch, "dir": "b", "limit": "2"})
		if len(older) != 2 || older[0].Content["body"] != "message 2" || older[1].Content["body"] != "message 1" {
			t.Fatalf("/messages from prev_batch: %+v", older)
		}

		// old enters the window: its account data, set before the
		// connection started, comes with it.
		wider := ssFull(t, s, alice, first.Pos, req(9, nil))
		if r := wider.Rooms[old.String()]; r == nil || !r.Initial {
			t.Fatalf("old did not enter the window: %v", ssRoomIDs(wider))
		}
		if ad := wider.Extensions.AccountData.Rooms[old.String()]; len(ad) != 1 || ad[0].Type != "org.example.seen" {
			t.Fatalf("account data of a room entering the window: %+v", wider.Extensions.AccountData.Rooms)
		}

		// Opening chat: a subscription with timeline_limit 10 resends its
		// last events, flagged expanded, not initial.
		sub := map[string]any{chat.String(): map[string]any{"timeline_limit": 10}}
		opened := ssFull(t, s, alice, wider.Pos, req(9, sub))
		c = opened.Rooms[chat.String()]
		if c == nil || c.Initial || !c.Expanded || len(c.Timeline) < 5 {
			t.Fatalf("room opened with a longer timeline: %+v", c)
		}
		// rooms: [] names no subscription: still no receipts for chat.
		if _, ok := opened.Extensions.Receipts.Rooms[chat.String()]; ok {
			t.Fatal("receipts sent for a subscription the extension does not name")
		}
		// Once sent, the longer timeline is not sent again; a new message
		// comes alone and not expanded.
		again := ssFull(t, s, alice, opened.Pos, req(9, sub))
		if r := again.Rooms[chat.String()]; r != nil && (len(r.Timeline) != 0 || r.Expanded) {
			t.Fatalf("expanded timeline sent twice: %+v", r)
		}
		sySend(t, bob, chat, "new")
		live := ssFull(t, s, alice, again.Pos, req(9, sub))
		if r := live.Rooms[chat.String()]; r == nil || r.Expanded || len(r.Timeline) != 1 || r.Timeline[0].Content["body"] != "new" {
			t.Fatalf("new message after the expansion: %+v", r)
		}
	})
}
