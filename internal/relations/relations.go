// Package relations computes the server-side aggregations of child
// events ("bundled aggregations", unsigned.m.relations) that the spec
// asks for on every endpoint that serves events: the thread summary of
// m.thread, the latest edit of m.replace and the list of m.reference.
// m.annotation is not aggregated (spec v1.7).
//
// A batch of events costs a bounded number of queries whatever its size:
// one for the edits and references of all of them, one for their thread
// summaries, and the loads of the events those name.
package relations

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// Relation types.
const (
	Thread     = "m.thread"
	Replace    = "m.replace"
	Reference  = "m.reference"
	Annotation = "m.annotation"
)

// Store is the storage the aggregations read.
type Store interface {
	RelationChildren(ctx context.Context, parents []string, relTypes ...string) ([]store.RelationChild, error)
	ThreadSummaries(ctx context.Context, roots []string, userID string) ([]store.ThreadSummary, error)
	RelatedEvents(ctx context.Context, q store.RelationQuery) ([]store.EventRow, error)
	ThreadRoots(ctx context.Context, roomID string, upto, before int64, participant string, limit int) ([]store.ThreadRoot, error)
}

// Aggregator computes bundled aggregations and pages through relations
// and threads.
type Aggregator struct {
	store  Store
	engine *rooms.Engine
}

// New makes an aggregator.
func New(st Store, engine *rooms.Engine) *Aggregator {
	return &Aggregator{store: st, engine: engine}
}

// Bundle returns unsigned.m.relations for the events that have any,
// keyed by event ID, as viewer may see them; it is the
// clientevent.Renderer's Relations hook.
func (a *Aggregator) Bundle(ctx context.Context, viewer string, evs []*rooms.Event) (map[string]map[string]any, error) {
	return a.bundle(ctx, viewer, evs, true)
}

// Of returns an event's relation: its rel_type and parent ("" if none).
func Of(ev *rooms.Event) (relType, parent string) {
	var c struct {
		RelatesTo *struct {
			RelType string `json:"rel_type"`
			EventID string `json:"event_id"`
		} `json:"m.relates_to"`
	}
	if json.Unmarshal(ev.Content(), &c) != nil || c.RelatesTo == nil || c.RelatesTo.EventID == "" {
		return "", ""
	}
	return c.RelatesTo.RelType, c.RelatesTo.EventID
}

// bundle aggregates evs; threads is false for the latest events of
// threads, which cannot be thread roots themselves.
func (a *Aggregator) bundle(ctx context.Context, viewer string, evs []*rooms.Event, threads bool) (map[string]map[string]any, error) {
	ps, err := a.parentsWithRelations(ctx, parentsOf(evs, threads))
	if err != nil || len(ps.ids) == 0 {
		return nil, err
	}
	vis := a.engine.VisibilityFor(viewer)
	edits, refs, err := a.children(ctx, ps)
	if err != nil {
		return nil, err
	}
	out := bundles{}
	visibleRefs, err := a.visibleReferences(ctx, vis, refs)
	if err != nil {
		return nil, err
	}
	for id, chunk := range visibleRefs {
		out.set(id, Reference, map[string]any{"chunk": chunk})
	}
	latestEdits, err := a.latestEdits(ctx, vis, edits)
	if err != nil {
		return nil, err
	}
	summaries, err := a.threadSummaries(ctx, vis, viewer, ps)
	if err != nil {
		return nil, err
	}
	if err := a.renderLatest(ctx, viewer, ps.ids, latestEdits, summaries, out); err != nil {
		return nil, err
	}
	return out, nil
}

// bundles is unsigned.m.relations per parent event ID.
type bundles map[string]map[string]any

func (b bundles) set(id, relType string, v any) {
	if b[id] == nil {
		b[id] = map[string]any{}
	}
	b[id][relType] = v
}

// parents are the events of a batch that may carry aggregations.
type parents struct {
	byID  map[string]*rooms.Event
	ids   []string // in the batch's order
	roots []string // those that may also root a thread
}

func parentsOf(evs []*rooms.Event, threads bool) parents {
	ps := parents{byID: map[string]*rooms.Event{}}
	for _, ev := range evs {
		// State events get no aggregations (spec); edits and annotations
		// cannot have children of their own.
		if ev.IsState() || ps.byID[ev.EventID()] != nil {
			continue
		}
		rel, _ := Of(ev)
		if rel == Replace || rel == Annotation {
			continue
		}
		ps.byID[ev.EventID()] = ev
		ps.ids = append(ps.ids, ev.EventID())
		// A thread cannot start from an event that is itself a relation.
		if threads && rel == "" {
			ps.roots = append(ps.roots, ev.EventID())
		}
	}
	return ps
}

// in returns the parent with that ID when it is in roomID: a child
// claiming a parent of another room is no child of it.
// parentsWithRelations drops the events of rooms without any relation:
// most rooms have none, and their events need no aggregation queries.
func (a *Aggregator) parentsWithRelations(ctx context.Context, ps parents) (parents, error) {
	kept := parents{byID: map[string]*rooms.Event{}}
	has := map[string]bool{}
	for _, id := range ps.ids {
		ev := ps.byID[id]
		roomID := ev.RoomID().String()
		h, ok := has[roomID]
		if !ok {
			var err error
			if h, err = a.engine.RoomHasRelations(ctx, roomID); err != nil {
				return parents{}, err
			}
			has[roomID] = h
		}
		if h {
			kept.byID[id] = ev
			kept.ids = append(kept.ids, id)
		}
	}
	for _, id := range ps.roots {
		if kept.byID[id] != nil {
			kept.roots = append(kept.roots, id)
		}
	}
	return kept, nil
}

func (ps parents) in(id, roomID string) *rooms.Event {
	if p := ps.byID[id]; p != nil && p.RoomID().String() == roomID {
		return p
	}
	return nil
}

// children loads the edits and references of all parents in one query;
// edits holds only valid replacements, per parent.
func (a *Aggregator) children(ctx context.Context, ps parents) (edits, refs map[string][]store.RelationChild, err error) {
	rows, err := a.store.RelationChildren(ctx, ps.ids, Replace, Reference)
	if err != nil {
		return nil, nil, err
	}
	edits = map[string][]store.RelationChild{}
	refs = map[string][]store.RelationChild{}
	for _, c := range rows {
		p := ps.in(c.Parent, c.RoomID)
		if p == nil {
			continue
		}
		switch c.RelType {
		case Replace:
			// Valid replacements only: same sender and type, no state
			// key, and never of a redacted original.
			if p.RedactedBy == "" && c.Sender == p.Sender() && c.Type == p.Type() && !c.IsState {
				edits[c.Parent] = append(edits[c.Parent], c)
			}
		case Reference:
			refs[c.Parent] = append(refs[c.Parent], c)
		}
	}
	return edits, refs, nil
}

// visibleReferences is the m.reference chunk of each parent: the
// references the viewer may see, oldest first.
func (a *Aggregator) visibleReferences(ctx context.Context, vis *rooms.Visibility, refs map[string][]store.RelationChild) (map[string][]map[string]string, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	var nids []int64
	for _, cs := range refs {
		for _, c := range cs {
			nids = append(nids, c.NID)
		}
	}
	loaded, err := a.loadVisible(ctx, vis, nids)
	if err != nil {
		return nil, err
	}
	out := map[string][]map[string]string{}
	for id, cs := range refs {
		for _, c := range cs {
			if loaded[c.NID] != nil {
				out[id] = append(out[id], map[string]string{"event_id": c.EventID})
			}
		}
	}
	return out, nil
}

// latestEdits picks each parent's most recent valid visible replacement,
// by origin_server_ts then event ID. Candidates are tried newest first,
// one round (one load) for all parents at a time, so that the common
// case of a visible newest edit costs one load.
func (a *Aggregator) latestEdits(ctx context.Context, vis *rooms.Visibility, edits map[string][]store.RelationChild) (map[string]*rooms.Event, error) {
	latest := map[string]*rooms.Event{}
	for _, cs := range edits {
		sort.Slice(cs, func(i, j int) bool {
			if cs[i].OriginTS != cs[j].OriginTS {
				return cs[i].OriginTS > cs[j].OriginTS
			}
			return cs[i].EventID > cs[j].EventID
		})
	}
	for round := 0; len(edits) > 0; round++ {
		var nids []int64
		for id, cs := range edits {
			if round >= len(cs) {
				delete(edits, id)
				continue
			}
			nids = append(nids, cs[round].NID)
		}
		if len(nids) == 0 {
			break
		}
		loaded, err := a.loadVisible(ctx, vis, nids)
		if err != nil {
			return nil, err
		}
		for id, cs := range edits {
			if ev := loaded[cs[round].NID]; ev != nil && hasNewContent(ev) {
				latest[id] = ev
				delete(edits, id)
			}
		}
	}
	return latest, nil
}

// threadSummary is the m.thread aggregation of a root, before rendering.
type threadSummary struct {
	count        int64
	participated bool
	latest       *rooms.Event
}

// threadSummaries summarises the threads of the parents that may root
// one, as the viewer sees them; threads with no event the viewer may see
// are left out.
func (a *Aggregator) threadSummaries(ctx context.Context, vis *rooms.Visibility, viewer string, ps parents) (map[string]*threadSummary, error) {
	out := map[string]*threadSummary{}
	if len(ps.roots) == 0 {
		return out, nil
	}
	sums, err := a.store.ThreadSummaries(ctx, ps.roots, viewer)
	if err != nil {
		return nil, err
	}
	kept := sums[:0:0]
	var nids []int64
	for _, s := range sums {
		if ps.in(s.Root, s.RoomID) != nil {
			kept = append(kept, s)
			nids = append(nids, s.LatestNID)
		}
	}
	latest, err := a.loadVisible(ctx, vis, nids)
	if err != nil {
		return nil, err
	}
	for _, s := range kept {
		root := ps.byID[s.Root]
		ev := latest[s.LatestNID]
		if ev == nil {
			// The viewer may not see the newest event of the thread:
			// show the newest one they may see, if any.
			if ev, err = a.latestVisibleInThread(ctx, vis, root, s.LatestNID); err != nil {
				return nil, err
			}
			if ev == nil {
				continue
			}
		}
		out[s.Root] = &threadSummary{count: s.Count, participated: s.Mine > 0 || root.Sender() == viewer, latest: ev}
	}
	return out, nil
}

// renderLatest renders the latest edits and the latest thread events in
// one batch, so that their own aggregations (no threads: they cannot root
// one) cost one more round whatever their number, and sets them in out.
func (a *Aggregator) renderLatest(ctx context.Context, viewer string, ids []string, edits map[string]*rooms.Event, threads map[string]*threadSummary, out bundles) error {
	var toRender []*rooms.Event
	for _, id := range ids {
		if ev := edits[id]; ev != nil {
			toRender = append(toRender, ev)
		}
		if s := threads[id]; s != nil {
			toRender = append(toRender, s.latest)
		}
	}
	if len(toRender) == 0 {
		return nil
	}
	inner := clientevent.Renderer{Loader: a.engine, Relations: func(ctx context.Context, viewer string, evs []*rooms.Event) (map[string]map[string]any, error) {
		return a.bundle(ctx, viewer, evs, false)
	}}
	rendered, err := inner.Render(ctx, toRender, clientevent.Viewer{}, viewer, false)
	if err != nil {
		return err
	}
	i := 0
	for _, id := range ids {
		if edits[id] != nil {
			out.set(id, Replace, rendered[i])
			i++
		}
		if s := threads[id]; s != nil {
			out.set(id, Thread, map[string]any{"latest_event": rendered[i], "count": s.count, "current_user_participated": s.participated})
			i++
		}
	}
	return nil
}

// loadVisible loads events by NID and keeps those the viewer may see.
func (a *Aggregator) loadVisible(ctx context.Context, vis *rooms.Visibility, nids []int64) (map[int64]*rooms.Event, error) {
	out := map[int64]*rooms.Event{}
	if len(nids) == 0 {
		return out, nil
	}
	evs, err := a.engine.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	for _, ev := range evs {
		if ev.Status != roommodel.Accepted {
			continue
		}
		ok, err := vis.CanSee(ctx, ev)
		if err != nil {
			return nil, err
		}
		if ok {
			out[ev.NID] = ev
		}
	}
	return out, nil
}

// latestVisibleInThread walks a thread back from its newest event to the
// newest one the viewer may see; nil when there is none.
func (a *Aggregator) latestVisibleInThread(ctx context.Context, vis *rooms.Visibility, root *rooms.Event, newestNID int64) (*rooms.Event, error) {
	newest, err := a.engine.EventsByNID(ctx, []int64{newestNID})
	if err != nil || len(newest) == 0 {
		return nil, err
	}
	upto := newest[0].StreamPos - 1
	const batch = 50
	for upto > 0 {
		rows, err := a.store.RelatedEvents(ctx, store.RelationQuery{
			RoomID: root.RoomID().String(), Parent: root.EventID(), RelType: Thread, Depth: 1,
			Upto: upto, Limit: batch, Backwards: true,
		})
		if err != nil {
			return nil, err
		}
		evs, err := rooms.EventsFor(ctx, a.engine, rows, func(r store.EventRow) int64 { return r.NID })
		if err != nil {
			return nil, err
		}
		if ev, err := vis.First(ctx, evs); err != nil || ev != nil {
			return ev, err
		}
		if len(rows) < batch {
			break
		}
		upto = rows[len(rows)-1].StreamPos - 1
	}
	return nil, nil
}

// hasNewContent reports whether a replacement carries m.new_content,
// without which it is invalid.
func hasNewContent(ev *rooms.Event) bool {
	var c struct {
		NewContent json.RawMessage `json:"m.new_content"`
	}
	if json.Unmarshal(ev.Content(), &c) != nil || len(c.NewContent) == 0 {
		return false
	}
	var obj map[string]json.RawMessage
	return json.Unmarshal(c.NewContent, &obj) == nil && obj != nil
}
