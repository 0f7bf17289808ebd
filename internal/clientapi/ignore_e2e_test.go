package clientapi_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestIgnoredUsersReadPaths: the events of a user on the reader's
// m.ignored_user_list are left out of /sync, /messages, /context,
// /relations, GET /events and /event, while their state events stay
// (spec "Ignoring Users"; Synapse's filter_events_for_client). Other
// members still see everything.
func TestIgnoredUsersReadPaths(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw"), s.Register("bob", "pw"), s.Register("carol", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		syJoin(t, bob, room)
		syJoin(t, carol, room)
		if err := alice.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{bob.UserID.String(): map[string]any{}}}); err != nil {
			t.Fatal(err)
		}
		since := sySync(t, alice, nil).NextBatch
		anchor, err := carol.SendText(ctx, room, "carol speaks")
		if err != nil {
			t.Fatal(err)
		}
		bobMsg, err := bob.SendText(ctx, room, "bob speaks")
		if err != nil {
			t.Fatal(err)
		}
		bobTopic, err := bob.SendStateEvent(ctx, room, event.StateMember, bob.UserID.String(), map[string]any{"membership": "join", "displayname": "Bob B"})
		if err != nil {
			t.Fatal(err)
		}
		bobReact, err := bob.SendReaction(ctx, room, anchor.EventID, "👍")
		if err != nil {
			t.Fatal(err)
		}
		carolReact, err := carol.SendReaction(ctx, room, anchor.EventID, "🎉")
		if err != nil {
			t.Fatal(err)
		}

		has := func(evs []syEvent, id id.EventID) bool {
			for _, ev := range evs {
				if ev.EventID == id.String() {
					return true
				}
			}
			return false
		}
		if j := sySync(t, alice, nil).Rooms.Join[room.String()]; j == nil || j.Timeline == nil || has(j.Timeline.Events, bobMsg.EventID) || !has(j.Timeline.Events, bobTopic.EventID) {
			t.Fatalf("/sync timeline for alice: %+v", j)
		}
		chunk, _ := syMessages(t, alice, room, map[string]string{"dir": "b", "limit": "50"})
		if has(chunk, bobMsg.EventID) || has(chunk, bobReact.EventID) {
			t.Fatalf("/messages shows bob's events to alice, who ignores him")
		}
		if !has(chunk, bobTopic.EventID) || !has(chunk, anchor.EventID) {
			t.Fatalf("/messages lost bob's state event or carol's message")
		}
		if chunk, _ := syMessages(t, carol, room, map[string]string{"dir": "b", "limit": "50"}); !has(chunk, bobMsg.EventID) {
			t.Fatalf("/messages hides bob's message from carol, who does not ignore him")
		}

		var cx struct {
			Before []syEvent `json:"events_before"`
			After  []syEvent `json:"events_after"`
		}
		u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", room, "context", anchor.EventID}, map[string]string{"limit": "20"})
		if _, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, &cx); err != nil {
			t.Fatal(err)
		}
		if has(cx.After, bobMsg.EventID) || has(cx.After, bobReact.EventID) || !has(cx.After, bobTopic.EventID) {
			t.Fatalf("/context around carol's message: %+v", cx.After)
		}

		var rel struct {
			Chunk []syEvent `json:"chunk"`
		}
		if _, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v1", "rooms", room, "relations", anchor.EventID), nil, &rel); err != nil {
			t.Fatal(err)
		}
		if has(rel.Chunk, bobReact.EventID) || !has(rel.Chunk, carolReact.EventID) {
			t.Fatalf("/relations for alice: %+v", rel.Chunk)
		}

		var stream struct {
			Chunk []syEvent `json:"chunk"`
		}
		u = alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "events"}, map[string]string{"room_id": room.String(), "from": since, "timeout": "0", "limit": "50"})
		if _, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, &stream); err != nil {
			t.Fatal(err)
		}
		if has(stream.Chunk, bobMsg.EventID) || !has(stream.Chunk, bobTopic.EventID) || !has(stream.Chunk, anchor.EventID) {
			t.Fatalf("GET /events for alice: %+v", stream.Chunk)
		}

		_, err = alice.GetEvent(ctx, room, bobMsg.EventID)
		testserver.WantHTTPError(t, "/event of an ignored user's message", err, http.StatusNotFound, "M_NOT_FOUND")
		if _, err := alice.GetEvent(ctx, room, bobTopic.EventID); err != nil {
			t.Fatalf("/event of an ignored user's state event: %v", err)
		}

	})
}
