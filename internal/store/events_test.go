package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestPersistEventsLikeOneByOne stores the same events, of two rooms
// and of every kind PersistEvent handles, one by one in one database and
// as one batch in another: heads, extremities, current state and rows
// must come out the same.
func TestPersistEventsLikeOneByOne(t *testing.T) {
	for _, engine := range testdb.Engines() {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			one, batch := open(t, testdb.NewURL(t, engine)), open(t, testdb.NewURL(t, engine))
			nes := batchEvents()
			for _, ne := range nes {
				if _, _, err := one.PersistEvent(ctx, ne); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := batch.PersistEvents(ctx, nes); err != nil {
				t.Fatal(err)
			}
			for _, room := range []string{"!a:t", "!b:t"} {
				h1, err1 := one.LoadRoomHead(ctx, room)
				h2, err2 := batch.LoadRoomHead(ctx, room)
				if err1 != nil || err2 != nil || !reflect.DeepEqual(h1, h2) {
					t.Errorf("%s: head one by one %+v (%v), batched %+v (%v)", room, h1, err1, h2, err2)
				}
			}
			m1, err1 := one.MembershipsOf(ctx, "@u:t")
			m2, err2 := batch.MembershipsOf(ctx, "@u:t")
			if err1 != nil || err2 != nil || !reflect.DeepEqual(m1, m2) || len(m1) != 2 {
				t.Errorf("memberships one by one %+v (%v), batched %+v (%v)", m1, err1, m2, err2)
			}
			var ids []string
			for _, ne := range nes {
				ids = append(ids, ne.Row.EventID)
			}
			r1, err1 := one.EventsByID(ctx, ids)
			r2, err2 := batch.EventsByID(ctx, ids)
			if err1 != nil || err2 != nil || len(r1) != len(nes) || !reflect.DeepEqual(byID(r1), byID(r2)) {
				t.Errorf("rows differ: %d one by one (%v), %d batched (%v)", len(r1), err1, len(r2), err2)
			}
		})
	}
}

func byID(rows []store.EventRow) map[string]store.EventRow {
	m := map[string]store.EventRow{}
	for _, r := range rows {
		m[r.EventID] = r
	}
	return m
}

// batchEvents are two rooms' create and member events and messages,
// interleaved, with one message that is not current (a fork) and one
// soft-failed.
func batchEvents() []store.NewEvent {
	var nes []store.NewEvent
	depth := map[string]int64{}
	pos := int64(0)
	add := func(room, typ string, stateKey *string, ne store.NewEvent) {
		pos++
		depth[room]++
		id := fmt.Sprintf("$%d", pos)
		ne.Row = store.EventRow{EventID: id, RoomID: room, Type: typ, StateKey: stateKey, Sender: "@u:t", Depth: depth[room],
			OriginTS: pos, StreamPos: pos, Status: ne.Row.Status, StateBefore: 1, StateAfter: 1, JSON: `{"type":"` + typ + `"}`}
		if ne.Extremities != nil {
			ne.Extremities, ne.Depth = []string{id}, depth[room]
		}
		nes = append(nes, ne)
	}
	empty, user := "", "@u:t"
	join := "join"
	for _, room := range []string{"!a:t", "!b:t"} {
		add(room, "m.room.create", &empty, store.NewEvent{RoomVersion: "10", Extremities: []string{},
			Snapshot: &store.SnapshotDelta{Changes: map[roommodel.StateKey]int64{{Type: "m.room.create"}: store.ThisEvent}}, HeadSnapshot: store.ThisEvent,
			CurrentState: map[roommodel.StateKey]int64{{Type: "m.room.create"}: store.ThisEvent}})
	}
	current := store.NewEvent{Extremities: []string{}, HeadSnapshot: 1}
	add("!a:t", "m.room.message", nil, current)
	add("!b:t", "m.room.message", nil, current)
	add("!a:t", "m.room.member", &user, store.NewEvent{Extremities: []string{},
		Snapshot:     &store.SnapshotDelta{Parent: 1, ChainLen: 1, Changes: map[roommodel.StateKey]int64{{Type: "m.room.member", StateKey: user}: store.ThisEvent}},
		HeadSnapshot: store.ThisEvent, CurrentState: map[roommodel.StateKey]int64{{Type: "m.room.member", StateKey: user}: store.ThisEvent},
		Memberships: map[string]string{user: join}})
	add("!a:t", "m.room.message", nil, current)
	add("!a:t", "m.room.message", nil, store.NewEvent{})                                                  // not current: head untouched
	add("!b:t", "m.room.message", nil, store.NewEvent{Row: store.EventRow{Status: roommodel.SoftFailed}}) // soft-failed
	add("!b:t", "m.room.member", &user, store.NewEvent{Extremities: []string{},
		Snapshot:     &store.SnapshotDelta{Parent: 2, ChainLen: 1, Changes: map[roommodel.StateKey]int64{{Type: "m.room.member", StateKey: user}: store.ThisEvent}},
		HeadSnapshot: store.ThisEvent, CurrentState: map[roommodel.StateKey]int64{{Type: "m.room.member", StateKey: user}: store.ThisEvent},
		Memberships: map[string]string{user: join}})
	add("!b:t", "m.room.message", nil, current)
	add("!b:t", "m.room.message", nil, current)
	// A long run of messages, both rooms interleaved: more rows than
	// one statement takes whatever their number (exactChunks).
	for i := 0; i < 21; i++ {
		add([]string{"!a:t", "!b:t"}[i%2], "m.room.message", nil, current)
	}
	return nes
}
