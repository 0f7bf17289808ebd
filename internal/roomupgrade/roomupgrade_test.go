package roomupgrade_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/aliases"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/roomupgrade"
	"github.com/myelin-chat/myelin/internal/testdb"
)

const (
	alice   = "@alice:hs1.test"
	bob     = "@bob:hs1.test"
	mallory = "@mallory:hs1.test"
)

type fixture struct {
	engine  *rooms.Engine
	aliases *aliases.Service
	dir     *directory.Service
	svc     *roomupgrade.Service
}

func newFixture(t *testing.T, dbURL string) *fixture {
	t.Helper()
	env := roomtest.New(t, dbURL, "10")
	db, engine := env.DB, env.Engine
	dir := directory.New(engine, db)
	al := aliases.New("hs1.test", db, engine, dir)
	profile := func(_ context.Context, localpart string) map[string]any {
		return map[string]any{"displayname": localpart}
	}
	return &fixture{engine: engine, aliases: al, dir: dir, svc: roomupgrade.New(roomupgrade.Options{
		ServerName: "hs1.test", Rooms: engine, Aliases: al, Directory: dir, Profile: profile,
	})}
}

func (f *fixture) send(t *testing.T, roomID, sender, typ, key, content string) {
	t.Helper()
	if _, err := f.engine.Send(context.Background(), rooms.SendRequest{RoomID: roomID, Sender: sender, Type: typ, StateKey: &key,
		Content: json.RawMessage(content)}); err != nil {
		t.Fatalf("send %s: %v", typ, err)
	}
}

func (f *fixture) state(t *testing.T, roomID, typ, key string) *rooms.Event {
	t.Helper()
	ctx := context.Background()
	st, err := f.engine.CurrentState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := f.engine.StateEvent(ctx, st, typ, key)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if e, ok := mxerr.As(err); !ok || e.Code != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

// TestUpgrade follows one upgrade: only a member with the tombstone's
// power level may upgrade, to a known version; the replacement names its
// predecessor, keeps the transferable state, bans, local canonical
// aliases and the directory entry; the old room is tombstoned, keeps its
// remote aliases and is restricted.
func TestUpgrade(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL)
		name := "Lounge"
		oldID, err := f.engine.CreateRoom(ctx, rooms.CreateRequest{Creator: alice, Preset: "public_chat", Name: &name})
		if err != nil {
			t.Fatal(err)
		}
		f.send(t, oldID, bob, spec.MRoomMember, bob, `{"membership":"join"}`)
		f.send(t, oldID, mallory, spec.MRoomMember, mallory, `{"membership":"join"}`)
		f.send(t, oldID, alice, spec.MRoomMember, mallory, `{"membership":"ban","reason":"spam"}`)
		if err := f.aliases.Create(ctx, alice, false, "#lounge:hs1.test", oldID); err != nil {
			t.Fatal(err)
		}
		f.send(t, oldID, alice, "m.room.canonical_alias", "", `{"alias":"#lounge:hs1.test","alt_aliases":["#far:hs2.test"]}`)
		if err := f.dir.SetPublished(ctx, oldID, true); err != nil {
			t.Fatal(err)
		}
		last := f.state(t, oldID, "m.room.canonical_alias", "").EventID()

		_, err = f.svc.Upgrade(ctx, roomupgrade.Upgrader{UserID: bob, Localpart: "bob"}, oldID, "11", nil)
		wantCode(t, "member without power", err, "M_FORBIDDEN")
		_, err = f.svc.Upgrade(ctx, roomupgrade.Upgrader{UserID: "@carol:hs1.test", Localpart: "carol"}, oldID, "11", nil)
		wantCode(t, "non-member", err, "M_FORBIDDEN")
		_, err = f.svc.Upgrade(ctx, roomupgrade.Upgrader{UserID: alice, Localpart: "alice"}, oldID, "999", nil)
		wantCode(t, "unknown version", err, "M_UNSUPPORTED_ROOM_VERSION")

		newID, err := f.svc.Upgrade(ctx, roomupgrade.Upgrader{UserID: alice, Localpart: "alice"}, oldID, "11", nil)
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		var create struct {
			Predecessor struct {
				RoomID  string `json:"room_id"`
				EventID string `json:"event_id"`
			} `json:"predecessor"`
		}
		if err := json.Unmarshal(f.state(t, newID, spec.MRoomCreate, "").Content(), &create); err != nil ||
			create.Predecessor.RoomID != oldID || create.Predecessor.EventID != last {
			t.Fatalf("predecessor: %+v %v (want %s)", create, err, last)
		}
		if ev := f.state(t, newID, "m.room.name", ""); ev == nil || rooms.ContentString(ev.Content(), "name") != name {
			t.Fatal("name not carried over")
		}
		if ev := f.state(t, newID, spec.MRoomMember, mallory); ev == nil {
			t.Fatal("ban not carried over")
		} else if m, _ := ev.Membership(); m != spec.Ban {
			t.Fatalf("mallory in new room: %s", m)
		}
		if ev := f.state(t, newID, "m.room.canonical_alias", ""); ev == nil || string(ev.Content()) != `{"alias":"#lounge:hs1.test"}` {
			t.Fatalf("new canonical alias: %v", ev)
		}
		if ev := f.state(t, oldID, "m.room.canonical_alias", ""); string(ev.Content()) != `{"alt_aliases":["#far:hs2.test"]}` {
			t.Fatalf("old canonical alias: %s", ev.Content())
		}
		if got, _, err := f.aliases.Resolve(ctx, "#lounge:hs1.test"); err != nil || got != newID {
			t.Fatalf("alias after upgrade: %s %v", got, err)
		}
		if ev := f.state(t, oldID, "m.room.tombstone", ""); ev == nil || rooms.ContentString(ev.Content(), "replacement_room") != newID {
			t.Fatal("no tombstone")
		}
		for id, want := range map[string]bool{oldID: false, newID: true} {
			if p, err := f.dir.Published(ctx, id); err != nil || p != want {
				t.Fatalf("published %s: %v %v", id, p, err)
			}
		}
		pl, err := f.state(t, oldID, spec.MRoomPowerLevels, "").PowerLevels()
		if err != nil || pl.EventsDefault < 50 || pl.Invite < 50 {
			t.Fatalf("old room not restricted: %+v %v", pl, err)
		}
		if ev := f.state(t, newID, spec.MRoomMember, alice); ev == nil || rooms.ContentString(ev.Content(), "displayname") != "alice" {
			t.Fatal("upgrader's profile not in the new room")
		}
	})
}
