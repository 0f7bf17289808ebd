package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestIndexSearchBatch: a batch of entries goes into the index whole
// (an entry already indexed is left as it is) and each is found by its
// words.
func TestIndexSearchBatch(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var add []SearchEntry
		for i := int64(1); i <= 70; i++ {
			add = append(add, SearchEntry{EventNID: i, Key: "content.body", RoomID: "!r:hs", Sender: "@a:hs", StreamPos: i, OriginTS: 1000 + i,
				Value: fmt.Sprintf("message number%d", i)})
		}
		if err := db.IndexSearch(ctx, add[:1], nil, 1, 0); err != nil {
			t.Fatal(err)
		}
		first := add[0]
		add[0].Value = "changed"
		if err := db.IndexSearch(ctx, add, nil, 70, -3); err != nil {
			t.Fatal(err)
		}
		high, low, err := db.SearchPosition(ctx)
		if err != nil || high != 70 || low != -3 {
			t.Fatalf("position %d, %d (%v), want 70, -3", high, low, err)
		}
		var n int64
		if err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM search_events`, nil, &n); err != nil || n != 70 {
			t.Fatalf("%d entries (%v), want 70", n, err)
		}
		for _, e := range append([]SearchEntry{first}, add[1:]...) {
			var v string
			var pos, ts int64
			if err := db.r().queryRow(ctx, `SELECT value, stream_pos, origin_ts FROM search_events WHERE event_nid = $1`, []any{e.EventNID}, &v, &pos, &ts); err != nil ||
				v != e.Value || pos != e.StreamPos || ts != e.OriginTS {
				t.Fatalf("entry %d: %q %d %d (%v), want %+v", e.EventNID, v, pos, ts, err, e)
			}
			join, match, _ := searchSQL(db.dialect)
			var found int64
			if err := db.r().queryRow(ctx, `SELECT s.event_nid FROM search_events s `+join+` WHERE `+match,
				[]any{searchQuery(db.dialect, []string{fmt.Sprintf("number%d", e.EventNID)})}, &found); err != nil || found != e.EventNID {
				t.Fatalf("words of entry %d found %d (%v)", e.EventNID, found, err)
			}
		}
		if db.dialect.name() == "sqlite" {
			// SQLite's FTS5 keeps a count of the index segments it has
			// written in its structure record (fts5_index.c): one for
			// the first batch, one per statement of the second (69 new
			// entries: chunks of 64, 4 and 1), not one per entry.
			var structure []byte
			if err := db.r().queryRow(ctx, `SELECT block FROM search_fts_data WHERE id = 10`, nil, &structure); err != nil {
				t.Fatal(err)
			}
			if w := ftsWriteCounter(t, structure); w > 4 {
				t.Fatalf("FTS5 wrote %d segments for 2 batches, want at most 4", w)
			}
		}
	})
}

// ftsWriteCounter reads nWriteCounter from an FTS5 structure record: a
// 4-byte cookie, the version-2 marker when present, then the varints
// nLevel, nSegment and nWriteCounter.
func ftsWriteCounter(t *testing.T, rec []byte) uint64 {
	t.Helper()
	if len(rec) < 4 {
		t.Fatalf("FTS5 structure record of %d bytes", len(rec))
	}
	rec = rec[4:]
	if len(rec) >= 4 && rec[0] == 0xff && rec[1] == 0 && rec[2] == 0 && rec[3] == 1 {
		rec = rec[4:]
	}
	var v [3]uint64
	for i := range v {
		// SQLite's varint: 7 bits a byte, most significant first.
		for {
			if len(rec) == 0 {
				t.Fatal("FTS5 structure record cut short")
			}
			b := rec[0]
			rec = rec[1:]
			v[i] = v[i]<<7 | uint64(b&0x7f)
			if b < 0x80 {
				break
			}
		}
	}
	return v[2]
}
