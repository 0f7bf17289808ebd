// Package search serves server-side search (spec "Server Side Search"):
// an indexer that keeps the full-text index of room events up to date
// from the event stream, and the room_events search itself, which
// applies history visibility to what the index finds.
package search

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage the search package uses.
type Store interface {
	SearchPosition(ctx context.Context) (high, low int64, err error)
	SearchableEvents(ctx context.Context, after, upto int64, limit int) ([]store.EventRow, error)
	BackfilledSearchableEvents(ctx context.Context, before int64, limit int) ([]store.EventRow, error)
	IndexSearch(ctx context.Context, add []store.SearchEntry, remove []string, high, low int64) error
	SearchEvents(ctx context.Context, q store.SearchQuery) ([]store.SearchHit, error)
	CountSearch(ctx context.Context, q store.SearchQuery) (int64, error)
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
}

// indexedKeys maps each indexed event type to the content field searched
// (the spec's search keys).
var indexedKeys = map[string]string{
	"m.room.message": KeyBody,
	"m.room.name":    KeyName,
	"m.room.topic":   KeyTopic,
}

// isKey reports whether k is one of the spec's search keys.
func isKey(k string) bool {
	for _, key := range indexedKeys {
		if key == k {
			return true
		}
	}
	return false
}

// indexBatch is how many events one indexing transaction reads.
const indexBatch = 500

// Indexer reads the event stream into the full-text index. It indexes
// off the request path: the room engine's bus only wakes it, and it
// reads the events from the store from where it last stopped, so that
// events stored before a crash, or before search existed (an empty
// index starts at position 0), are indexed on the next start.
type Indexer struct {
	store  Store
	stream *rooms.StreamGen
	log    *slog.Logger
	wake   chan struct{}
	// urgent ends the gathering wait: a search is waiting.
	urgent chan struct{}
	// delay is the gathering wait (indexDelay; tests set their own).
	delay time.Duration
	// written and writtenLow are the positions last recorded (Run's
	// goroutine only).
	written, writtenLow int64
	// backfillRead is when catchUp last looked for backfilled history,
	// backfillOwed whether it skipped a look since (Run's goroutine
	// only).
	backfillRead time.Time
	backfillOwed bool

	mu   sync.Mutex
	high int64
	// advanced is closed whenever high moves.
	advanced chan struct{}
	// streamMoved holds a value when the event stream moved since Run
	// last looked (rooms.StreamAdvanced on the bus).
	streamMoved <-chan struct{}
	loaded      bool
}

// NewIndexer makes an indexer; Run starts it.
//
// It hears of new events on b (nil: from nobody).
func NewIndexer(s Store, stream *rooms.StreamGen, log *slog.Logger, b bus.Bus) *Indexer {
	ix := &Indexer{store: s, stream: stream, log: log, wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1),
		delay: indexDelay, advanced: make(chan struct{})}
	if b != nil {
		b.Subscribe("search-indexer", func(_ context.Context, c bus.Change) { ix.Publish(c.(rooms.Notification)) }, rooms.TopicEvent)
		ix.streamMoved = rooms.Advances(b, "search-indexer")
	}
	return ix
}

// Publish hears of a new event (rooms.TopicEvent): it wakes the indexer (events
// backfilled from other servers too, which do not move the stream).
func (ix *Indexer) Publish(rooms.Notification) {
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

// Run indexes until ctx ends.
func (ix *Indexer) Run(ctx context.Context) error {
	high, low, err := ix.store.SearchPosition(ctx)
	for err != nil {
		ix.log.Warn("search: reading the index position", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		high, low, err = ix.store.SearchPosition(ctx)
	}
	ix.written, ix.writtenLow = high, low
	ix.setHigh(high)
	for {
		// streamMoved keeps a move made while catching up, so that none
		// is missed.
		if high, low, err = ix.catchUp(ctx, high, low); err != nil && ctx.Err() == nil {
			ix.log.Warn("search: indexing events", "err", err)
		}
		// A look for backfilled history skipped by catchUp is made up
		// for within backfillEvery, even if no event comes.
		due := time.NewTimer(max(backfillEvery-time.Since(ix.backfillRead), 0))
		if !ix.backfillOwed {
			due.Stop()
		}
		select {
		case <-ctx.Done():
			due.Stop()
			return nil
		case <-ix.streamMoved:
		case <-ix.wake:
		case <-due.C:
			continue
		}
		due.Stop()
		if !ix.gather(ctx, high) {
			return nil
		}
	}
}

// indexDelay is how long the indexer lets events gather once the stream
// moves: one transaction then indexes a burst, and indexing keeps off
// SQLite's only writer while the burst's own writes (the events, their
// notification counts) and the /sync wake-ups they cause go through. A
// search waiting for the index cuts it short (WaitFor), and so does a
// full batch (indexBatch events), so that no search ever waits for it
// and no transaction grows past a batch. At 25 ms the indexer's
// transactions (each a commit, and a new FTS5 segment to merge) cost
// 45-65 us per message sent; at 250 ms it is a tenth of the commits
// (docs/benchmarks.md, "Send path, fifth pass").
const indexDelay = 250 * time.Millisecond

// gather waits ix.delay for events to gather after the stream moved
// past high, less if a search waits or indexBatch events have come; it
// reports false when ctx ended.
func (ix *Indexer) gather(ctx context.Context, high int64) bool {
	timer := time.NewTimer(ix.delay)
	defer timer.Stop()
	for ix.stream.Current()-high < indexBatch {
		// A move or wake taken here is not lost: catchUp reads the
		// stream's position after the wait.
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-ix.urgent:
			return true
		case <-ix.streamMoved:
		case <-ix.wake:
		}
	}
	return true
}

// backfillEvery is how often the indexer looks for backfilled history.
const backfillEvery = time.Second

// catchUp indexes every event between the stored positions and the
// stream's current one, and any history backfilled below low.
func (ix *Indexer) catchUp(ctx context.Context, high, low int64) (int64, int64, error) {
	for upto := ix.stream.Current(); high < upto; {
		rows, err := ix.store.SearchableEvents(ctx, high, upto, indexBatch)
		if err != nil {
			return high, low, err
		}
		next := upto
		if len(rows) == indexBatch {
			next = rows[len(rows)-1].StreamPos
		}
		if err := ix.index(ctx, rows, next, low); err != nil {
			return high, low, err
		}
		high = next
		ix.setHigh(high)
	}
	// Backfill stores history without a notification on the bus, so the
	// indexer has to look for it; looking on every wake cost a read of
	// the events table per burst of messages, for history that seldom
	// comes. The first pass always looks: history stored before a crash
	// or before search existed.
	if !ix.backfillRead.IsZero() && time.Since(ix.backfillRead) < backfillEvery {
		ix.backfillOwed = true
		return high, low, nil
	}
	ix.backfillRead, ix.backfillOwed = time.Now(), false
	for {
		rows, err := ix.store.BackfilledSearchableEvents(ctx, low, indexBatch)
		if err != nil || len(rows) == 0 {
			ix.backfillOwed = err != nil
			return high, low, err
		}
		next := rows[len(rows)-1].StreamPos
		if err := ix.index(ctx, rows, high, next); err != nil {
			ix.backfillOwed = true
			return high, low, err
		}
		low = next
		if len(rows) < indexBatch {
			return high, low, nil
		}
	}
}

// index stores the index entries of rows and the new positions.
func (ix *Indexer) index(ctx context.Context, rows []store.EventRow, high, low int64) error {
	var add []store.SearchEntry
	var remove []string
	for _, r := range rows {
		var ev struct {
			Redacts string `json:"redacts"`
			Content struct {
				Body    any    `json:"body"`
				Name    any    `json:"name"`
				Topic   any    `json:"topic"`
				Redacts string `json:"redacts"`
			} `json:"content"`
		}
		if err := json.Unmarshal([]byte(r.JSON), &ev); err != nil {
			continue // stored events are valid JSON; skip rather than stall
		}
		if r.Type == "m.room.redaction" {
			// Room versions up to 10 carry redacts at the top level, 11
			// and later in the content.
			if id := ev.Redacts + ev.Content.Redacts; id != "" {
				remove = append(remove, id)
			}
			continue
		}
		if r.RedactedBy != nil || r.StateKey != nil && *r.StateKey != "" {
			continue
		}
		key := indexedKeys[r.Type]
		var v any
		switch key {
		case KeyBody:
			v = ev.Content.Body
		case KeyName:
			v = ev.Content.Name
		case KeyTopic:
			v = ev.Content.Topic
		}
		// The event keeps its text faithfully; the index column holds
		// what both engines can store (PostgreSQL's TEXT refuses NUL),
		// NUL read as a space between words.
		text, _ := v.(string)
		text = strings.ReplaceAll(text, "\x00", " ")
		if key == KeyBody && r.StateKey != nil || text == "" {
			continue
		}
		add = append(add, store.SearchEntry{EventNID: r.NID, Key: key, RoomID: r.RoomID, Sender: r.Sender,
			StreamPos: r.StreamPos, OriginTS: r.OriginTS, Value: text})
	}
	// Most stream positions are not searchable events (receipts,
	// presence, account data, other event types): a batch with nothing
	// to index only records its position every so often, so that the
	// only writer SQLite has is not taken for nothing. A restart re-reads
	// the few positions not recorded.
	if len(add) == 0 && len(remove) == 0 && high-ix.written < positionEvery {
		return nil
	}
	if err := ix.store.IndexSearch(ctx, add, remove, high, low); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return ix.indexEach(ctx, add, remove, high, low, err)
	}
	ix.written, ix.writtenLow = high, low
	return nil
}

// indexEach is index's way out when a batch fails: it stores the batch
// one entry at a time, keeping the recorded positions, so that an entry
// the database refuses is logged and skipped instead of failing every
// later attempt (one such message once stopped the index for good). A
// database that is down fails the first entry too: then nothing moves
// and the batch is retried as a whole.
func (ix *Indexer) indexEach(ctx context.Context, add []store.SearchEntry, remove []string, high, low int64, batchErr error) error {
	stored := 0
	for _, e := range add {
		err := ix.store.IndexSearch(ctx, []store.SearchEntry{e}, nil, ix.written, ix.writtenLow)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			ix.log.Warn("search: skipping an event the index refuses", "event_nid", e.EventNID, "room_id", e.RoomID, "err", err)
		default:
			stored++
		}
	}
	for _, id := range remove {
		err := ix.store.IndexSearch(ctx, nil, []string{id}, ix.written, ix.writtenLow)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			ix.log.Warn("search: skipping a redaction the index refuses", "redacts", id, "err", err)
		default:
			stored++
		}
	}
	if stored == 0 && len(add)+len(remove) > 1 {
		return batchErr // nothing went in: the database, not a row, is at fault
	}
	if err := ix.store.IndexSearch(ctx, nil, nil, high, low); err != nil {
		return err
	}
	ix.written, ix.writtenLow = high, low
	return nil
}

// positionEvery is how far the stream may move past the recorded
// position before a batch with nothing to index records it.
const positionEvery = 1000

func (ix *Indexer) setHigh(high int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if high > ix.high || !ix.loaded {
		ix.loaded, ix.high = true, max(high, ix.high)
		close(ix.advanced)
		ix.advanced = make(chan struct{})
	}
}

// Backlog is how far the stream is ahead of the index, in positions: 0
// once every stored event is indexed.
func (ix *Indexer) Backlog() int64 {
	ix.mu.Lock()
	high := ix.high
	ix.mu.Unlock()
	return max(0, ix.stream.Current()-high)
}

// WaitFor waits until the index holds every event up to stream position
// pos, or ctx ends: a search sees the messages sent before it (Synapse
// indexes while persisting, so its searches do too).
func (ix *Indexer) WaitFor(ctx context.Context, pos int64) {
	for {
		ix.mu.Lock()
		done, ch := ix.loaded && ix.high >= pos, ix.advanced
		ix.mu.Unlock()
		if done {
			return
		}
		select {
		case ix.urgent <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}
