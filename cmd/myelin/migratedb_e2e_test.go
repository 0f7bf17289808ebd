//go:build goolm

package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/cryptoclient"
)

// A server grows from SQLite to PostgreSQL and back (store.CopyTo, what
// myelin migrate-db runs; it lives here because a test binary that links
// testserver gets pre-migrated databases, which the store's own
// migration tests must not):
// hs1 holds an encrypted conversation with a user of hs2, a pusher, a
// file and a message queued for hs2 while hs2 is down. After each copy
// hs1 runs on the copy: the queued message reaches hs2 and decrypts
// there, and both users go on decrypting each other, which needs every
// device key, Olm session counterpart and one-time key to have moved.
func TestCopySQLiteToPostgresAndBack(t *testing.T) {
	if !strings.Contains(strings.Join(testdb.Engines(), ","), "postgres") {
		t.Skip(testdb.PostgresEnv + " is not set")
	}
	ctx := context.Background()
	net := testserver.StartNetwork(t, "sqlite", 2, nil)
	hs1, hs2 := net.Servers[0], net.Servers[1]
	alice := cryptoclient.New(t, hs1.Register("alice", "pw-alice"))
	bob := cryptoclient.New(t, hs2.Register("bob", "pw-bob"))
	roomID := alice.EncryptedRoom(bob, "hs1.test")
	if got := bob.Decrypt(alice.SendText(roomID, "before the move")); got.Content.AsMessage().Body != "before the move" {
		t.Fatalf("bob decrypted %q", got.Content.AsMessage().Body)
	}
	token := alice.AccessToken
	code, body := hs1.Do(t, "POST", "/_matrix/client/v3/pushers/set", token, map[string]any{
		"kind": "http", "app_id": "org.example.app", "pushkey": "pk1", "app_display_name": "App",
		"device_display_name": "Phone", "lang": "en", "data": map[string]any{"url": "https://push.example.org/_matrix/push/v1/notify"},
	})
	testserver.WantStatus(t, "pushers/set", code, body, http.StatusOK)
	file := bytes.Repeat([]byte("moved media "), 100)
	r := testserver.Send(t, nil, "POST", hs1.URL+"/_matrix/media/v3/upload?filename=f.txt", token, file, "Content-Type", "text/plain")
	mxc, _ := r.JSON["content_uri"].(string)
	if r.Status != http.StatusOK || mxc == "" {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}

	// A message in a room without encryption, for search: SQLite's
	// full-text index is not copied (a virtual table) but rebuilt from
	// the copied rows, PostgreSQL's is a generated column.
	plain, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Client.SendText(ctx, plain.RoomID, "the zebracrossing is searchable"); err != nil {
		t.Fatal(err)
	}
	waitSearchable(t, hs1, token, "zebracrossing")
	// A message from bob notifies alice: her packed notification rows
	// move too.
	toAlice := bob.SendText(roomID, "to alice on SQLite")
	if got := alice.Decrypt(toAlice); got.Content.AsMessage().Body != "to alice on SQLite" {
		t.Fatalf("alice decrypted %q", got.Content.AsMessage().Body)
	}
	waitNotified(t, hs1, token, toAlice)

	hs2.Stop()
	queued := alice.SendText(roomID, "queued while hs2 is down")
	// The federation sender queues the event from the stream in the
	// background: wait for its row before the copy.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, err := hs1.Sender().Pending(ctx, "hs2.test"); err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hs1 never queued the message for hs2")
		}
	}
	hs1.Stop()

	// SQLite to PostgreSQL.
	sqliteURL := hs1.Config.DatabaseURL()
	pgURL := testdb.NewURL(t, "postgres")
	tables := copyDB(t, ctx, sqliteURL, pgURL)
	for _, want := range []string{"events", "e2e_device_keys", "e2e_one_time_keys", "pushers", "media", "federation_queue_pdus", "access_tokens", "state_snapshot_entries", "push_user_batches"} {
		if tables[want] == 0 {
			t.Errorf("table %s: no rows copied (copied: %v)", want, tables)
		}
	}
	hs1.Config.Database.URL = pgURL
	hs1.Restart()
	hs2.Restart()
	hs1.Repoint(alice.Client)
	hs2.Repoint(bob.Client)
	if got := bob.Decrypt(queued); got.Content.AsMessage().Body != "queued while hs2 is down" {
		t.Fatalf("bob decrypted %q", got.Content.AsMessage().Body)
	}
	if got := alice.Decrypt(bob.SendText(roomID, "to alice on PostgreSQL")); got.Content.AsMessage().Body != "to alice on PostgreSQL" {
		t.Fatalf("alice decrypted %q", got.Content.AsMessage().Body)
	}
	code, body = hs1.Do(t, "GET", "/_matrix/client/v3/pushers", token, nil)
	if code != http.StatusOK || !strings.Contains(fmt.Sprint(body), "pk1") {
		t.Fatalf("pushers on PostgreSQL: %d %v", code, body)
	}
	dl := testserver.Send(t, nil, "GET", hs1.URL+"/_matrix/client/v1/media/download/hs1.test/"+strings.TrimPrefix(mxc, "mxc://hs1.test/"), token, nil)
	if dl.Status != http.StatusOK || !bytes.Equal(dl.Raw, file) {
		t.Fatalf("media on PostgreSQL: %d, %d bytes", dl.Status, len(dl.Raw))
	}
	waitSearchable(t, hs1, token, "zebracrossing")
	waitNotified(t, hs1, token, toAlice)

	// And back to a new SQLite file.
	hs1.Stop()
	back := filepath.Join(t.TempDir(), "back.db")
	copyDB(t, ctx, pgURL, back)
	hs1.Config.Database.URL = back
	hs1.Restart()
	hs1.Repoint(alice.Client)
	if got := bob.Decrypt(alice.SendText(roomID, "back on SQLite")); got.Content.AsMessage().Body != "back on SQLite" {
		t.Fatalf("bob decrypted %q", got.Content.AsMessage().Body)
	}
	waitSearchable(t, hs1, token, "zebracrossing")
	waitNotified(t, hs1, token, toAlice)
}

// waitNotified waits until GET /notifications lists an event (the push
// worker runs beside the event stream).
func waitNotified(t *testing.T, s *testserver.Server, token string, eventID id.EventID) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := s.Do(t, "GET", "/_matrix/client/v3/notifications", token, nil)
		list, _ := body["notifications"].([]any)
		for _, n := range list {
			ev, _ := n.(map[string]any)["event"].(map[string]any)
			if code == http.StatusOK && ev["event_id"] == string(eventID) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifications on %s: %d %v", s.Config.Database.URL, code, body)
		}
	}
}

// waitSearchable waits until a message search for term finds a result
// (the indexer runs beside the event stream).
func waitSearchable(t *testing.T, s *testserver.Server, token, term string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := s.Do(t, "POST", "/_matrix/client/v3/search", token, map[string]any{
			"search_categories": map[string]any{"room_events": map[string]any{"search_term": term}}})
		cats, _ := body["search_categories"].(map[string]any)
		events, _ := cats["room_events"].(map[string]any)
		if results, _ := events["results"].([]any); code == http.StatusOK && len(results) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("search for %q on %s: %d %v", term, s.Config.Database.URL, code, body)
		}
	}
}

// copyDB copies from into the new database to, and returns each table's
// row count.
func copyDB(t *testing.T, ctx context.Context, from, to string) map[string]int64 {
	t.Helper()
	src, err := store.Open(ctx, from, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := store.Open(ctx, to, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	copied, err := src.CopyTo(ctx, dst, nil)
	if err != nil {
		t.Fatalf("copy %s: %v", to, err)
	}
	out := map[string]int64{}
	for _, c := range copied {
		out[c.Table] = c.Rows
	}
	// A second copy into the now populated target is refused.
	if _, err := src.CopyTo(ctx, dst, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a copy into a populated database: %v", err)
	}
	return out
}
