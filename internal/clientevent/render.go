package clientevent

import (
	"context"
	"encoding/json"
	"time"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// Loader loads events by NID and ID; the room engine is one.
type Loader interface {
	EventsByNID(ctx context.Context, nids []int64) ([]*rooms.Event, error)
	EventsByID(ctx context.Context, ids []string) ([]*rooms.Event, error)
}

// Renderer renders events with the fields that need other events:
// prev_content of state events and redacted_because. Aggregations are
// added by the Relations hook when set.
type Renderer struct {
	Loader Loader
	// Relations returns unsigned.m.relations for events, keyed by event ID.
	Relations func(ctx context.Context, viewer string, evs []*rooms.Event) (map[string]map[string]any, error)
}

// Render formats evs for viewer, in order.
func (r Renderer) Render(ctx context.Context, evs []*rooms.Event, viewer Viewer, viewerUserID string, omitRoomID bool) ([]Event, error) {
	var replaced []int64
	var redactions []string
	for _, ev := range evs {
		if ev.ReplacesNID != 0 {
			replaced = append(replaced, ev.ReplacesNID)
		}
		if ev.RedactedBy != "" {
			redactions = append(redactions, ev.RedactedBy)
		}
	}
	prev := map[int64]*rooms.Event{}
	if len(replaced) > 0 {
		loaded, err := r.Loader.EventsByNID(ctx, replaced)
		if err != nil {
			return nil, err
		}
		for _, ev := range loaded {
			prev[ev.NID] = ev
		}
	}
	reds := map[string]*rooms.Event{}
	if len(redactions) > 0 {
		loaded, err := r.Loader.EventsByID(ctx, redactions)
		if err != nil {
			return nil, err
		}
		for _, ev := range loaded {
			reds[ev.EventID()] = ev
		}
	}
	var rels map[string]map[string]any
	if r.Relations != nil {
		var err error
		if rels, err = r.Relations(ctx, viewerUserID, evs); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	out := make([]Event, len(evs))
	for i, ev := range evs {
		o := Options{Viewer: viewer, OmitRoomID: omitRoomID, Now: now, Relations: rels[ev.EventID()]}
		if p, ok := prev[ev.ReplacesNID]; ok {
			o.PrevContent = json.RawMessage(p.Content())
			o.PrevSender = p.Sender()
			o.ReplacesState = p.EventID()
		}
		if red, ok := reds[ev.RedactedBy]; ok {
			rendered := Format(red, Options{Viewer: viewer, Now: now})
			o.RedactedBecause = &rendered
		}
		out[i] = Format(ev, o)
	}
	return out, nil
}
