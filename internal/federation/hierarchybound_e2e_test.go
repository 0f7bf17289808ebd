package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// TestRemoteHierarchyAnswerBounded: a space of hs1 names two rooms on
// the peer. The peer's federation /hierarchy answer about one is small
// and the room appears in the client /hierarchy; its answer about the
// other is over 1 MiB, is not read past the bound, and that room is
// treated as one no server could describe: it does not appear.
func TestRemoteHierarchyAnswerBounded(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		alice := hs1.Register("alice", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space",
			CreationContent: map[string]any{"type": "m.space"}})
		if err != nil {
			t.Fatal(err)
		}
		space := created.RoomID
		small, big := id.RoomID("!small:peer.test"), id.RoomID("!big:peer.test")
		answer := func(roomID id.RoomID, inaccessible int) []byte {
			var ids []string
			for i := range inaccessible {
				ids = append(ids, fmt.Sprintf("!padding%08d:peer.test", i))
			}
			raw, err := json.Marshal(map[string]any{"room": map[string]any{"room_id": roomID, "name": string(roomID),
				"num_joined_members": 1, "world_readable": true, "guest_can_join": false, "join_rule": "public",
				"children_state": []any{}}, "children": []any{}, "inaccessible_children": append([]string{}, ids...)})
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}
		p.SetHierarchy(small.String(), answer(small, 0))
		bigAnswer := answer(big, 40000)
		if len(bigAnswer) <= 1<<20 {
			t.Fatalf("the big answer is %d bytes", len(bigAnswer))
		}
		p.SetHierarchy(big.String(), bigAnswer)
		for i, child := range []id.RoomID{small, big} {
			if _, err := alice.SendStateEvent(ctx, space, event.StateSpaceChild, child.String(),
				map[string]any{"via": []string{p.Name}, "order": fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := alice.Hierarchy(ctx, space, &mautrix.ReqHierarchy{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := hierarchyIDs(resp), []id.RoomID{space, small}; !slices.Equal(got, want) {
			t.Fatalf("hierarchy: %v, want %v", got, want)
		}
		if p.Hits(peer.Hierarchy) < 2 {
			t.Fatalf("the peer was asked %d times", p.Hits(peer.Hierarchy))
		}
	})
}
