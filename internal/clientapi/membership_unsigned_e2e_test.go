package clientapi_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestUnsignedMembership: events on every client path carry
// unsigned.membership, the requesting user's membership after the event
// (MSC4115, spec v1.11): "leave" before they ever joined, "invite" and
// "join" from their own membership events, "join" while in the room.
func TestUnsignedMembership(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob := s.Register("alice", "pw"), s.Register("bob", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		before := sySend(t, alice, room, "before bob")
		syInvite(t, alice, room, bob.UserID)
		syJoin(t, bob, room)
		during := sySend(t, alice, room, "with bob")
		react, err := alice.SendReaction(ctx, room, id.EventID(during), "👍")
		if err != nil {
			t.Fatal(err)
		}

		want := map[string]string{before: "leave", during: "join", react.EventID.String(): "join"}
		check := func(where string, evs []syEvent) {
			t.Helper()
			seen := 0
			for _, ev := range evs {
				got, _ := ev.Unsigned["membership"].(string)
				if w, ok := want[ev.EventID]; ok {
					seen++
					if got != w {
						t.Fatalf("%s: %s has unsigned.membership %q, want %q", where, ev.Type, got, w)
					}
				}
				if ev.Type == "m.room.member" && ev.StateKey != nil && *ev.StateKey == bob.UserID.String() && got != ev.membership() {
					t.Fatalf("%s: bob's own %s event has unsigned.membership %q", where, ev.membership(), got)
				}
			}
			if seen == 0 {
				t.Fatalf("%s: none of the checked events present", where)
			}
		}

		chunk, _ := syMessages(t, bob, room, map[string]string{"dir": "b", "limit": "50"})
		check("/messages", chunk)
		if j := sySync(t, bob, nil).Rooms.Join[room.String()]; j == nil || j.Timeline == nil {
			t.Fatal("bob's sync lacks the room")
		} else {
			check("/sync", j.Timeline.Events)
		}
		var one syEvent
		if _, err := bob.MakeRequest(ctx, http.MethodGet, bob.BuildClientURL("v3", "rooms", room, "event", during), nil, &one); err != nil {
			t.Fatal(err)
		}
		check("/event", []syEvent{one})
		var cx struct {
			Event  syEvent   `json:"event"`
			Before []syEvent `json:"events_before"`
		}
		if _, err := bob.MakeRequest(ctx, http.MethodGet, bob.BuildClientURL("v3", "rooms", room, "context", during), nil, &cx); err != nil {
			t.Fatal(err)
		}
		check("/context", append(cx.Before, cx.Event))
		var rel struct {
			Chunk []syEvent `json:"chunk"`
		}
		if _, err := bob.MakeRequest(ctx, http.MethodGet, bob.BuildClientURL("v1", "rooms", room, "relations", during), nil, &rel); err != nil {
			t.Fatal(err)
		}
		check("/relations", rel.Chunk)
	})
}
