package push_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// Completing a partial-state room adds the members the partial state
// lacked to the snapshots the room's events point at, in place: the
// events after it are judged with them (room_member_count here), not
// with the members the worker found in the partial state.
func TestMembersAfterPartialStateCompletes(t *testing.T) {
	partialJoins := func(_ int, c *config.Config) { c.Federation.PartialStateJoins = true }
	testserver.EachEngineNetwork(t, 2, partialJoins, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice, carol, dave := hs1.Register("alice", "pw-alice-1"), hs1.Register("carol", "pw-carol-1"), hs1.Register("dave", "pw-dave-1")
		bob := hs2.Register("bob", "pw-bob-1")
		room := testserver.Room(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Partial"}, carol, dave)
		release := hs2.PartialStateResync().Hold()
		t.Cleanup(release)
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		if partial, _, err := hs2.Engine().PartialState(ctx, room.String()); err != nil || !partial {
			t.Fatalf("hs2's room after the join: partial %v, %v", partial, err)
		}
		// Highlighted while the room has fewer than four members.
		status, body := hs2.Do(t, http.MethodPut, rulesPath+"override/few", bob.AccessToken, map[string]any{
			"actions":    []any{"notify", map[string]any{"set_tweak": "highlight"}},
			"conditions": []any{map[string]any{"kind": "room_member_count", "is": "<4"}}})
		testserver.WantStatus(t, "put override", status, body, http.StatusOK)

		send(t, alice, room, text("during the partial state"))
		list := waitNotifications(t, hs2, bob, 1)
		if !highlighted(list[0]) {
			t.Fatalf("the partial state knows fewer than four members, yet: %v", list[0])
		}
		release()
		if err := hs2.Engine().AwaitFullState(ctx, room.String()); err != nil {
			t.Fatal(err)
		}
		after := send(t, alice, room, text("after the completion"))
		list = waitNotifications(t, hs2, bob, 2)
		if eventIDOf(list[0]) != string(after) || highlighted(list[0]) {
			t.Fatalf("bob's notification of a message among four members: %v", list[0])
		}
	})
}
