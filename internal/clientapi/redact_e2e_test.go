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

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestRedactionThroughSend: an m.room.redaction sent with PUT
// /rooms/{roomId}/send (spec v1.18, MSC4169) acts as /redact does: it
// redacts the event content.redacts names, under /redact's checks (the
// sender or the redact power level, a visible target unless the sender
// has the redact power level), and a retried transaction ID answers the
// first redaction.
func TestRedactionThroughSend(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		send := func(c *mautrix.Client, text string) id.EventID {
			resp, err := c.SendText(ctx, room.RoomID, text)
			if err != nil {
				t.Fatal(err)
			}
			return resp.EventID
		}
		aliceMsg, bobMsg := send(alice, "alice's"), send(bob, "bob's spam")
		redact := func(c *mautrix.Client, txn string, content map[string]any) (*mautrix.RespSendEvent, error) {
			return c.SendMessageEvent(ctx, room.RoomID, event.EventRedaction, content, mautrix.ReqSendEvent{TransactionID: txn})
		}

		// Bob may not redact Alice's message: 403 as from /redact, and no
		// redaction event enters the room.
		_, err = redact(bob, "b1", map[string]any{"redacts": aliceMsg})
		testserver.WantHTTPError(t, "bob redacts alice's message", err, http.StatusForbidden, "M_FORBIDDEN")
		// A target that is missing or not an event of the room is 404,
		// unless the sender has the redact power level (issue 14 item 4:
		// an event this server never received may be redacted, as in
		// Synapse); content without redacts (or not a string) is 400.
		_, err = redact(bob, "b0", map[string]any{"redacts": "$nosuchevent"})
		testserver.WantHTTPError(t, "unknown target, without the redact level", err, http.StatusNotFound, "M_NOT_FOUND")
		unknownRed, err := redact(alice, "a-unknown", map[string]any{"redacts": "$nosuchevent"})
		if err != nil {
			t.Fatalf("alice redacts an event this server never received: %v", err)
		}
		_, err = redact(alice, "a0", map[string]any{"redacts": "$" + strings.Repeat("x", 100000)})
		testserver.WantHTTPError(t, "huge target", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = redact(alice, "a0", map[string]any{"redacts": "$\x00"})
		testserver.WantHTTPError(t, "NUL in target", err, http.StatusBadRequest, "M_INVALID_PARAM")
		for _, c := range []map[string]any{{}, {"redacts": 5}, {"redacts": nil}} {
			_, err = redact(alice, "a0", c)
			testserver.WantHTTPError(t, "redaction without redacts", err, http.StatusBadRequest, "M_BAD_JSON")
		}

		// Alice, the room's creator, redacts Bob's message.
		first, err := redact(alice, "a1", map[string]any{"redacts": bobMsg, "reason": "spam"})
		if err != nil {
			t.Fatalf("alice redacts bob's message through /send: %v", err)
		}
		again, err := redact(alice, "a1", map[string]any{"redacts": bobMsg, "reason": "spam"})
		if err != nil || again.EventID != first.EventID {
			t.Fatalf("retried transaction: %v %v, want %s", again, err, first.EventID)
		}
		var got struct {
			Content  map[string]any `json:"content"`
			Unsigned map[string]any `json:"unsigned"`
		}
		st, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID.String())+"/event/"+url.PathEscape(bobMsg.String()), bob.AccessToken, nil)
		testserver.WantStatus(t, "redacted event", st, body, http.StatusOK)
		got.Content, _ = body["content"].(map[string]any)
		got.Unsigned, _ = body["unsigned"].(map[string]any)
		if len(got.Content) != 0 {
			t.Fatalf("content still served after the redaction: %v", got.Content)
		}
		rb, _ := got.Unsigned["redacted_because"].(map[string]any)
		if rb == nil || rb["event_id"] != first.EventID.String() || rb["content"].(map[string]any)["redacts"] != bobMsg.String() {
			t.Fatalf("redacted_because = %v, want %s redacting %s", got.Unsigned["redacted_because"], first.EventID, bobMsg)
		}

		// Only the two accepted redactions are in the room (newest
		// first): the refused ones and the retry added none.
		msgs, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, &mautrix.FilterPart{Types: []event.Type{event.EventRedaction}}, 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs.Chunk) != 2 || msgs.Chunk[0].ID != first.EventID || msgs.Chunk[1].ID != unknownRed.EventID {
			ids := []id.EventID{}
			for _, e := range msgs.Chunk {
				ids = append(ids, e.ID)
			}
			t.Fatalf("redactions in the room: %v, want only %s and %s", ids, first.EventID, unknownRed.EventID)
		}
	})
}
