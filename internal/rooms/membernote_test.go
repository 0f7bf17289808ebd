package rooms

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// commitWatch is the store with a look at the engine right after each
// write commits, before the engine hears that it did.
type commitWatch struct {
	*store.DB
	committed func(nes []store.NewEvent)
}

func (c *commitWatch) PersistEvents(ctx context.Context, nes []store.NewEvent) ([]store.Persisted, error) {
	res, err := c.DB.PersistEvents(ctx, nes)
	if err == nil {
		c.committed(nes)
	}
	return res, err
}

func (c *commitWatch) PersistEvent(ctx context.Context, ne store.NewEvent) (int64, int64, error) {
	nid, after, err := c.DB.PersistEvent(ctx, ne)
	if err == nil {
		c.committed([]store.NewEvent{ne})
	}
	return nid, after, err
}

// TestMembershipNotedBeforeCommit: from its commit on, a membership
// change shows in the room's current state, so the engine must report it
// (MembershipsUnchangedSince) by then. The push worker reads members
// from the current state and asks the engine whether they changed after
// the event it evaluates; noted only once the writer had answered, a
// join could be read and yet reported absent, and bob was notified of
// the room's creation events (push's TestPostcontentRules).
func TestMembershipNotedBeforeCommit(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dbURL, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		stream, err := OpenStream(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, priv, _ := ed25519.GenerateKey(nil)
		var e *Engine
		var mu sync.Mutex
		var unnoted []string
		watch := &commitWatch{DB: db, committed: func(nes []store.NewEvent) {
			for _, ne := range nes {
				if ne.Row.Membership != nil && ne.Row.StreamPos != 0 && e.MembershipsUnchangedSince(ne.Row.StreamPos-1) {
					mu.Lock()
					unnoted = append(unnoted, fmt.Sprintf("%s of %s at %d", *ne.Row.Membership, *ne.Row.StateKey, ne.Row.StreamPos))
					mu.Unlock()
				}
			}
		}}
		e = New(watch, stream, bus.New(), Options{ServerName: "a.test", KeyID: "ed25519:a", PrivateKey: priv, DefaultVersion: "10"})
		room, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.SetMembership(ctx, MembershipRequest{Sender: "@bob:a.test", RoomID: room, Target: "@bob:a.test", Membership: "join"}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(unnoted) > 0 {
			t.Fatalf("memberships committed before the engine noted them: %v", unnoted)
		}
	})
}
