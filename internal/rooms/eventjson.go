package rooms

import (
	"context"
	"encoding/json"

	"github.com/tidwall/gjson"

	"github.com/myelin-chat/myelin/internal/store"
)

// RawEvent is an event as this server serves it to other servers, read
// from the store without being parsed: the send_join answer, /state and
// the auth chains pass tens of thousands of events on unread, and parsing
// each into a PDU (and its auth chain's again) only to marshal it back
// was most of the resident server's part of a big-room join (issue 14:
// 1.7 s of CPU for 40,000 events).
type RawEvent struct {
	NID  int64
	ID   string
	JSON json.RawMessage
}

// AuthEventIDs reads the IDs of the event's auth_events: strings from
// room version 3 on, [ID, hashes] pairs in versions 1 and 2. Redaction
// keeps auth_events in every version, so a redacted event's are its
// original's.
func (r RawEvent) AuthEventIDs() []string {
	refs := gjson.GetBytes(r.JSON, "auth_events").Array()
	ids := make([]string, 0, len(refs))
	for _, ref := range refs {
		if ref.IsArray() {
			ref = ref.Get("0")
		}
		if ref.Type == gjson.String {
			ids = append(ids, ref.Str)
		}
	}
	return ids
}

// EventJSONByNID is EventsByNID for answers that only pass the events
// on: the stored JSON as the sending server signed it (what Event.JSON
// gives), in the order given, unknown NIDs skipped. An event whose
// redaction was accepted but is not pruned yet is served redacted, as
// Event.JSON serves it; only those are parsed, through EventsByNID.
func (e *Engine) EventJSONByNID(ctx context.Context, nids []int64) ([]RawEvent, error) {
	rows, err := e.store.EventJSONByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	found, err := e.rawEvents(ctx, rows)
	if err != nil {
		return nil, err
	}
	out := make([]RawEvent, 0, len(nids))
	for _, n := range nids {
		if ev, ok := found[n]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

// EventJSONByID is EventJSONByNID by event ID.
func (e *Engine) EventJSONByID(ctx context.Context, ids []string) ([]RawEvent, error) {
	rows, err := e.store.EventJSONByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	found, err := e.rawEvents(ctx, rows)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]RawEvent, len(found))
	for _, ev := range found {
		byID[ev.ID] = ev
	}
	out := make([]RawEvent, 0, len(ids))
	for _, id := range ids {
		if ev, ok := byID[id]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

// rawEvents turns stored rows into RawEvents by NID, the redacted ones
// through the engine's parsed events (the redaction algorithm is the
// room version's).
func (e *Engine) rawEvents(ctx context.Context, rows []store.EventJSONRow) (map[int64]RawEvent, error) {
	found := make(map[int64]RawEvent, len(rows))
	var redacted []int64
	for _, r := range rows {
		if r.Redacted {
			redacted = append(redacted, r.NID)
			continue
		}
		found[r.NID] = RawEvent{NID: r.NID, ID: r.EventID, JSON: r.JSON}
	}
	if len(redacted) > 0 {
		evs, err := e.EventsByNID(ctx, redacted)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			found[ev.NID] = RawEvent{NID: ev.NID, ID: ev.EventID(), JSON: ev.JSON()}
		}
	}
	return found, nil
}

// AuthChainJSON is AuthChain for answers that pass the chain on
// unread: the events reachable through auth_events from the IDs given
// (not those events themselves unless reachable), breadth first in the
// order AuthChain gives. The references are read from the stored JSON
// (gjson), not from parsed events.
func (e *Engine) AuthChainJSON(ctx context.Context, authIDs []string) ([]RawEvent, error) {
	seen := map[string]bool{}
	var out []RawEvent
	frontier := authIDs
	for len(frontier) > 0 {
		var want []string
		for _, id := range frontier {
			if !seen[id] {
				seen[id] = true
				want = append(want, id)
			}
		}
		loaded, err := e.EventJSONByID(ctx, want)
		if err != nil {
			return nil, err
		}
		var next []string
		for _, ev := range loaded {
			out = append(out, ev)
			next = append(next, ev.AuthEventIDs()...)
		}
		frontier = next
	}
	return out, nil
}
