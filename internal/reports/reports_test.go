package reports_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/reports"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/testdb"
)

const (
	alice = "@alice:hs1.test"
	bob   = "@bob:hs1.test"
)

// users knows only alice.
type users struct{}

func (users) User(_ context.Context, localpart string) (accounts.User, error) {
	if localpart == "alice" {
		return accounts.User{Localpart: "alice", UserID: alice}, nil
	}
	return accounts.User{}, accounts.ErrNoSuchUser
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if e, ok := mxerr.As(err); !ok || e.Code != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

// TestReports: an event is reportable only by a joined member; reports
// of events the member cannot see, of unknown rooms and of unknown local
// users are answered alike and not stored; what is accepted is stored
// for the admins.
func TestReports(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		env := roomtest.New(t, dbURL, "12")
		db, engine := env.DB, env.Engine
		s := reports.New(reports.Options{ServerName: "hs1.test", Store: db, Rooms: engine, Users: users{}})
		roomID, err := engine.CreateRoom(ctx, rooms.CreateRequest{Creator: alice, Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := engine.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.message", Content: json.RawMessage(`{"body":"x"}`)})
		if err != nil {
			t.Fatal(err)
		}

		wantCode(t, "non-member reports event", s.Event(ctx, bob, roomID, ev.EventID(), "spam"), "M_NOT_FOUND")
		wantCode(t, "non-member reports in an unknown room", s.Event(ctx, bob, "!nope:hs1.test", ev.EventID(), "spam"), "M_NOT_FOUND")
		if err := s.Event(ctx, alice, roomID, "$nope", "spam"); err != nil {
			t.Fatalf("unknown event: %v", err)
		}
		long := strings.Repeat("é", reports.MaxReasonRunes+1)
		wantCode(t, "reason too long", s.Event(ctx, alice, roomID, ev.EventID(), long), "M_BAD_JSON")
		wantCode(t, "room reason too long", s.Room(ctx, alice, roomID, long), "M_BAD_JSON")
		if err := s.Event(ctx, alice, roomID, ev.EventID(), strings.Repeat("é", reports.MaxReasonRunes)); err != nil {
			t.Fatalf("member reports event: %v", err)
		}
		if err := s.Room(ctx, bob, "!nope:hs1.test", "bad"); err != nil {
			t.Fatalf("unknown room: %v", err)
		}
		if err := s.Room(ctx, bob, roomID, "bad"); err != nil {
			t.Fatalf("report room: %v", err)
		}
		if err := s.User(ctx, alice, "@nobody:hs1.test", "x"); err != nil {
			t.Fatalf("unknown local user: %v", err)
		}
		wantCode(t, "invalid user ID", s.User(ctx, alice, "nobody", "x"), "M_INVALID_PARAM")
		for _, target := range []string{alice, "@someone:hs2.test"} {
			if err := s.User(ctx, bob, target, "x"); err != nil {
				t.Fatalf("report %s: %v", target, err)
			}
		}
		got, err := db.Reports(ctx)
		if err != nil || len(got) != 4 {
			t.Fatalf("stored reports: %d %v", len(got), err)
		}

		// The admin side: list, describe, get, delete.
		name := "Lounge"
		empty := ""
		if _, err := engine.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.name", StateKey: &empty,
			Content: map[string]string{"name": name}}); err != nil {
			t.Fatal(err)
		}
		adm := reports.NewAdmin(db, engine)
		list, total, err := adm.List(ctx, reports.Query{Kind: reports.KindEvent, Limit: 10})
		if err != nil || total != 1 || len(list) != 1 || list[0].EventID != ev.EventID() || list[0].Score != nil {
			t.Fatalf("event reports: %+v %d %v", list, total, err)
		}
		d, err := adm.Describe(ctx, list[0])
		if err != nil || d.Event == nil || d.Event.EventID() != ev.EventID() || d.Name != name || d.CanonicalAlias != "" {
			t.Fatalf("describe: %+v %v", d, err)
		}
		gone, err := adm.Describe(ctx, reports.Report{RoomID: "!gone:hs1.test", EventID: "$gone"})
		if err != nil || gone.Event != nil || gone.Name != "" {
			t.Fatalf("describe a report of a purged event: %+v %v", gone, err)
		}
		if rep, err := adm.Get(ctx, list[0].ID, reports.KindEvent); err != nil || rep.EventID != ev.EventID() {
			t.Fatalf("get: %+v %v", rep, err)
		}
		_, err = adm.Get(ctx, list[0].ID, reports.KindRoom)
		wantCode(t, "get an event report as a room report", err, "M_NOT_FOUND")
		wantCode(t, "delete an event report as a user report", adm.Delete(ctx, list[0].ID, reports.KindUser), "M_NOT_FOUND")
		if err := adm.Delete(ctx, list[0].ID, reports.KindEvent); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "delete twice", adm.Delete(ctx, list[0].ID, reports.KindEvent), "M_NOT_FOUND")
		_, err = adm.Get(ctx, list[0].ID, "")
		wantCode(t, "get deleted", err, "M_NOT_FOUND")
	})
}
