package reputation_test

import (
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestReputationUserExtentSurvivesRestart: what alice's own filter hid
// from her (events, and the distinct users, rooms and servers) is
// counted the same after the server restarts, and counting goes on from
// there: a second message of the same sender adds an event, not a user.
func TestReputationUserExtentSurvivesRestart(t *testing.T) {
	testserver.EachEngine(t, enfConfig, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("admin", "password1234")
		alice, bob := s.Register("alice", "password1234"), s.Register("bob", "password1234")
		mallory := s.Register("mallory", "password1234")
		feed := enfFeed(t, admin)
		room := testserver.Room(t, bob, &mautrix.ReqCreateRoom{Preset: "public_chat"}, alice, mallory)
		userSubscribe(t, alice, feed)
		enfRule(t, admin, feed, "user", "mallory", mallory.UserID.String(), "m.ban", "spam")
		userWaitFollowed(t, s, alice, 1)
		counts := func() [4]float64 {
			f := userExtent(t, s, alice)
			if len(f) != 1 {
				t.Fatalf("alice's extent: %v", f)
			}
			n := func(k string) float64 { v, _ := f[0][k].(float64); return v }
			return [4]float64{n("events"), n("users"), n("rooms"), n("servers")}
		}
		enfSend(t, mallory, room, "first")
		eventually(t, "the first hidden message counted", func() bool { return counts() == [4]float64{1, 1, 1, 1} })

		s.Restart()
		for _, c := range []*mautrix.Client{alice, mallory} {
			s.Repoint(c)
		}
		userWaitFollowed(t, s, alice, 1)
		// The stored counts are read as the server starts, alongside
		// the feeds: waited for, not assumed.
		eventually(t, "alice's extent counts [1 1 1 1] (events, users, rooms, servers) after a restart",
			func() bool { return counts() == [4]float64{1, 1, 1, 1} })
		enfSend(t, mallory, room, "second")
		eventually(t, "the second hidden message counted on top", func() bool { return counts() == [4]float64{2, 1, 1, 1} })
	})
}
