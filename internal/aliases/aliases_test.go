package aliases_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/aliases"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

const (
	alice = "@alice:hs1.test"
	bob   = "@bob:hs1.test"
)

type fixture struct {
	db     *store.DB
	engine *rooms.Engine
	dir    *directory.Service
	svc    *aliases.Service
}

func newFixture(t *testing.T, dbURL string) *fixture {
	t.Helper()
	env := roomtest.New(t, dbURL, "12")
	db, engine := env.DB, env.Engine
	dir := directory.New(engine, db)
	return &fixture{db: db, engine: engine, dir: dir, svc: aliases.New("hs1.test", db, engine, dir)}
}

func (f *fixture) room(t *testing.T) string {
	t.Helper()
	id, err := f.engine.CreateRoom(context.Background(), rooms.CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) join(t *testing.T, roomID, userID string) {
	t.Helper()
	key := userID
	if _, err := f.engine.Send(context.Background(), rooms.SendRequest{RoomID: roomID, Sender: userID, Type: "m.room.member", StateKey: &key,
		Content: json.RawMessage(`{"membership":"join"}`)}); err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if e, ok := mxerr.As(err); !ok || e.Code != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

// TestCreateResolveDelete: only members create aliases, an alias exists
// once, resolving names the servers, and only the creator or a moderator
// deletes; deleting drops the alias from the canonical alias event.
func TestCreateResolveDelete(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL)
		roomID := f.room(t)

		wantCode(t, "non-member", f.svc.Create(ctx, bob, false, "#bob:hs1.test", roomID), "M_FORBIDDEN")
		if err := f.svc.Create(ctx, bob, true, "#admin:hs1.test", roomID); err != nil {
			t.Fatalf("server admin: %v", err)
		}
		wantCode(t, "remote alias", f.svc.Create(ctx, alice, false, "#x:hs2.test", roomID), "M_INVALID_PARAM")
		wantCode(t, "bad alias", f.svc.Create(ctx, alice, false, "#a b:hs1.test", roomID), "M_INVALID_PARAM")
		f.join(t, roomID, bob)
		if err := f.svc.Create(ctx, bob, false, "#bob:hs1.test", roomID); err != nil {
			t.Fatalf("member: %v", err)
		}
		err := f.svc.Create(ctx, alice, false, "#bob:hs1.test", roomID)
		if e, ok := mxerr.As(err); !ok || e.Status != http.StatusConflict {
			t.Fatalf("second create: %v", err)
		}

		got, servers, err := f.svc.Lookup(ctx, "#bob:hs1.test")
		if err != nil || got != roomID || !slices.Equal(servers, []string{"hs1.test"}) {
			t.Fatalf("lookup: %s %v %v", got, servers, err)
		}
		_, _, err = f.svc.Lookup(ctx, "#none:hs1.test")
		wantCode(t, "unknown alias", err, "M_NOT_FOUND")

		// bob (power 0) may not delete alice's alias; alice (creator of
		// the room, power 100) may delete bob's.
		if err := f.svc.Create(ctx, alice, false, "#alice:hs1.test", roomID); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "bob deletes alice's", f.svc.Delete(ctx, bob, false, "#alice:hs1.test"), "M_FORBIDDEN")
		key := ""
		if _, err := f.engine.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.canonical_alias", StateKey: &key,
			Content: json.RawMessage(`{"alias":"#bob:hs1.test","alt_aliases":["#alice:hs1.test"]}`)}); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Delete(ctx, alice, false, "#bob:hs1.test"); err != nil {
			t.Fatalf("moderator deletes: %v", err)
		}
		state, _ := f.engine.CurrentState(ctx, roomID)
		ev, err := f.engine.StateEvent(ctx, state, "m.room.canonical_alias", "")
		if err != nil || ev == nil || string(ev.Content()) != `{"alt_aliases":["#alice:hs1.test"]}` {
			t.Fatalf("canonical alias after delete: %v", err)
		}
		wantCode(t, "delete twice", f.svc.Delete(ctx, alice, false, "#bob:hs1.test"), "M_NOT_FOUND")

		list, err := f.svc.ForRoom(ctx, roomID)
		if err != nil || !slices.Equal(list, []string{"#admin:hs1.test", "#alice:hs1.test"}) {
			t.Fatalf("aliases: %v %v", list, err)
		}
		other := f.room(t)
		if err := f.svc.Move(ctx, roomID, other); err != nil {
			t.Fatal(err)
		}
		if got, _, err := f.svc.Resolve(ctx, "#alice:hs1.test"); err != nil || got != other {
			t.Fatalf("after move: %s %v", got, err)
		}
	})
}

// TestNewRoomAndCanonical: a new room's alias must be free and well
// formed, and a canonical alias event names only local aliases of the
// room (other servers' only for shape).
func TestNewRoomAndCanonical(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL)
		roomID, other := f.room(t), f.room(t)
		if a, err := f.svc.ReserveForNewRoom(ctx, ""); err != nil || a != "" {
			t.Fatalf("no name: %q %v", a, err)
		}
		_, err := f.svc.ReserveForNewRoom(ctx, "a:b")
		wantCode(t, "bad name", err, "M_INVALID_PARAM")
		a, err := f.svc.ReserveForNewRoom(ctx, "lounge")
		if err != nil || a != "#lounge:hs1.test" {
			t.Fatalf("free name: %q %v", a, err)
		}
		if err := f.svc.AddForNewRoom(ctx, a, roomID, alice); err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.ReserveForNewRoom(ctx, "lounge")
		wantCode(t, "taken name", err, "M_ROOM_IN_USE")

		check := func(roomID, content string) error {
			var c map[string]json.RawMessage
			if err := json.Unmarshal([]byte(content), &c); err != nil {
				t.Fatal(err)
			}
			return f.svc.CheckCanonical(ctx, roomID, c)
		}
		for _, ok := range []string{`{}`, `{"alias":"#lounge:hs1.test"}`, `{"alt_aliases":["#far:hs2.test"]}`} {
			if err := check(roomID, ok); err != nil {
				t.Errorf("%s: %v", ok, err)
			}
		}
		wantCode(t, "other room's alias", check(other, `{"alias":"#lounge:hs1.test"}`), "M_BAD_ALIAS")
		wantCode(t, "unknown alias", check(roomID, `{"alt_aliases":["#none:hs1.test"]}`), "M_BAD_ALIAS")
		wantCode(t, "not an alias", check(roomID, `{"alias":"lounge"}`), "M_INVALID_PARAM")
		// The canonical alias check used to take any "#...:..." from
		// another server; like Synapse it now refuses a bad server name.
		wantCode(t, "bad server name", check(roomID, `{"alt_aliases":["#far:bad server"]}`), "M_INVALID_PARAM")
		if err := check(roomID, `{"alt_aliases":["#far:hs2.test:8448"]}`); err != nil {
			t.Errorf("server name with port: %v", err)
		}
		wantCode(t, "alias not a string", check(roomID, `{"alias":1}`), "M_BAD_JSON")
	})
}
