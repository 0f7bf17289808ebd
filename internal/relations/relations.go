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
}

// Aggregator computes bundled aggregations.
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
	parents := map[string]*rooms.Event{}
	var ids, roots []string
	for _, ev := range evs {
		// State events get no aggregations (spec); edits and annotations
		// cannot have children of their own.
		if ev.IsState() || parents[ev.EventID()] != nil {
			continue
		}
		rel, _ := Of(ev)
		if rel == Replace || rel == Annotation {
			continue
		}
		parents[ev.EventID()] = ev
		ids = append(ids, ev.EventID())
		// A thread cannot start from an event that is itself a relation.
		if threads && rel == "" {
			roots = append(roots, ev.EventID())
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	vis := a.engine.VisibilityFor(viewer)
	out := map[string]map[string]any{}
	set := func(id, key string, v any) {
		if out[id] == nil {
			out[id] = map[string]any{}
		}
		out[id][key] = v
	}

	children, err := a.store.RelationChildren(ctx, ids, Replace, Reference)
	if err != nil {
		return nil, err
	}
	edits := map[string][]store.RelationChild{}
	refs := map[string][]store.RelationChild{}
	for _, c := range children {
		p := parents[c.Parent]
		if p == nil || c.RoomID != p.RoomID().String() {
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

	// References: the visible ones, oldest first.
	if len(refs) > 0 {
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
		for _, id := range ids {
			var chunk []map[string]string
			for _, c := range refs[id] {
				if loaded[c.NID] != nil {
					chunk = append(chunk, map[string]string{"event_id": c.EventID})
				}
			}
			if len(chunk) > 0 {
				set(id, Reference, map[string]any{"chunk": chunk})
			}
		}
	}

	// Edits: the most recent valid visible replacement, by
	// origin_server_ts then event ID. Candidates are tried newest first,
	// one round (one load) for all parents at a time.
	latestEdit := map[string]*rooms.Event{}
	for id, cs := range edits {
		sort.Slice(cs, func(i, j int) bool {
			if cs[i].OriginTS != cs[j].OriginTS {
				return cs[i].OriginTS > cs[j].OriginTS
			}
			return cs[i].EventID > cs[j].EventID
		})
		edits[id] = cs
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
				latestEdit[id] = ev
				delete(edits, id)
			}
		}
	}

	// Threads.
	type summary struct {
		count        int64
		participated bool
		latest       *rooms.Event
	}
	summaries := map[string]*summary{}
	if len(roots) > 0 {
		sums, err := a.store.ThreadSummaries(ctx, roots, viewer)
		if err != nil {
			return nil, err
		}
		var nids []int64
		for _, s := range sums {
			if root := parents[s.Root]; root != nil && s.RoomID == root.RoomID().String() {
				nids = append(nids, s.LatestNID)
			}
		}
		latest, err := a.loadVisible(ctx, vis, nids)
		if err != nil {
			return nil, err
		}
		for _, s := range sums {
			root := parents[s.Root]
			if root == nil || s.RoomID != root.RoomID().String() {
				continue
			}
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
			summaries[s.Root] = &summary{count: s.Count, participated: s.Mine > 0 || root.Sender() == viewer, latest: ev}
		}
	}

	// Render the edits and the latest thread events in one batch; the
	// latter carry their own aggregations (but no threads).
	var toRender []*rooms.Event
	for _, id := range ids {
		if ev := latestEdit[id]; ev != nil {
			toRender = append(toRender, ev)
		}
		if s := summaries[id]; s != nil {
			toRender = append(toRender, s.latest)
		}
	}
	if len(toRender) == 0 {
		return out, nil
	}
	inner := clientevent.Renderer{Loader: a.engine, Relations: func(ctx context.Context, viewer string, evs []*rooms.Event) (map[string]map[string]any, error) {
		return a.bundle(ctx, viewer, evs, false)
	}}
	rendered, err := inner.Render(ctx, toRender, clientevent.Viewer{}, viewer, false)
	if err != nil {
		return nil, err
	}
	i := 0
	for _, id := range ids {
		if latestEdit[id] != nil {
			set(id, Replace, rendered[i])
			i++
		}
		if s := summaries[id]; s != nil {
			set(id, Thread, map[string]any{"latest_event": rendered[i], "count": s.count, "current_user_participated": s.participated})
			i++
		}
	}
	return out, nil
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
		if ev.Status != store.EventAccepted {
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
		nids := make([]int64, len(rows))
		for i, r := range rows {
			nids[i] = r.NID
		}
		evs, err := a.engine.EventsByNID(ctx, nids)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			ok, err := vis.CanSee(ctx, ev)
			if err != nil {
				return nil, err
			}
			if ok {
				return ev, nil
			}
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
