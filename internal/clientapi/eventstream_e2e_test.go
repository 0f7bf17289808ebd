package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestEventStreamPeek: GET /events as matrix-js-sdk's peekPoll calls it
// after a room /initialSync: a user who is not in a world-readable room
// polls it with room_id and the initial sync's messages.end, and gets the
// events sent after it, the waiting poll woken by a new event (the peeker
// is no member the notifier would wake); end is the next from. A room
// the user may not read is 403, as in Synapse.
func TestEventStreamPeek(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Registration.AllowGuests = true }, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": "world_readable"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		send := func(text string) id.EventID {
			resp, err := alice.SendText(ctx, room.RoomID, text)
			if err != nil {
				t.Fatal(err)
			}
			return resp.EventID
		}
		send("before the peek")
		roomPath := "/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String())
		st, body := s.Do(t, http.MethodGet, roomPath+"/initialSync", bob.AccessToken, nil)
		testserver.WantStatus(t, "peek initialSync", st, body, http.StatusOK)
		from, _ := body["messages"].(map[string]any)["end"].(string)
		poll := func(from, extra string) (chunk []string, start, end string) {
			t.Helper()
			q := url.Values{"room_id": {room.RoomID.String()}, "from": {from}}
			st, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/events?"+q.Encode()+extra, bob.AccessToken, nil)
			testserver.WantStatus(t, "GET /events", st, body, http.StatusOK)
			for _, e := range body["chunk"].([]any) {
				chunk = append(chunk, e.(map[string]any)["event_id"].(string))
			}
			start, _ = body["start"].(string)
			end, _ = body["end"].(string)
			if start != from || end == "" {
				t.Fatalf("start %q end %q, want start %q and an end", start, end, from)
			}
			return chunk, start, end
		}

		// Nothing new: an empty chunk at once with timeout=0.
		if chunk, _, _ := poll(from, "&timeout=0"); len(chunk) != 0 {
			t.Fatalf("nothing new, got %v", chunk)
		}

		// A poll waiting (with a timeout no machine reaches) returns the
		// message sent meanwhile.
		got := make(chan []string, 1)
		go func() {
			q := url.Values{"room_id": {room.RoomID.String()}, "from": {from}, "timeout": {"600000"}}
			r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v3/events?"+q.Encode(), bob.AccessToken, nil)
			var ids []string
			if chunk, ok := r.JSON["chunk"].([]any); ok {
				for _, e := range chunk {
					ids = append(ids, e.(map[string]any)["event_id"].(string))
				}
			}
			got <- ids
		}()
		m1 := send("one")
		if ids := <-got; len(ids) != 1 || ids[0] != m1.String() {
			t.Fatalf("waiting poll got %v, want [%s]", ids, m1)
		}

		// limit pages through the stream; end leads to what follows.
		m2, m3 := send("two"), send("three")
		chunk, _, end := poll(from, "&limit=2&timeout=0")
		if len(chunk) != 2 || chunk[0] != m1.String() || chunk[1] != m2.String() {
			t.Fatalf("first page %v, want [%s %s]", chunk, m1, m2)
		}
		chunk, _, _ = poll(end, "&timeout=0")
		if len(chunk) != 1 || chunk[0] != m3.String() {
			t.Fatalf("second page %v, want [%s]", chunk, m3)
		}

		// Without room_id a member gets the events of her rooms.
		st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/events?timeout=0&from="+url.QueryEscape(end), alice.AccessToken, nil)
		testserver.WantStatus(t, "GET /events without room_id", st, body, http.StatusOK)
		if c := body["chunk"].([]any); len(c) != 1 || c[0].(map[string]any)["event_id"] != m3.String() {
			t.Fatalf("alice's stream %v, want [%s]", c, m3)
		}

		// A guest peeks too, but must name the room (Synapse).
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/register?kind=guest", "", map[string]any{})
		testserver.WantStatus(t, "guest registration", st, body, http.StatusOK)
		guest, _ := body["access_token"].(string)
		st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/events?timeout=0", guest, nil)
		testserver.WantError(t, "guest without room_id", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
		st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/events?timeout=0&from="+url.QueryEscape(from)+"&room_id="+url.QueryEscape(room.RoomID.String()), guest, nil)
		testserver.WantStatus(t, "guest peek", st, body, http.StatusOK)
		if c := body["chunk"].([]any); len(c) != 3 {
			t.Fatalf("guest peek: %d events, want 3 (one, two, three)", len(c))
		}

		// GET /events/{eventId}: the event, to whoever may see it.
		st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/events/"+url.PathEscape(m1.String()), bob.AccessToken, nil)
		testserver.WantStatus(t, "GET /events/{eventId}", st, body, http.StatusOK)
		if body["event_id"] != m1.String() || body["room_id"] != room.RoomID.String() {
			t.Fatalf("GET /events/{eventId}: %v", body)
		}

		// A room bob may not read, and bad parameters.
		private, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/events?timeout=0&room_id="+url.QueryEscape(private.RoomID.String()), bob.AccessToken, nil)
		testserver.WantError(t, "private room", st, body, http.StatusForbidden, "M_FORBIDDEN")
		secret, err := alice.SendText(ctx, private.RoomID, "secret")
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range []string{secret.EventID.String(), "$nosuchevent", "$" + strings.Repeat("x", 500)} {
			st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/events/"+url.PathEscape(ev), bob.AccessToken, nil)
			testserver.WantError(t, "hidden or missing event", st, body, http.StatusNotFound, "M_NOT_FOUND")
		}
		st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/events?timeout=0&room_id=%00%ff", bob.AccessToken, nil)
		if st < 400 || st >= 500 {
			t.Fatalf("hostile room_id: %d %v", st, body)
		}
		st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/events?timeout=soon", bob.AccessToken, nil)
		testserver.WantError(t, "bad timeout", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/events?timeout=0&from=garbage", bob.AccessToken, nil)
		if st != http.StatusBadRequest {
			t.Fatalf("bad from: %d %v", st, body)
		}
	})
}
