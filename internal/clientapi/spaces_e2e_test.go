package clientapi_test

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

func spcRoom(t *testing.T, cli *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	t.Helper()
	resp, err := cli.CreateRoom(context.Background(), req)
	if err != nil {
		t.Fatalf("createRoom %+v: %v", req, err)
	}
	return resp.RoomID
}

func spcChild(t *testing.T, cli *mautrix.Client, space, child id.RoomID, content map[string]any) {
	t.Helper()
	if _, err := cli.SendStateEvent(context.Background(), space, event.StateSpaceChild, child.String(), content); err != nil {
		t.Fatalf("m.space.child %s in %s: %v", child, space, err)
	}
}

func spcIDs(rooms []*mautrix.ChildRoomsChunk) []id.RoomID {
	out := make([]id.RoomID, len(rooms))
	for i, r := range rooms {
		out[i] = r.RoomID
	}
	return out
}

func spcChildIDs(chunk *mautrix.ChildRoomsChunk) []id.RoomID {
	out := make([]id.RoomID, len(chunk.ChildrenState))
	for i, ev := range chunk.ChildrenState {
		out[i] = id.RoomID(*ev.StateKey)
	}
	return out
}

func spcHierarchy(t *testing.T, cli *mautrix.Client, room id.RoomID, req *mautrix.ReqHierarchy, want ...id.RoomID) *mautrix.RespHierarchy {
	t.Helper()
	resp, err := cli.Hierarchy(context.Background(), room, req)
	if err != nil {
		t.Fatalf("hierarchy of %s %+v: %v", room, req, err)
	}
	if got := spcIDs(resp.Rooms); !dirSameIDs(got, want) {
		t.Fatalf("hierarchy of %s %+v as %s: %v, want %v", room, req, cli.UserID, got, want)
	}
	return resp
}

func spcDepth(n int) *int { return &n }

// TestSpaceHierarchy covers GET /v1/rooms/{roomId}/hierarchy: depth-first
// order with the spec's child ordering, children_state, rooms hidden from
// the user or unknown to the server, loops, max_depth, suggested_only,
// paging and its errors.
func TestSpaceHierarchy(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		space := map[string]any{"type": "m.space"}

		S := spcRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space", Topic: "Top", CreationContent: space})
		A := spcRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "A"})
		B := spcRoom(t, alice, &mautrix.ReqCreateRoom{Name: "B"})
		S2 := spcRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Sub", CreationContent: space})
		D := spcRoom(t, alice, &mautrix.ReqCreateRoom{Name: "D"})
		E := spcRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "E"})
		F := spcRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "F"})
		C := spcRoom(t, bob, &mautrix.ReqCreateRoom{Name: "bob's"})
		unknown := id.RoomID("!unknown:hs1.test")
		via := []string{"hs1.test"}

		spcChild(t, alice, S, F, map[string]any{"via": via, "order": strings.Repeat("x", 51)}) // invalid order: after the ordered ones
		spcChild(t, alice, S, C, map[string]any{"via": via, "order": "d"})
		spcChild(t, alice, S, unknown, map[string]any{"via": via, "order": "e"})
		spcChild(t, alice, S, S2, map[string]any{"via": via, "order": "c", "suggested": true})
		spcChild(t, alice, S, A, map[string]any{"via": via, "order": "b", "suggested": true})
		spcChild(t, alice, S, B, map[string]any{"via": via, "order": "a"})
		spcChild(t, alice, S, E, map[string]any{"via": []string{}}) // no via: removed
		spcChild(t, alice, S2, D, map[string]any{"via": via})
		spcChild(t, alice, S2, S, map[string]any{"via": via}) // a loop

		resp := spcHierarchy(t, alice, S, nil, S, B, A, S2, D, F)
		if resp.NextBatch != "" {
			t.Fatalf("next_batch on the only page: %q", resp.NextBatch)
		}
		root := resp.Rooms[0]
		if got, want := spcChildIDs(root), []id.RoomID{B, A, S2, C, unknown, F}; !dirSameIDs(got, want) {
			t.Fatalf("children_state of the space: %v, want %v", got, want)
		}
		for _, ev := range root.ChildrenState {
			if ev.Type != event.StateSpaceChild || ev.Sender != alice.UserID || ev.Timestamp == 0 || ev.Content.Raw["via"] == nil {
				t.Fatalf("children_state entry: %+v", ev)
			}
		}
		if root.Name != "Space" || root.Topic != "Top" || root.RoomType != "m.space" || root.JoinRule != "public" || root.NumJoinedMembers != 1 {
			t.Fatalf("space entry: %+v", root.PublicRoomInfo)
		}
		if len(resp.Rooms[1].ChildrenState) != 0 {
			t.Fatalf("a plain room has children_state: %+v", resp.Rooms[1].ChildrenState)
		}
		if got := spcChildIDs(resp.Rooms[3]); !dirSameIDs(got, []id.RoomID{D, S}) && !dirSameIDs(got, []id.RoomID{S, D}) {
			t.Fatalf("children_state of the sub-space: %v", got)
		}

		// bob sees the public rooms and his own, not alice's private ones.
		spcHierarchy(t, bob, S, nil, S, A, S2, C, F)

		// max_depth: 0 is the root alone (its children_state still listed).
		resp = spcHierarchy(t, alice, S, &mautrix.ReqHierarchy{MaxDepth: spcDepth(0)}, S)
		if len(resp.Rooms[0].ChildrenState) != 6 {
			t.Fatalf("children_state at max_depth 0: %v", spcChildIDs(resp.Rooms[0]))
		}
		spcHierarchy(t, alice, S, &mautrix.ReqHierarchy{MaxDepth: spcDepth(1)}, S, B, A, S2, F)

		// suggested_only: only suggested children, in the walk and in children_state.
		resp = spcHierarchy(t, alice, S, &mautrix.ReqHierarchy{SuggestedOnly: true}, S, A, S2)
		if got := spcChildIDs(resp.Rooms[0]); !dirSameIDs(got, []id.RoomID{A, S2}) {
			t.Fatalf("suggested children_state: %v", got)
		}

		// Paging.
		page := spcHierarchy(t, alice, S, &mautrix.ReqHierarchy{Limit: 2}, S, B)
		if page.NextBatch == "" {
			t.Fatal("first page lacks next_batch")
		}
		token := page.NextBatch
		page = spcHierarchy(t, alice, S, &mautrix.ReqHierarchy{Limit: 2, From: token}, A, S2)
		page = spcHierarchy(t, alice, S, &mautrix.ReqHierarchy{Limit: 2, From: page.NextBatch}, D, F)
		if page.NextBatch != "" {
			t.Fatalf("last page has next_batch %q", page.NextBatch)
		}
		_, err := alice.Hierarchy(ctx, S, &mautrix.ReqHierarchy{Limit: 2, From: token, MaxDepth: spcDepth(1)})
		testserver.WantHTTPError(t, "max_depth changed while paging", err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = alice.Hierarchy(ctx, S, &mautrix.ReqHierarchy{From: token, SuggestedOnly: true})
		testserver.WantHTTPError(t, "suggested_only changed while paging", err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = alice.Hierarchy(ctx, S2, &mautrix.ReqHierarchy{From: token})
		testserver.WantHTTPError(t, "token of another room", err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = alice.Hierarchy(ctx, S, &mautrix.ReqHierarchy{From: "garbage"})
		testserver.WantHTTPError(t, "garbage token", err, http.StatusBadRequest, "M_INVALID_PARAM")
		for _, q := range []string{"?limit=0", "?limit=x", "?max_depth=-1"} {
			_, err = alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v1", "rooms", S, "hierarchy")+q, nil, nil)
			testserver.WantHTTPError(t, "hierarchy"+q, err, http.StatusBadRequest, "M_INVALID_PARAM")
		}

		// Rooms the user may not see, and unknown rooms, are refused.
		_, err = carol.Hierarchy(ctx, D, nil)
		testserver.WantHTTPError(t, "hierarchy of a private room", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = carol.Hierarchy(ctx, unknown, nil)
		testserver.WantHTTPError(t, "hierarchy of an unknown room", err, http.StatusForbidden, "M_FORBIDDEN")
		// A room that is not a space is its own hierarchy.
		if resp := spcHierarchy(t, carol, A, nil, A); len(resp.Rooms[0].ChildrenState) != 0 {
			t.Fatalf("children_state of a plain room: %+v", resp.Rooms[0].ChildrenState)
		}
		// An invite is enough to see a private room.
		if _, err := alice.InviteUser(ctx, D, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
			t.Fatal(err)
		}
		spcHierarchy(t, carol, D, nil, D)
	})
}

// spcSummary calls GET /v1/room_summary/{roomIdOrAlias}.
func spcSummary(cli *mautrix.Client, room string) (*mautrix.RespRoomSummary, error) {
	cli.SpecVersions = &mautrix.RespVersions{Versions: []mautrix.SpecVersion{mautrix.SpecV115}}
	return cli.GetRoomSummary(context.Background(), room)
}

// TestRoomSummary covers GET /v1/room_summary/{roomIdOrAlias}: the
// fields, aliases, membership, anonymous callers and who may see which
// room (joined, invited, public, world-readable, restricted).
func TestRoomSummary(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		anon := s.Client()
		ctx := context.Background()

		pub := spcRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Pub", Topic: "Open", RoomAliasName: "pub", RoomVersion: "11",
			InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{Raw: map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}}})
		priv := spcRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Priv"})
		space := spcRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space", CreationContent: map[string]any{"type": "m.space"}})
		restricted := spcRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Members of Space", RoomVersion: "10",
			InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{
				"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space}},
			}}}}})

		for _, ref := range []string{pub.String(), "#pub:hs1.test"} {
			sum, err := spcSummary(alice, ref)
			if err != nil {
				t.Fatalf("summary of %s: %v", ref, err)
			}
			if sum.RoomID != pub || sum.Name != "Pub" || sum.Topic != "Open" || sum.CanonicalAlias != "#pub:hs1.test" ||
				sum.NumJoinedMembers != 1 || sum.JoinRule != "public" || sum.RoomVersion != "11" ||
				sum.Encryption != "m.megolm.v1.aes-sha2" || sum.Membership != "join" || sum.WorldReadable || sum.GuestCanJoin {
				t.Fatalf("summary of %s: %+v", ref, sum)
			}
		}
		if sum, err := spcSummary(anon, pub.String()); err != nil || sum.RoomID != pub || sum.Membership != "" {
			t.Fatalf("anonymous summary of a public room: %+v %v", sum, err)
		}
		if sum, err := spcSummary(bob, space.String()); err != nil || sum.RoomType != "m.space" || sum.Membership != "leave" {
			t.Fatalf("bob's summary of the space: %+v %v", sum, err)
		}

		// Private rooms: hidden until invited, or world-readable.
		_, err := spcSummary(bob, priv.String())
		testserver.WantHTTPError(t, "private room", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = spcSummary(anon, priv.String())
		testserver.WantHTTPError(t, "anonymous, private room", err, http.StatusNotFound, "M_NOT_FOUND")
		if _, err := alice.InviteUser(ctx, priv, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatal(err)
		}
		if sum, err := spcSummary(bob, priv.String()); err != nil || sum.Membership != "invite" || sum.JoinRule != "invite" {
			t.Fatalf("invited bob's summary: %+v %v", sum, err)
		}
		if _, err := alice.SendStateEvent(ctx, priv, event.StateHistoryVisibility, "", map[string]string{"history_visibility": "world_readable"}); err != nil {
			t.Fatal(err)
		}
		if sum, err := spcSummary(anon, priv.String()); err != nil || !sum.WorldReadable {
			t.Fatalf("anonymous summary of a world-readable room: %+v %v", sum, err)
		}

		// Restricted: visible to members of an allowed room.
		_, err = spcSummary(bob, restricted.String())
		testserver.WantHTTPError(t, "restricted room, bob outside the space", err, http.StatusNotFound, "M_NOT_FOUND")
		if _, err := bob.JoinRoomByID(ctx, space); err != nil {
			t.Fatal(err)
		}
		sum, err := spcSummary(bob, restricted.String())
		if err != nil || sum.JoinRule != "restricted" || len(sum.AllowedRoomIDs) != 1 || sum.AllowedRoomIDs[0] != space || sum.Membership != "leave" {
			t.Fatalf("restricted summary for a space member: %+v %v", sum, err)
		}
		_, err = spcSummary(anon, restricted.String())
		testserver.WantHTTPError(t, "anonymous, restricted room", err, http.StatusNotFound, "M_NOT_FOUND")

		// Unknown rooms and aliases; malformed references.
		_, err = spcSummary(alice, "!nowhere:hs1.test")
		testserver.WantHTTPError(t, "unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = spcSummary(alice, "#nowhere:hs1.test")
		testserver.WantHTTPError(t, "unknown alias", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = spcSummary(alice, "nowhere")
		testserver.WantHTTPError(t, "malformed reference", err, http.StatusBadRequest, "M_INVALID_PARAM")
	})
}

// TestMutualRooms covers GET /v1/mutual_rooms: only rooms both users are
// joined to, count, paging by next_batch (pages of 20 rooms), and the
// parameter errors.
func TestMutualRooms(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")

		var shared []id.RoomID
		for i := 0; i < 21; i++ {
			room := spcRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
			if _, err := bob.JoinRoomByID(ctx, room); err != nil {
				t.Fatal(err)
			}
			shared = append(shared, room)
		}
		sort.Slice(shared, func(i, j int) bool { return shared[i] < shared[j] })
		spcRoom(t, alice, &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}}) // bob only invited
		spcRoom(t, alice, &mautrix.ReqCreateRoom{})                                // alice alone
		left := spcRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if _, err := bob.JoinRoomByID(ctx, left); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.LeaveRoom(ctx, left); err != nil {
			t.Fatal(err)
		}

		first, err := alice.GetMutualRooms(ctx, bob.UserID)
		if err != nil {
			t.Fatalf("mutual rooms: %v", err)
		}
		if first.Count != 21 || len(first.Joined) != 20 || first.NextBatch == "" || !dirSameIDs(first.Joined, shared[:20]) {
			t.Fatalf("first page: count %d, %d rooms, next %q", first.Count, len(first.Joined), first.NextBatch)
		}
		second, err := bob.GetMutualRooms(ctx, alice.UserID, mautrix.ReqMutualRooms{From: first.NextBatch})
		if err != nil {
			t.Fatalf("second page: %v", err)
		}
		if second.Count != 21 || !dirSameIDs(second.Joined, shared[20:]) || second.NextBatch != "" {
			t.Fatalf("second page: %+v", second)
		}

		none, err := alice.GetMutualRooms(ctx, "@nobody:hs1.test")
		if err != nil || len(none.Joined) != 0 || none.Count != 0 || none.NextBatch != "" {
			t.Fatalf("unknown user: %+v %v", none, err)
		}
		status, body := s.Do(t, http.MethodGet, "/_matrix/client/v1/mutual_rooms?user_id="+"%40nobody%3Ahs1.test", alice.AccessToken, nil)
		if status != http.StatusOK || body["joined"] == nil || body["count"] != float64(0) {
			t.Fatalf("raw response for an unknown user: %d %v", status, body)
		}

		_, err = alice.GetMutualRooms(ctx, alice.UserID)
		testserver.WantHTTPError(t, "own user ID", err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = alice.GetMutualRooms(ctx, "not-a-user")
		testserver.WantHTTPError(t, "invalid user ID", err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = alice.GetMutualRooms(ctx, bob.UserID, mautrix.ReqMutualRooms{From: "%%%"})
		testserver.WantHTTPError(t, "invalid from token", err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v1", "mutual_rooms"), nil, nil)
		testserver.WantHTTPError(t, "missing user_id", err, http.StatusBadRequest, "M_MISSING_PARAM")
	})
}
