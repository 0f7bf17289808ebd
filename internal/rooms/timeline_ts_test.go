package rooms

import (
	"context"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestEventNearEqualTimestamps: events sent in the same millisecond are
// ordered by stream position, as Synapse breaks origin_server_ts ties
// (by depth, then stream ordering): forwards from their time the first
// sent, backwards the last, both for a client and for another server.
func TestEventNearEqualTimestamps(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test"})
		if err != nil {
			t.Fatal(err)
		}
		frozen := time.Now().Add(time.Hour)
		e.now = func() time.Time { return frozen }
		var ids []string
		for _, body := range []string{"one", "two", "three"} {
			ev, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.message", Content: map[string]string{"body": body}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.EventID())
		}
		ts, upper := frozen.UnixMilli(), e.Stream().Current()
		for _, backwards := range []bool{false, true} {
			want := ids[0]
			if backwards {
				want = ids[2]
			}
			ev, err := e.EventNear(ctx, roomID, "@alice:a.test", ts, upper, backwards)
			if err != nil || ev == nil || ev.EventID() != want {
				t.Fatalf("client, backwards %v: %v %v, want %s", backwards, ev, err, want)
			}
			got, _, ok, err := e.FirstEventNear(ctx, roomID, ts, upper, backwards)
			if err != nil || !ok || got != want {
				t.Fatalf("server, backwards %v: %s %v, want %s", backwards, got, err, want)
			}
		}
	})
}
