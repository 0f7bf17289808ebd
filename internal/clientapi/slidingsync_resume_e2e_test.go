package clientapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestSlidingSyncResumesAfterRestart is issue 18's "a connection that
// resumes after a restart": Element X's room list connection, its pos
// taken before the server restarts, goes on after it without any room
// sent again; the next message brings its room alone, not initial, and
// the $LAZY membership of its sender, sent before the restart, is not
// sent again.
func TestSlidingSyncResumesAfterRestart(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob := s.Register("alice", "pw"), s.Register("bob", "pw")
		var ids []id.RoomID
		for i := range 6 {
			ids = append(ids, syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: fmt.Sprintf("room %d", i)}))
		}
		syJoin(t, bob, ids[0])
		sySend(t, bob, ids[0], "before")
		first := ssOK(t, s, alice, "", 0, roomList(0, 19))
		if r0 := first.Rooms[ids[0].String()]; len(first.Rooms) != 6 || r0 == nil || !ssHas(r0.RequiredState, "m.room.member", string(bob.UserID)) {
			t.Fatalf("first window: %d rooms, room 0 %+v", len(first.Rooms), r0)
		}
		// Settle what arrives behind the first answer (unread counts).
		pos := ssOK(t, s, alice, first.Pos, 0, roomList(0, 19)).Pos

		s.Restart()
		s.Repoint(alice)
		s.Repoint(bob)

		resumed := ssOK(t, s, alice, pos, 0, roomList(0, 19))
		if n := resumed.Lists["all_rooms"].Count; n != 6 {
			t.Fatalf("resumed list count %d, want 6", n)
		}
		for id, r := range resumed.Rooms {
			if r.Initial || len(r.Timeline) > 0 || len(r.RequiredState) > 0 {
				t.Fatalf("room %s sent again after the restart: %+v", id, r)
			}
		}
		if resumed.Pos == "" || resumed.Pos == pos {
			t.Fatalf("resumed pos %q (was %q)", resumed.Pos, pos)
		}

		sySend(t, bob, ids[0], "after")
		moved := ssOK(t, s, alice, resumed.Pos, 0, roomList(0, 19))
		r := moved.Rooms[ids[0].String()]
		if r == nil || r.Initial || len(r.Timeline) != 1 || r.Timeline[0].Content["body"] != "after" {
			t.Fatalf("after a message: %d rooms, room %+v", len(moved.Rooms), r)
		}
		if ssHas(r.RequiredState, "m.room.member", string(bob.UserID)) {
			t.Fatal("bob's membership ($LAZY) sent again after the restart")
		}
		for id, other := range moved.Rooms {
			if id != ids[0].String() && (other.Initial || len(other.Timeline) > 0) {
				t.Fatalf("room %s sent again: %+v", id, other)
			}
		}

		// The pos the connection had before its last answer is still
		// accepted in memory (a lost answer), but a connection started
		// over replaces the stored one: its old pos is unknown.
		restarted := ssOK(t, s, alice, "", 0, roomList(0, 19))
		if len(restarted.Rooms) != 6 {
			t.Fatalf("started over: %d rooms, want 6", len(restarted.Rooms))
		}
		s.Restart()
		s.Repoint(alice)
		st, _, raw := ssync(t, s, alice, moved.Pos, 0, roomList(0, 19))
		testserver.WantError(t, "pos of the replaced connection", st, raw.JSON, http.StatusBadRequest, "M_UNKNOWN_POS")
		for id, r := range ssOK(t, s, alice, restarted.Pos, 0, roomList(0, 19)).Rooms {
			if r.Initial || len(r.Timeline) > 0 {
				t.Fatalf("started-over connection resent room %s after a restart: %+v", id, r)
			}
		}
	})
}
