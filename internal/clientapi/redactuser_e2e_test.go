package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestRedactUserEvents: MSC4194 through mautrix-go's client, as
// Meowlnir and Draupnir call it. A moderator redacts a spammer's
// timeline events newest first, a page of limit at a time, with
// is_more_events telling whether any are left; events already redacted
// and the spammer's state events are left alone, as are other users'
// events; a member without the redact level is refused, and hostile
// input is 400, never 5xx.
func TestRedactUserEvents(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice") // the room's creator: the moderator
		bob := s.Register("bob", "pw-bob")       // the spammer
		carol := s.Register("carol", "pw-carol") // a member without the redact level
		dave := s.Register("dave", "pw-dave")    // not in the room
		room := testserver.Room(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"}, bob, carol)

		if v, err := alice.Versions(ctx); err != nil || !v.Supports(mautrix.FeatureUserRedaction) {
			t.Fatalf("mautrix-go does not see MSC4194 in /versions: %v %v", v, err)
		}

		send := func(c *mautrix.Client, text string) id.EventID {
			t.Helper()
			resp, err := c.SendText(ctx, room, text)
			if err != nil {
				t.Fatal(err)
			}
			return resp.EventID
		}
		var spam []id.EventID // oldest first
		for _, text := range []string{"spam 0", "spam 1", "spam 2", "spam 3", "spam 4", "spam 5"} {
			spam = append(spam, send(bob, text))
		}
		aliceMsg := send(alice, "alice's own message")
		// A state event of the spammer (a new display name) is not redacted.
		if err := bob.SetDisplayName(ctx, "spammy bob"); err != nil {
			t.Fatal(err)
		}
		// Already redacted: skipped, and not counted against the limit.
		if _, err := alice.RedactEvent(ctx, room, spam[0], mautrix.ReqRedact{Reason: "by hand"}); err != nil {
			t.Fatal(err)
		}

		redacted := func(ev id.EventID) (bool, map[string]any) {
			t.Helper()
			status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/event/"+url.PathEscape(ev.String()), alice.AccessToken, nil)
			if status != http.StatusOK {
				t.Fatalf("get %s: %d %v", ev, status, body)
			}
			content, _ := body["content"].(map[string]any)
			unsigned, _ := body["unsigned"].(map[string]any)
			because, _ := unsigned["redacted_because"].(map[string]any)
			return len(content) == 0, because
		}

		// Carol may not redact bob's events; dave, not in the room, neither.
		_, err := carol.UnstableRedactUserEvents(ctx, room, bob.UserID, nil)
		testserver.WantHTTPError(t, "carol redacts bob's events", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = dave.UnstableRedactUserEvents(ctx, room, bob.UserID, nil)
		testserver.WantHTTPError(t, "dave, not in the room", err, http.StatusForbidden, "M_FORBIDDEN")
		for _, ev := range spam[1:] {
			if gone, _ := redacted(ev); gone {
				t.Fatalf("%s redacted by a refused request", ev)
			}
		}

		// First page: the 3 newest of the 5 unredacted, and more are left.
		resp, err := alice.UnstableRedactUserEvents(ctx, room, bob.UserID, &mautrix.ReqRedactUser{Reason: "spam", Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if resp.RedactedEvents.Total != 3 || resp.RedactedEvents.SoftFailed != 0 || !resp.IsMoreEvents {
			t.Fatalf("first page: %+v, want 3 redacted and more", resp)
		}
		for i, ev := range spam {
			gone, because := redacted(ev)
			if want := i == 0 || i >= 3; gone != want {
				t.Fatalf("after the first page, spam %d redacted=%v, want %v", i, gone, want)
			}
			if i >= 3 {
				c, _ := because["content"].(map[string]any)
				if because["sender"] != alice.UserID.String() || c["reason"] != "spam" {
					t.Fatalf("spam %d redacted_because %v, want alice's with reason spam", i, because)
				}
			}
		}
		// Second page: exactly the limit is left, so nothing more after it.
		resp, err = alice.UnstableRedactUserEvents(ctx, room, bob.UserID, &mautrix.ReqRedactUser{Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if resp.RedactedEvents.Total != 2 || resp.IsMoreEvents {
			t.Fatalf("second page: %+v, want 2 redacted and no more", resp)
		}
		// Nothing left: the default limit, a limit past the server's
		// maximum (cut down, not refused), both redact nothing.
		for _, q := range []string{"", "?limit=1000000"} {
			status, body := s.Do(t, http.MethodPost, "/_matrix/client/unstable/org.matrix.msc4194/rooms/"+url.PathEscape(room.String())+
				"/redact/user/"+url.PathEscape(bob.UserID.String())+q, alice.AccessToken, map[string]any{})
			counts, _ := body["redacted_events"].(map[string]any)
			if status != http.StatusOK || counts["total"] != float64(0) || body["is_more_events"] != false {
				t.Fatalf("nothing left (%q): %d %v", q, status, body)
			}
		}
		for i, ev := range spam {
			if gone, _ := redacted(ev); !gone {
				t.Fatalf("spam %d not redacted", i)
			}
		}
		if gone, _ := redacted(aliceMsg); gone {
			t.Fatal("alice's own message redacted")
		}
		var member struct {
			Displayname string `json:"displayname"`
		}
		if err := alice.StateEvent(ctx, room, event.StateMember, bob.UserID.String(), &member); err != nil || member.Displayname != "spammy bob" {
			t.Fatalf("bob's member event: %+v %v, want it unredacted", member, err)
		}

		// A member may redact their own events without the redact level.
		send(carol, "carol's regret")
		resp, err = carol.UnstableRedactUserEvents(ctx, room, carol.UserID, nil)
		if err != nil || resp.RedactedEvents.Total != 1 || resp.IsMoreEvents {
			t.Fatalf("carol redacts her own events: %+v %v", resp, err)
		}

		// Hostile input: 400 for a bad user ID or limit, never 5xx.
		path := func(roomID, userID string) string {
			return "/_matrix/client/unstable/org.matrix.msc4194/rooms/" + url.PathEscape(roomID) + "/redact/user/" + url.PathEscape(userID)
		}
		for _, tc := range []struct{ what, path string }{
			{"not a user ID", path(room.String(), "bob")},
			{"NUL in the user ID", path(room.String(), "@b\x00b:"+s.Config.ServerName)},
			{"invalid UTF-8 in the user ID", path(room.String(), "@b\xffb:"+s.Config.ServerName)},
			{"limit past int64", path(room.String(), bob.UserID.String()) + "?limit=99999999999999999999999"},
			{"negative limit", path(room.String(), bob.UserID.String()) + "?limit=-1"},
			{"zero limit", path(room.String(), bob.UserID.String()) + "?limit=0"},
			{"limit not a number", path(room.String(), bob.UserID.String()) + "?limit=%00"},
		} {
			status, body := s.Do(t, http.MethodPost, tc.path, alice.AccessToken, map[string]any{})
			testserver.WantError(t, tc.what, status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		for _, tc := range []struct{ what, path string }{
			{"unknown room", path("!nosuchroom:"+s.Config.ServerName, bob.UserID.String())},
			{"NUL in the room ID", path("!a\x00b:"+s.Config.ServerName, bob.UserID.String())},
		} {
			status, body := s.Do(t, http.MethodPost, tc.path, alice.AccessToken, map[string]any{})
			if status >= 500 || status < 400 {
				t.Fatalf("%s: %d %v, want a 4xx", tc.what, status, body)
			}
		}
		status, body := s.Do(t, http.MethodPost, path(room.String(), bob.UserID.String()), alice.AccessToken, map[string]any{"reason": 5})
		testserver.WantError(t, "reason not a string", status, body, http.StatusBadRequest, "M_BAD_JSON")
	})
}
