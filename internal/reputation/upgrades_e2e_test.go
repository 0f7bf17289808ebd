package reputation_test

import (
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestReputationFeedUpgrade: a feed room the server and alice's own
// filter follow is upgraded; both follow the replacement room (the
// server's subscription now names it, with its weight), and a rule
// added there is enforced, for the server and for alice's filter.
func TestReputationFeedUpgrade(t *testing.T) {
	testserver.EachEngine(t, enfConfig, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("admin", "password1234")
		alice := s.Register("alice", "password1234")
		feed := enfFeed(t, admin)
		status, body := s.Do(t, http.MethodPost, "/_myelin/admin/v1/reputation/feeds", admin.AccessToken,
			map[string]any{"room": feed.String(), "weight": 0.5})
		testserver.WantStatus(t, "subscribe", status, body, http.StatusOK)
		userSubscribe(t, alice, feed)
		userWaitFollowed(t, s, alice, 0)
		// Weight 0.5 lists nothing alone: a threshold of 0.5 for events
		// shows whether the weight carried over (the default 1.0 would
		// not be reached).
		enfRule(t, admin, feed, "user", "one", "@one:evil.test", "m.ban", "spam")
		eventually(t, "the old room's rule counts with weight 0.5", func() bool {
			v := verdict(t, s, admin.AccessToken, "user", "@one:evil.test", "events")
			score, _ := v["score"].(float64)
			return score == 0.5
		})
		userWaitFollowed(t, s, alice, 1)

		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/rooms/"+url.PathEscape(feed.String())+"/upgrade", admin.AccessToken,
			map[string]any{"new_version": "11"})
		testserver.WantStatus(t, "upgrade", status, body, http.StatusOK)
		newRoom := id.RoomID(body["replacement_room"].(string))

		subscription := func() map[string]any {
			status, body := s.Do(t, http.MethodGet, "/_myelin/admin/v1/reputation/feeds", admin.AccessToken, nil)
			testserver.WantStatus(t, "feeds", status, body, http.StatusOK)
			list, _ := body["feeds"].([]any)
			if len(list) != 1 {
				t.Fatalf("feeds: %v", body)
			}
			return list[0].(map[string]any)
		}
		eventually(t, "the subscription follows the replacement room", func() bool { return subscription()["room_id"] == newRoom.String() })
		if sub := subscription(); sub["weight"] != 0.5 || sub["last_error"] != "" {
			t.Errorf("the subscription after the upgrade: %v", sub)
		}
		enfRule(t, admin, newRoom, "user", "two", "@two:evil.test", "m.ban", "spam")
		eventually(t, "the new room's rule is enforced with the feed's weight", func() bool {
			v := verdict(t, s, admin.AccessToken, "user", "@two:evil.test", "events")
			score, _ := v["score"].(float64)
			return score == 0.5
		})
		eventually(t, "alice's filter follows the replacement room with its rule", func() bool {
			f := userExtent(t, s, alice)
			return len(f) == 1 && f[0]["room_id"] == newRoom.String() && f[0]["rules"] == 1.0
		})
		eventually(t, "the feeds' user left the old room", func() bool {
			status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(feed.String())+"/joined_members", admin.AccessToken, nil)
			testserver.WantStatus(t, "joined_members", status, body, http.StatusOK)
			joined, _ := body["joined"].(map[string]any)
			return len(joined) == 1
		})
	})
}
