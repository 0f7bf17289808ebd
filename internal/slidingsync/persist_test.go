package slidingsync

import (
	"maps"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// A room as stored reads back the same, whatever its state keys hold.
func TestStoredRoomRoundTrip(t *testing.T) {
	r := &sentRoom{membership: "join", memberNID: 7, required: requiredHash([][]string{{"m.room.name", ""}}), upto: 42, peek: true, timeline: 20,
		state: map[roommodel.StateKey]int64{{Type: "m.room.member", StateKey: "@a:x"}: 3, {Type: "x\x00\"y", StateKey: "é\n"}: 1 << 60}}
	got, err := decodeRoom(encodeRoom(r))
	if err != nil {
		t.Fatal(err)
	}
	if got.membership != r.membership || got.memberNID != r.memberNID || got.required != r.required || got.upto != r.upto ||
		got.peek != r.peek || got.timeline != r.timeline || !maps.Equal(got.state, r.state) {
		t.Fatalf("round trip: %+v, want %+v", got, r)
	}
	// A room stored before timeline limits were recorded never expands.
	if old, err := decodeRoom(`{"m":"join","u":3}`); err != nil || old.timeline != -1 {
		t.Fatalf("room stored without a timeline limit: %+v, %v", old, err)
	}
	if _, err := decodeRoom(`{"s":[["a","b","c"]]}`); err == nil {
		t.Fatal("a bad state entry was accepted")
	}
}

// Only the rooms whose entry changed (another pointer) are written, and
// those the connection no longer has are deleted.
func TestWriteJobDiff(t *testing.T) {
	same, changed, gone := &sentRoom{membership: "join"}, &sentRoom{membership: "join"}, &sentRoom{membership: "invite"}
	prev := &snapshot{rooms: map[string]*sentRoom{"!same": same, "!changed": changed, "!gone": gone}}
	next := &snapshot{seq: 3, upto: 9, counts: map[string]int{"all": 2}, rooms: map[string]*sentRoom{"!same": same,
		"!changed": changed.clone(), "!new": {membership: "join"}}}
	w := writeJob{key: connKey{"@u:x", "D", "c"}, token: "t", prev: prev, next: next}.diff()
	if w.Fresh || len(w.Rooms) != 2 || w.Rooms["!changed"] == "" || w.Rooms["!new"] == "" || len(w.Gone) != 1 || w.Gone[0] != "!gone" {
		t.Fatalf("diff: %+v", w)
	}
	if w.Seq != 3 || w.Upto != 9 || !strings.Contains(w.Extra, `"all":2`) {
		t.Fatalf("position: %+v", w.SlidingConn)
	}
	s, err := decodeSnapshot(store.SlidingConn{Seq: 3, Upto: 9, Extra: w.Extra}, w.Rooms)
	if err != nil || s.counts["all"] != 2 || len(s.rooms) != 2 {
		t.Fatalf("decoded: %+v, %v", s, err)
	}
	fresh := writeJob{token: "t", next: next}.diff()
	if !fresh.Fresh || len(fresh.Rooms) != 3 {
		t.Fatalf("first write: %+v", fresh)
	}
}

// FuzzParsePos: the pos of the query string never panics, and what it
// accepts has a token and a positive sequence number.
func FuzzParsePos(f *testing.F) {
	for _, s := range []string{"", "_", "abc_1", "abc_0", "abc_-1", "a_b_c", "x_9223372036854775807", "\x00_1", "_5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pos string) {
		token, seq, ok := parsePos(pos)
		if ok && (token == "" || seq <= 0) {
			t.Fatalf("parsePos(%q) = %q, %d", pos, token, seq)
		}
	})
}
