package clientapi_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// stateAfterRoom is a joined room as use_state_after answers it: the
// state section must be absent (raw, to tell absent from empty).
type stateAfterRoom struct {
	State      *syEvents   `json:"state"`
	StateAfter *syEvents   `json:"state_after"`
	Unstable   *syEvents   `json:"org.matrix.msc4222.state_after"`
	Timeline   *syTimeline `json:"timeline"`
}

func syncStateAfter(t *testing.T, c *mautrix.Client, q map[string]string) (map[string]*stateAfterRoom, string) {
	t.Helper()
	var resp struct {
		NextBatch string `json:"next_batch"`
		Rooms     struct {
			Join map[string]*stateAfterRoom `json:"join"`
		} `json:"rooms"`
	}
	if _, err := c.MakeRequest(context.Background(), http.MethodGet, c.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, q), nil, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Rooms.Join, resp.NextBatch
}

// TestSyncUseStateAfter: with use_state_after (spec v1.16, MSC4222)
// joined rooms carry state_after, the state up to the end of the
// timeline, and no state: whole in an initial sync; in an incremental
// one every change since the token, the timeline's state events
// included, the last value winning; with lazy-loaded members the
// members of the timeline's senders.
func TestSyncUseStateAfter(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw"), s.Register("bob", "pw"), s.Register("carol", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "First"})
		syJoin(t, bob, room)

		rooms, since := syncStateAfter(t, bob, map[string]string{"use_state_after": "true"})
		r := rooms[room.String()]
		if r == nil || r.State != nil || r.StateAfter == nil || syFind(r.StateAfter.Events, "m.room.create", "") == nil ||
			syFind(r.StateAfter.Events, "m.room.member", bob.UserID.String()) == nil {
			t.Fatalf("initial sync with use_state_after: %+v", r)
		}
		legacy, _ := syncStateAfter(t, bob, nil)
		if l := legacy[room.String()]; l == nil || l.State == nil || l.StateAfter != nil {
			t.Fatalf("sync without use_state_after must keep state and have no state_after: %+v", l)
		}

		// Changes inside the timeline are in state_after, the last one winning.
		if _, err := alice.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]any{"name": "Second"}); err != nil {
			t.Fatal(err)
		}
		sySend(t, alice, room, "hello")
		if _, err := alice.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]any{"name": "Third"}); err != nil {
			t.Fatal(err)
		}
		rooms, _ = syncStateAfter(t, bob, map[string]string{"use_state_after": "true", "since": since})
		r = rooms[room.String()]
		if r == nil || r.State != nil || r.StateAfter == nil {
			t.Fatalf("incremental sync with use_state_after: %+v", r)
		}
		if n := syFind(r.StateAfter.Events, "m.room.name", ""); n == nil || n.Content["name"] != "Third" {
			t.Fatalf("state_after name: %+v, want Third", n)
		}
		if syFind(r.StateAfter.Events, "m.room.create", "") != nil {
			t.Fatalf("incremental state_after repeats unchanged state")
		}

		// Lazy-loaded members: the senders' memberships, even joined before
		// the token, and not the silent ones.
		syJoin(t, carol, room)
		_, since = syncStateAfter(t, bob, map[string]string{"use_state_after": "true"})
		sySend(t, alice, room, "lazy")
		f := syFilter(map[string]any{"room": map[string]any{"state": map[string]any{"lazy_load_members": true}}})
		rooms, _ = syncStateAfter(t, bob, map[string]string{"use_state_after": "true", "since": since, "filter": f})
		r = rooms[room.String()]
		if r == nil || r.StateAfter == nil || syFind(r.StateAfter.Events, "m.room.member", alice.UserID.String()) == nil {
			t.Fatalf("lazy-loaded state_after lacks the sender's membership: %+v", r)
		}
		if syFind(r.StateAfter.Events, "m.room.member", carol.UserID.String()) != nil {
			t.Fatalf("lazy-loaded state_after has a member who sent nothing")
		}
	})
}

// TestSyncUseStateAfterUnstable: the MSC4222 unstable parameter
// org.matrix.msc4222.use_state_after is answered with the unstable
// section name, as Synapse serves clients written against the MSC, and
// /versions advertises org.matrix.msc4222.
func TestSyncUseStateAfterUnstable(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "First"})

		rooms, _ := syncStateAfter(t, alice, map[string]string{"org.matrix.msc4222.use_state_after": "true"})
		r := rooms[room.String()]
		if r == nil || r.State != nil || r.StateAfter != nil || r.Unstable == nil ||
			syFind(r.Unstable.Events, "m.room.create", "") == nil {
			t.Fatalf("initial sync with the unstable parameter: %+v", r)
		}
		// Both given: the stable name, as the stable parameter asks.
		rooms, _ = syncStateAfter(t, alice, map[string]string{"org.matrix.msc4222.use_state_after": "true", "use_state_after": "true"})
		if r := rooms[room.String()]; r == nil || r.StateAfter == nil || r.Unstable != nil || r.State != nil {
			t.Fatalf("sync with both parameters: %+v", r)
		}

		v, err := alice.Versions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !v.UnstableFeatures["org.matrix.msc4222"] {
			t.Fatalf("/versions unstable_features lacks org.matrix.msc4222: %v", v.UnstableFeatures)
		}
	})
}
