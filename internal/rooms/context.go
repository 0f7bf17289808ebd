package rooms

import (
	"context"
	"sort"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// Window is what /context returns around an event: the client's /context
// and the admin's build it alike, each over its own timeline read.
type Window struct {
	Event  *Event
	Before []*Event // newest first
	After  []*Event // oldest first
	State  []*Event // at the last event of the window
	// Start and End are the /messages positions on either side.
	Start, End int64
}

// WindowPage reads one side of a window: up to limit events from the
// position from, in one direction, that the reader may see.
type WindowPage func(ctx context.Context, from int64, limit int, backwards bool) ([]*Event, error)

// ContextWindow builds the window of up to limit events around ev (half
// before, as Synapse) read through page, with the state after its last
// event that keepState allows; lazyMembers keeps only the memberships
// of the window's senders.
func (e *Engine) ContextWindow(ctx context.Context, ev *Event, limit int, page WindowPage, lazyMembers bool, keepState func(*Event) bool) (*Window, error) {
	beforeLimit := limit / 2
	before, err := page(ctx, ev.StreamPos-1, beforeLimit, true)
	if err != nil {
		return nil, err
	}
	after, err := page(ctx, ev.StreamPos, limit-beforeLimit, false)
	if err != nil {
		return nil, err
	}
	// The positions sit just beyond the events returned, so that
	// /messages continues from there whatever filter it is given.
	w := &Window{Event: ev, Before: before, After: after, Start: ev.StreamPos - 1, End: ev.StreamPos}
	last := ev
	if len(before) > 0 {
		w.Start = before[len(before)-1].StreamPos - 1
	}
	if len(after) > 0 {
		last = after[len(after)-1]
		w.End = last.StreamPos
	}
	senders := w.Senders()
	state, err := e.StateAt(ctx, last.StateAfter)
	if err != nil {
		return nil, err
	}
	var keys []roommodel.StateKey
	for k := range state {
		if !lazyMembers || k.Type != spec.MRoomMember || senders[k.StateKey] {
			keys = append(keys, k)
		}
	}
	m, err := e.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	for _, x := range m {
		if keepState(x) {
			w.State = append(w.State, x)
		}
	}
	sort.Slice(w.State, func(i, j int) bool { return w.State[i].NID < w.State[j].NID })
	return w, nil
}

// Senders are the senders of the window's events.
func (w *Window) Senders() map[string]bool {
	out := map[string]bool{w.Event.Sender(): true}
	for _, evs := range [][]*Event{w.Before, w.After} {
		for _, x := range evs {
			out[x.Sender()] = true
		}
	}
	return out
}
