package clientapi_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestMessagesEndWithFilter: a /messages page filtered by contains_url
// has an end token when it has events, even when it reaches the start of
// the room (as Synapse answers); the page after it is empty and has none.
// An unfiltered page at the start has none (the spec's rule).
func TestMessagesEndWithFilter(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		image, err := alice.SendMessageEvent(ctx, roomID, event.EventMessage, map[string]any{
			"msgtype": "m.image", "body": "cat.png", "url": "mxc://hs1.test/cat"})
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{"one", "two", "three"} {
			if _, err := alice.SendText(ctx, roomID, text); err != nil {
				t.Fatal(err)
			}
		}
		withURL := true
		resp, err := alice.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, &mautrix.FilterPart{ContainsURL: &withURL}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Chunk) != 1 || resp.Chunk[0].ID != image.EventID {
			t.Fatalf("contains_url page: %v", resp.Chunk)
		}
		if resp.End == "" {
			t.Fatalf("a contains_url page with events has no end")
		}
		next, err := alice.Messages(ctx, roomID, resp.End, "", mautrix.DirectionBackward, &mautrix.FilterPart{ContainsURL: &withURL}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(next.Chunk) != 0 || next.End != "" {
			t.Fatalf("the page after the last: %d events, end %q", len(next.Chunk), next.End)
		}
		// Unfiltered, a page that reaches the room's start has no end,
		// as the spec says.
		all, err := alice.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil || len(all.Chunk) < 4 || all.End != "" {
			t.Fatalf("unfiltered page to the start: %d events, end %q, %v", len(all.Chunk), all.End, err)
		}
	})
}
