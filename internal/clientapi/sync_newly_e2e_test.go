package clientapi_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestSyncNewlyJoinedRoom: in an incremental sync, a room joined since
// the token has a limited timeline unless it starts at the room's
// creation, and the presence of its members comes with it although it
// last changed before the token (Synapse's newly joined rooms and users).
func TestSyncNewlyJoinedRoom(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw"), s.Register("bob", "pw"), s.Register("carol", "pw")
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "around"}); err != nil {
			t.Fatal(err)
		}
		old := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		sySend(t, alice, old, "before bob's token")
		since := sySync(t, bob, nil).NextBatch

		syJoin(t, bob, old)
		resp := sySyncPresence(t, bob, since)
		j := resp.Rooms.Join[old.String()]
		if j == nil || j.Timeline == nil || !j.Timeline.Limited || j.Timeline.PrevBatch == "" {
			t.Fatalf("newly joined room's timeline not limited: %+v", j)
		}
		if !hasPresence(resp, alice.UserID.String(), "around") {
			t.Fatalf("no presence of alice, who newly shares a room with bob: %+v", resp.Presence)
		}
		since = resp.NextBatch

		// A room made after the token starts at its creation: not limited.
		fresh := syCreate(t, carol, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		syJoin(t, bob, fresh)
		j = sySync(t, bob, map[string]string{"since": since}).Rooms.Join[fresh.String()]
		if j == nil || j.Timeline == nil || j.Timeline.Limited || syFind(j.Timeline.Events, "m.room.create", "") == nil {
			t.Fatalf("room created after the token: %+v", j)
		}
	})
}

type syPresenceResp struct {
	syResp
	Presence struct {
		Events []struct {
			Sender  string         `json:"sender"`
			Content map[string]any `json:"content"`
		} `json:"events"`
	} `json:"presence"`
}

func sySyncPresence(t *testing.T, c *mautrix.Client, since string) *syPresenceResp {
	t.Helper()
	var resp syPresenceResp
	u := c.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, map[string]string{"since": since})
	if _, err := c.MakeRequest(context.Background(), "GET", u, nil, &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}

func hasPresence(r *syPresenceResp, user, status string) bool {
	for _, ev := range r.Presence.Events {
		if ev.Sender == user && ev.Content["status_msg"] == status {
			return true
		}
	}
	return false
}
