package federation_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestSpacesAcrossServers: a space of hs1 whose rooms are partly on hs2,
// which hs1 is not in. The client /hierarchy on hs1 asks hs2's
// federation /hierarchy for them: public rooms and a sub-space with its
// own children appear, a child hs2 will not describe does not, and a
// room restricted to the space appears to a member of the space only.
// /room_summary answers for hs2's rooms the same way.
func TestSpacesAcrossServers(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		alice := hs1.Register("alice", "password1234")
		carol := hs1.Register("carol", "password1234")
		bob := net.Servers[1].Register("bob", "password1234")
		spaceType := map[string]any{"type": "m.space"}
		create := func(c *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
			t.Helper()
			resp, err := c.CreateRoom(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return resp.RoomID
		}
		child := func(c *mautrix.Client, space, room id.RoomID, order, via string) {
			t.Helper()
			if _, err := c.SendStateEvent(ctx, space, event.StateSpaceChild, room.String(),
				map[string]any{"via": []string{via}, "order": order}); err != nil {
				t.Fatal(err)
			}
		}

		space := create(alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space", CreationContent: spaceType})
		local := create(alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Local"})
		if _, err := bob.JoinRoom(ctx, space.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		// hs2 sees hs1 in the space (for the restricted room) once it
		// holds the space's full state.
		awaitFullState(t, net.Servers[1], space)
		remote := create(bob, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Remote", Topic: "on hs2", RoomVersion: "10"})
		sub := create(bob, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Sub-space", CreationContent: spaceType})
		subChild := create(bob, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "In the sub-space"})
		hidden := create(bob, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Hidden", RoomVersion: "10"})
		child(bob, sub, subChild, "a", "hs2.test")
		child(bob, sub, hidden, "b", "hs2.test")
		restricted := create(bob, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Space members", RoomVersion: "10",
			InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{
				"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space.String()}},
			}}}}})
		child(alice, space, local, "a", "hs1.test")
		if _, err := alice.SendStateEvent(ctx, space, event.StateSpaceChild, remote.String(),
			map[string]any{"via": []string{"hs2.test"}, "order": "b", "suggested": true}); err != nil {
			t.Fatal(err)
		}
		child(alice, space, sub, "c", "hs2.test")
		child(alice, space, restricted, "d", "hs2.test")

		want := []id.RoomID{space, local, remote, sub, subChild, restricted}
		resp, err := alice.Hierarchy(ctx, space, &mautrix.ReqHierarchy{})
		if err != nil {
			t.Fatal(err)
		}
		if got := hierarchyIDs(resp); !slices.Equal(got, want) {
			t.Fatalf("alice's hierarchy: %v, want %v", got, want)
		}
		for _, r := range resp.Rooms {
			if r.RoomID == remote && (r.Name != "Remote" || r.Topic != "on hs2" || r.NumJoinedMembers != 1) {
				t.Fatalf("hs2's room as hs1 describes it: %+v", r.PublicRoomInfo)
			}
			if r.RoomID == sub && (len(r.ChildrenState) != 2) {
				t.Fatalf("the sub-space's children_state: %v", r.ChildrenState)
			}
		}
		// carol is not in the space: the room restricted to it is hidden.
		resp, err = carol.Hierarchy(ctx, space, &mautrix.ReqHierarchy{})
		if err != nil {
			t.Fatal(err)
		}
		if got := hierarchyIDs(resp); !slices.Equal(got, want[:5]) {
			t.Fatalf("carol's hierarchy: %v, want %v", got, want[:5])
		}
		// max_depth 1 stops below the space's direct children.
		resp, err = alice.Hierarchy(ctx, space, &mautrix.ReqHierarchy{MaxDepth: ptr(1)})
		if err != nil {
			t.Fatal(err)
		}
		if got := hierarchyIDs(resp); !slices.Equal(got, []id.RoomID{space, local, remote, sub, restricted}) {
			t.Fatalf("alice's hierarchy to depth 1: %v", got)
		}

		// suggested_only keeps the suggested child alone.
		resp, err = alice.Hierarchy(ctx, space, &mautrix.ReqHierarchy{SuggestedOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := hierarchyIDs(resp); !slices.Equal(got, []id.RoomID{space, remote}) {
			t.Fatalf("alice's suggested hierarchy: %v", got)
		}
		// Pages of two rooms add up to the whole walk.
		var paged []id.RoomID
		req := &mautrix.ReqHierarchy{Limit: 2}
		for range 10 {
			resp, err = alice.Hierarchy(ctx, space, req)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, hierarchyIDs(resp)...)
			if resp.NextBatch == "" {
				break
			}
			req.From = resp.NextBatch
		}
		if !slices.Equal(paged, want) {
			t.Fatalf("alice's hierarchy in pages of two: %v, want %v", paged, want)
		}
		// hs2 describes the restricted room to hs1, which is in the space
		// it is restricted to, and not the invite-only one.
		status, body := net.SignedRequest(t, hs1, net.Servers[1], http.MethodGet, "/_matrix/federation/v1/hierarchy/"+url.PathEscape(restricted.String()), nil)
		testserver.WantStatus(t, "hs2's federation hierarchy of the restricted room", status, body, http.StatusOK)
		if room, _ := body["room"].(map[string]any); room["join_rule"] != "restricted" || fmt.Sprint(room["allowed_room_ids"]) != fmt.Sprint([]any{space.String()}) {
			t.Fatalf("hs2's federation hierarchy of the restricted room: %v", body)
		}
		status, body = net.SignedRequest(t, hs1, net.Servers[1], http.MethodGet, "/_matrix/federation/v1/hierarchy/"+url.PathEscape(hidden.String()), nil)
		testserver.WantError(t, "hs2's federation hierarchy of the invite-only room", status, body, http.StatusNotFound, "M_NOT_FOUND")

		summary := func(c *mautrix.Client, room id.RoomID, via string) (int, map[string]any) {
			path := "/_matrix/client/v1/room_summary/" + url.PathEscape(room.String())
			if via != "" {
				path += "?via=" + via
			}
			return hs1.Do(t, http.MethodGet, path, c.AccessToken, nil)
		}
		status, body = summary(alice, remote, "hs2.test")
		testserver.WantStatus(t, "summary of hs2's room", status, body, http.StatusOK)
		if body["name"] != "Remote" || body["membership"] != "leave" || body["room_id"] != remote.String() {
			t.Fatalf("summary of hs2's room: %v", body)
		}
		// Without via, the server in the room ID is asked.
		status, body = summary(alice, remote, "")
		testserver.WantStatus(t, "summary of hs2's room without via", status, body, http.StatusOK)
		status, body = summary(alice, restricted, "hs2.test")
		testserver.WantStatus(t, "summary of the restricted room for a space member", status, body, http.StatusOK)
		status, body = summary(carol, restricted, "hs2.test")
		testserver.WantError(t, "summary of the restricted room for someone else", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = summary(alice, hidden, "hs2.test")
		testserver.WantError(t, "summary of an invite-only room", status, body, http.StatusNotFound, "M_NOT_FOUND")
	})
}

func hierarchyIDs(resp *mautrix.RespHierarchy) []id.RoomID {
	out := make([]id.RoomID, len(resp.Rooms))
	for i, r := range resp.Rooms {
		out[i] = r.RoomID
	}
	return out
}
