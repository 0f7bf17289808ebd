package clientsync

import (
	"context"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// RenderContext renders a /context window (the client's and the
// admin's) in one batch, so that the aggregations of all its events
// are one batch too.
func RenderContext(ctx context.Context, render clientevent.Renderer, w *rooms.Window, v clientevent.Viewer, userID string) (map[string]any, error) {
	all := make([]*rooms.Event, 0, 1+len(w.Before)+len(w.After))
	all = append(append(append(all, w.Event), w.Before...), w.After...)
	rendered, err := render.Render(ctx, all, v, userID, false)
	if err != nil {
		return nil, err
	}
	// State events get no aggregations, so rendering them apart loses
	// no batching.
	state, err := render.RenderState(ctx, w.State, v, userID, false)
	if err != nil {
		return nil, err
	}
	nb := len(w.Before)
	return map[string]any{
		"event":         rendered[0],
		"events_before": nonNilEvents(rendered[1 : 1+nb]),
		"events_after":  nonNilEvents(rendered[1+nb:]),
		"state":         nonNilEvents(state),
		"start":         Token{Events: w.Start}.String(),
		"end":           Token{Events: w.End}.String(),
	}, nil
}

// nonNilEvents keeps empty lists rendering as [] rather than null.
func nonNilEvents(evs []clientevent.Event) []clientevent.Event {
	if evs == nil {
		return []clientevent.Event{}
	}
	return evs
}
