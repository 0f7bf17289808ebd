package clientevent

import (
	"context"
	"encoding/json"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// Loader loads events by NID and ID, and a user's membership after an
// event; the room engine is one.
type Loader interface {
	EventsByNID(ctx context.Context, nids []int64) ([]*rooms.Event, error)
	EventsByID(ctx context.Context, ids []string) ([]*rooms.Event, error)
	MembershipAfter(ctx context.Context, ev *rooms.Event, userID string) (string, error)
}

// Renderer renders events with the fields that need other events:
// prev_content of state events and redacted_because. Aggregations are
// added by the Relations hook when set.
type Renderer struct {
	Loader Loader
	// Relations returns unsigned.m.relations for events, keyed by event ID.
	Relations func(ctx context.Context, viewer string, evs []*rooms.Event) (map[string]map[string]any, error)
	// Erased says which senders are erased accounts: their timeline
	// events are served redacted to a viewer who was not joined when
	// they were sent (Synapse's filter_events_for_client). Optional.
	Erased func(ctx context.Context, userIDs []string) (map[string]bool, error)
	// Filtered returns the feeds of the viewer's own reputation filter
	// that hide an event (rooms.Engine.FilteredFor): on a request that
	// asked to see them (rooms.ShowFiltered), such events carry them in
	// unsigned.org.myelin.filtered_by. Optional.
	Filtered func(ctx context.Context, viewerUserID string, ev *rooms.Event) []string
}

// FilteredByKey is the unsigned field listing the feeds of the viewer's
// own reputation filter that hide an event shown anyway.
const FilteredByKey = "org.myelin.filtered_by"

// Render formats events of a timeline (sync's, /messages, /context,
// /event, /relations, search, notifications) for viewer, in order, each
// with unsigned.membership: the viewer's membership after the event
// (MSC4115, spec v1.11), as Synapse's filter_events_for_client adds it.
func (r Renderer) Render(ctx context.Context, evs []*rooms.Event, viewer Viewer, viewerUserID string, omitRoomID bool) ([]Event, error) {
	return r.render(ctx, evs, viewer, viewerUserID, omitRoomID, true)
}

// RenderState formats a list of state (a room's state, its members, the
// state section of /sync or /context) without unsigned.membership,
// which Synapse gives only to events of timelines: each state event
// would need its own snapshot.
func (r Renderer) RenderState(ctx context.Context, evs []*rooms.Event, viewer Viewer, viewerUserID string, omitRoomID bool) ([]Event, error) {
	return r.render(ctx, evs, viewer, viewerUserID, omitRoomID, false)
}

func (r Renderer) render(ctx context.Context, evs []*rooms.Event, viewer Viewer, viewerUserID string, omitRoomID, withMembership bool) ([]Event, error) {
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
	erased, err := r.erasedSenders(ctx, evs, viewerUserID, withMembership)
	if err != nil {
		return nil, err
	}
	showFiltered := r.Filtered != nil && withMembership && viewerUserID != "" && rooms.ShowFiltered(ctx)
	now := time.Now()
	out := make([]Event, len(evs))
	// Events of one state snapshot share the viewer's membership.
	memberships := map[int64]string{}
	for i, ev := range evs {
		o := Options{Viewer: viewer, OmitRoomID: omitRoomID, Now: now, Relations: rels[ev.EventID()]}
		if withMembership && viewerUserID != "" {
			m, ok := memberships[ev.StateAfter]
			own := ev.Type() == spec.MRoomMember && ev.StateKey() != nil && *ev.StateKey() == viewerUserID
			if !ok || own {
				var err error
				if m, err = r.Loader.MembershipAfter(ctx, ev, viewerUserID); err != nil {
					return nil, err
				}
				if !own {
					memberships[ev.StateAfter] = m
				}
			}
			o.Membership = m
		}
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
		if erased[ev.Sender()] && ev.Sender() != viewerUserID && o.Membership != spec.Join {
			out[i].Content = prunedContent(ev)
		}
		if showFiltered {
			if feeds := r.Filtered(ctx, viewerUserID, ev); feeds != nil {
				out[i].Unsigned.FilteredBy = feeds
			}
		}
	}
	return out, nil
}

// erasedSenders is which senders of a timeline's events are erased
// (nil when none, or for state lists, which carry no membership).
func (r Renderer) erasedSenders(ctx context.Context, evs []*rooms.Event, viewerUserID string, withMembership bool) (map[string]bool, error) {
	if r.Erased == nil || !withMembership || viewerUserID == "" || len(evs) == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	var senders []string
	for _, ev := range evs {
		if !seen[ev.Sender()] {
			seen[ev.Sender()] = true
			senders = append(senders, ev.Sender())
		}
	}
	return r.Erased(ctx, senders)
}

// prunedContent is the content an event keeps once redacted under its
// room version's rules.
func prunedContent(ev *rooms.Event) json.RawMessage {
	empty := json.RawMessage("{}")
	v, err := gomatrixserverlib.GetRoomVersion(ev.Version())
	if err != nil {
		return empty
	}
	red, err := v.RedactEventJSON(ev.JSON())
	if err != nil {
		return empty
	}
	var e struct {
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(red, &e) != nil || len(e.Content) == 0 {
		return empty
	}
	return e.Content
}
