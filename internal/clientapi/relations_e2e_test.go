package clientapi_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// relSend sends a message event and returns its ID.
func relSend(t *testing.T, cli *mautrix.Client, roomID id.RoomID, typ event.Type, content map[string]any) id.EventID {
	t.Helper()
	resp, err := cli.SendMessageEvent(context.Background(), roomID, typ, content)
	if err != nil {
		t.Fatalf("send %s: %v", typ.Type, err)
	}
	return resp.EventID
}

func relText(body string) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": body}
}

// relEdit is a replacement of target.
func relEdit(target id.EventID, body string) map[string]any {
	return map[string]any{
		"msgtype": "m.text", "body": "* " + body,
		"m.new_content": map[string]any{"msgtype": "m.text", "body": body},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": target},
	}
}

// relReply is a message in the thread rooted at root.
func relReply(root id.EventID, body string) map[string]any {
	return map[string]any{
		"msgtype": "m.text", "body": body,
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root, "is_falling_back": true,
			"m.in_reply_to": map[string]any{"event_id": root}},
	}
}

func relReaction(target id.EventID, key string) map[string]any {
	return map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": target, "key": key}}
}

func relReference(target id.EventID) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": "see above",
		"m.relates_to": map[string]any{"rel_type": "m.reference", "event_id": target}}
}

// relTick waits until the server clock has moved on, so that the next
// event's origin_server_ts is strictly greater than the last one's.
func relTick() { time.Sleep(3 * time.Millisecond) }

func relIDs(evs []*event.Event) []id.EventID {
	out := make([]id.EventID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func relSameIDs(t *testing.T, what string, got, want []id.EventID) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}

func relFind(evs []*event.Event, eventID id.EventID) *event.Event {
	for _, ev := range evs {
		if ev.ID == eventID {
			return ev
		}
	}
	return nil
}

// relRoom makes a public room of alice that the others join.
func relRoom(t *testing.T, alice *mautrix.Client, others ...*mautrix.Client) id.RoomID {
	t.Helper()
	ctx := context.Background()
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Relations"})
	if err != nil {
		t.Fatalf("createRoom: %v", err)
	}
	for _, o := range others {
		if _, err := o.JoinRoomByID(ctx, created.RoomID); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	return created.RoomID
}

type relThreadsResp struct {
	Chunk     []*event.Event `json:"chunk"`
	NextBatch string         `json:"next_batch"`
}

func relThreads(t *testing.T, cli *mautrix.Client, roomID id.RoomID, query map[string]string) relThreadsResp {
	t.Helper()
	var resp relThreadsResp
	u := cli.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "threads"}, query)
	if _, err := cli.MakeRequest(context.Background(), http.MethodGet, u, nil, &resp); err != nil {
		t.Fatalf("threads %v: %v", query, err)
	}
	return resp
}

// relBigTimeline is an inline sync filter with room for every event of
// these tests in one timeline.
const relBigTimeline = `{"room":{"timeline":{"limit":100}}}`

// TestRelationsEdits checks the m.replace aggregation: the latest valid
// edit (same sender, with m.new_content) is bundled, unchanged content,
// on /event, /messages, /context, /sync and /relations; edits by others
// are ignored; redacting the latest edit falls back to the one before;
// redacting the original drops the aggregation.
func TestRelationsEdits(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		roomID := relRoom(t, alice, bob)

		orig := relSend(t, alice, roomID, event.EventMessage, relText("hello"))
		relTick()
		edit1 := relSend(t, alice, roomID, event.EventMessage, relEdit(orig, "hello, world"))
		relTick()
		edit2 := relSend(t, alice, roomID, event.EventMessage, relEdit(orig, "hello, everyone"))
		relTick()
		// Newer, but invalid: by someone else, and without m.new_content.
		byBob := relSend(t, bob, roomID, event.EventMessage, relEdit(orig, "bob was here"))
		relTick()
		noNew := relSend(t, alice, roomID, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "* oops",
			"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": orig}})

		checkEdit := func(what string, ev *event.Event, want id.EventID) {
			t.Helper()
			if ev == nil {
				t.Fatalf("%s: event missing", what)
			}
			if body, _ := ev.Content.Raw["body"].(string); body != "hello" {
				t.Fatalf("%s: the server replaced the content: %v", what, ev.Content.Raw)
			}
			latest := ev.Unsigned.Relations.GetLatestEdit()
			if want == "" {
				if latest != nil {
					t.Fatalf("%s: unexpected m.replace %s", what, latest.ID)
				}
				return
			}
			if latest == nil || latest.ID != want {
				got := id.EventID("none")
				if latest != nil {
					got = latest.ID
				}
				t.Fatalf("%s: m.replace = %s, want %s", what, got, want)
			}
			if latest.Sender != alice.UserID || latest.Type.Type != event.EventMessage.Type {
				t.Fatalf("%s: m.replace is not a full event: %+v", what, latest)
			}
			if nc, _ := latest.Content.Raw["m.new_content"].(map[string]any); nc == nil {
				t.Fatalf("%s: m.replace lacks its content: %v", what, latest.Content.Raw)
			}
		}

		for _, viewer := range []*mautrix.Client{alice, bob} {
			ev, err := viewer.GetEvent(ctx, roomID, orig)
			if err != nil {
				t.Fatalf("get event: %v", err)
			}
			checkEdit("/event", ev, edit2)
		}
		msgs, err := bob.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 20)
		if err != nil {
			t.Fatalf("messages: %v", err)
		}
		checkEdit("/messages", relFind(msgs.Chunk, orig), edit2)
		// Edits carry no aggregations of their own.
		if e := relFind(msgs.Chunk, edit1); e == nil || e.Unsigned.Relations != nil {
			t.Fatalf("/messages: edit1 missing or aggregated: %+v", e)
		}
		cx, err := bob.Context(ctx, roomID, orig, nil, 2)
		if err != nil {
			t.Fatalf("context: %v", err)
		}
		checkEdit("/context", cx.Event, edit2)
		sync, err := bob.SyncRequest(ctx, 0, "", relBigTimeline, false, "")
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		_, timeline := testserver.JoinedEvents(sync, roomID)
		checkEdit("/sync", relFind(timeline, orig), edit2)

		// /relations lists every child, valid or not, newest first.
		rels, err := bob.GetRelations(ctx, roomID, orig, &mautrix.ReqGetRelations{RelationType: event.RelReplace, Limit: 10})
		if err != nil {
			t.Fatalf("relations: %v", err)
		}
		relSameIDs(t, "m.replace children", relIDs(rels.Chunk), []id.EventID{noNew, byBob, edit2, edit1})
		if rels.NextBatch != "" || rels.RecursionDepth != 0 {
			t.Fatalf("relations: unexpected next_batch %q / recursion_depth %d", rels.NextBatch, rels.RecursionDepth)
		}

		// Redacting the latest edit reverts to the previous one; a later
		// sync (whose token moved past the redaction) sees that too.
		if _, err := alice.RedactEvent(ctx, roomID, edit2); err != nil {
			t.Fatalf("redact edit: %v", err)
		}
		ev, err := bob.GetEvent(ctx, roomID, orig)
		if err != nil {
			t.Fatal(err)
		}
		checkEdit("/event after redacting edit2", ev, edit1)
		rels, err = bob.GetRelations(ctx, roomID, orig, &mautrix.ReqGetRelations{RelationType: event.RelReplace, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		relSameIDs(t, "m.replace children after redaction", relIDs(rels.Chunk), []id.EventID{noNew, byBob, edit1})

		// Redacting the original drops the aggregation altogether.
		if _, err := alice.RedactEvent(ctx, roomID, orig); err != nil {
			t.Fatalf("redact original: %v", err)
		}
		ev, err = bob.GetEvent(ctx, roomID, orig)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Unsigned.Relations.GetLatestEdit() != nil {
			t.Fatalf("redacted original still bundles an edit: %+v", ev.Unsigned.Relations)
		}
	})
}

// TestRelationsThreads checks thread summaries (count, latest event with
// its own aggregations, participation per viewer) and the /threads list
// (latest activity first, include=participated, paging).
func TestRelationsThreads(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		roomID := relRoom(t, alice, bob, carol)

		root1 := relSend(t, alice, roomID, event.EventMessage, relText("root one"))
		root2 := relSend(t, alice, roomID, event.EventMessage, relText("root two"))
		root3 := relSend(t, alice, roomID, event.EventMessage, relText("root three"))
		plain := relSend(t, alice, roomID, event.EventMessage, relText("no thread"))
		r1 := relSend(t, bob, roomID, event.EventMessage, relReply(root1, "bob in one"))
		r2 := relSend(t, alice, roomID, event.EventMessage, relReply(root1, "alice in one"))
		relSend(t, bob, roomID, event.EventMessage, relReply(root2, "bob in two"))
		relSend(t, alice, roomID, event.EventMessage, relReply(root3, "alice in three"))
		// The latest thread event of root1 is edited: its own
		// aggregation shows in latest_event.
		r2edit := relSend(t, alice, roomID, event.EventMessage, relEdit(r2, "alice in thread one"))

		summary := func(cli *mautrix.Client, root id.EventID) *event.ThreadAggregation {
			t.Helper()
			ev, err := cli.GetEvent(ctx, roomID, root)
			if err != nil {
				t.Fatalf("get root: %v", err)
			}
			return ev.Unsigned.Relations.GetThread()
		}
		for _, c := range []struct {
			cli  *mautrix.Client
			root id.EventID
			want bool
		}{{alice, root1, true}, {bob, root1, true}, {carol, root1, false}, {alice, root2, true}, {bob, root2, true}, {bob, root3, false}} {
			th := summary(c.cli, c.root)
			if th == nil {
				t.Fatalf("%s sees no thread summary on %s", c.cli.UserID, c.root)
			}
			if th.CurrentUserParticipated != c.want {
				t.Fatalf("%s on %s: current_user_participated = %v, want %v", c.cli.UserID, c.root, th.CurrentUserParticipated, c.want)
			}
		}
		th := summary(carol, root1)
		if th.Count != 2 || th.LatestEvent == nil || th.LatestEvent.ID != r2 {
			t.Fatalf("root1 summary: %+v", th)
		}
		if th.LatestEvent.RoomID != roomID || th.LatestEvent.Content.Raw["body"] != "alice in one" {
			t.Fatalf("latest_event is not a full client event: %+v", th.LatestEvent)
		}
		if e := th.LatestEvent.Unsigned.Relations.GetLatestEdit(); e == nil || e.ID != r2edit {
			t.Fatalf("latest_event lacks its own m.replace: %+v", th.LatestEvent.Unsigned.Relations)
		}
		if th := summary(alice, plain); th != nil {
			t.Fatalf("an event without thread has a summary: %+v", th)
		}
		// Thread events are not thread roots.
		if th := summary(alice, r1); th != nil {
			t.Fatalf("a thread reply has a summary: %+v", th)
		}

		// The summary is on the roots in /sync and /messages too.
		sync, err := carol.SyncRequest(ctx, 0, "", relBigTimeline, false, "")
		if err != nil {
			t.Fatal(err)
		}
		_, timeline := testserver.JoinedEvents(sync, roomID)
		if ev := relFind(timeline, root1); ev == nil || ev.Unsigned.Relations.GetThread().GetCount() != 2 {
			t.Fatalf("/sync root1 lacks its summary: %+v", ev)
		}
		msgs, err := carol.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 20)
		if err != nil {
			t.Fatal(err)
		}
		if ev := relFind(msgs.Chunk, root2); ev == nil || ev.Unsigned.Relations.GetThread().GetCount() != 1 {
			t.Fatalf("/messages root2 lacks its summary: %+v", ev)
		}

		// /threads: the most recently active first (root3, root2, root1).
		all := relThreads(t, carol, roomID, nil)
		relSameIDs(t, "threads", relIDs(all.Chunk), []id.EventID{root3, root2, root1})
		if all.NextBatch != "" {
			t.Fatalf("threads: unexpected next_batch %q", all.NextBatch)
		}
		if th := all.Chunk[2].Unsigned.Relations.GetThread(); th == nil || th.Count != 2 || th.LatestEvent.ID != r2 {
			t.Fatalf("threads: root1 lacks its summary: %+v", all.Chunk[2].Unsigned)
		}
		// New activity moves a thread to the top.
		relSend(t, carol, roomID, event.EventMessage, relReply(root1, "carol in one"))
		all = relThreads(t, carol, roomID, nil)
		relSameIDs(t, "threads after carol", relIDs(all.Chunk), []id.EventID{root1, root3, root2})

		// Paging one thread at a time.
		var paged []id.EventID
		from := ""
		for i := 0; i < 5; i++ {
			q := map[string]string{"limit": "1"}
			if from != "" {
				q["from"] = from
			}
			page := relThreads(t, alice, roomID, q)
			paged = append(paged, relIDs(page.Chunk)...)
			if page.NextBatch == "" {
				break
			}
			from = page.NextBatch
		}
		relSameIDs(t, "threads paged", paged, []id.EventID{root1, root3, root2})

		// include=participated.
		relSameIDs(t, "bob participated", relIDs(relThreads(t, bob, roomID, map[string]string{"include": "participated"}).Chunk),
			[]id.EventID{root1, root2})
		relSameIDs(t, "carol participated", relIDs(relThreads(t, carol, roomID, map[string]string{"include": "participated"}).Chunk),
			[]id.EventID{root1})
		relSameIDs(t, "alice participated", relIDs(relThreads(t, alice, roomID, map[string]string{"include": "participated"}).Chunk),
			[]id.EventID{root1, root3, root2})

		var resp relThreadsResp
		u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "threads"}, map[string]string{"include": "mine"})
		_, err = alice.MakeRequest(ctx, http.MethodGet, u, nil, &resp)
		testserver.WantHTTPError(t, "include=mine", err, http.StatusBadRequest, "M_INVALID_PARAM")

		// Outsiders may not list a room's threads.
		dave := s.Register("dave", "pw")
		u = dave.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "threads"}, nil)
		_, err = dave.MakeRequest(ctx, http.MethodGet, u, nil, &resp)
		testserver.WantHTTPError(t, "threads of a stranger", err, http.StatusForbidden, "M_FORBIDDEN")
	})
}

// TestRelationsPaging pages /relations both ways, with to, relType and
// eventType filters, and recurse.
func TestRelationsPaging(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		roomID := relRoom(t, alice, bob)

		root := relSend(t, alice, roomID, event.EventMessage, relText("root"))
		var children []id.EventID // oldest first
		for i := 0; i < 5; i++ {
			children = append(children, relSend(t, bob, roomID, event.EventReaction, relReaction(root, strconv.Itoa(i))))
		}
		ref := relSend(t, bob, roomID, event.EventMessage, relReference(root))
		reply := relSend(t, alice, roomID, event.EventMessage, relReply(root, "in thread"))
		children = append(children, ref, reply)
		// Relations of relations, only found with recurse.
		grandchild := relSend(t, bob, roomID, event.EventReaction, relReaction(reply, "deep"))
		greatGrandchild := relSend(t, bob, roomID, event.EventMessage, relReference(grandchild))
		// Noise: an unrelated message and a relation to another event.
		other := relSend(t, alice, roomID, event.EventMessage, relText("other"))
		relSend(t, bob, roomID, event.EventReaction, relReaction(other, "x"))

		newestFirst := make([]id.EventID, len(children))
		for i, c := range children {
			newestFirst[len(children)-1-i] = c
		}

		page := func(req mautrix.ReqGetRelations) []id.EventID {
			t.Helper()
			var got []id.EventID
			for i := 0; i < 10; i++ {
				resp, err := alice.GetRelations(ctx, roomID, root, &req)
				if err != nil {
					t.Fatalf("relations %+v: %v", req, err)
				}
				if len(resp.Chunk) > req.Limit {
					t.Fatalf("relations: %d events for limit %d", len(resp.Chunk), req.Limit)
				}
				if req.From != "" && resp.PrevBatch != req.From {
					t.Fatalf("relations: prev_batch %q, want %q", resp.PrevBatch, req.From)
				}
				got = append(got, relIDs(resp.Chunk)...)
				if resp.NextBatch == "" {
					return got
				}
				req.From = resp.NextBatch
			}
			t.Fatalf("relations never ended")
			return nil
		}
		relSameIDs(t, "backwards", page(mautrix.ReqGetRelations{Limit: 3}), newestFirst)
		relSameIDs(t, "forwards", page(mautrix.ReqGetRelations{Limit: 3, Dir: mautrix.DirectionForward}), children)
		relSameIDs(t, "one page", page(mautrix.ReqGetRelations{Limit: 100}), newestFirst)
		// Without a limit, pages of 5.
		def, err := alice.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{})
		if err != nil {
			t.Fatal(err)
		}
		if len(def.Chunk) != 5 || def.NextBatch == "" || def.PrevBatch != "" {
			t.Fatalf("default page: %d events, next_batch %q, prev_batch %q", len(def.Chunk), def.NextBatch, def.PrevBatch)
		}

		// A to token bounds the walk: from the start to the first page's
		// next_batch is the first page again.
		first, err := alice.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		bounded, err := alice.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{Limit: 10, To: first.NextBatch})
		if err != nil {
			t.Fatal(err)
		}
		relSameIDs(t, "backwards to", relIDs(bounded.Chunk), newestFirst[:3])
		if bounded.NextBatch != "" {
			t.Fatalf("bounded page has next_batch %q", bounded.NextBatch)
		}
		fwd, err := alice.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{Limit: 10, Dir: mautrix.DirectionForward, To: first.NextBatch})
		if err != nil {
			t.Fatal(err)
		}
		relSameIDs(t, "forwards to", relIDs(fwd.Chunk), children[:4])

		// Filters on relType and event type.
		relSameIDs(t, "annotations", page(mautrix.ReqGetRelations{Limit: 2, RelationType: event.RelAnnotation}), newestFirst[2:])
		relSameIDs(t, "annotation reactions", page(mautrix.ReqGetRelations{Limit: 10, RelationType: event.RelAnnotation, EventType: event.EventReaction}), newestFirst[2:])
		relSameIDs(t, "annotation messages", page(mautrix.ReqGetRelations{Limit: 10, RelationType: event.RelAnnotation, EventType: event.EventMessage}), nil)
		relSameIDs(t, "threads", page(mautrix.ReqGetRelations{Limit: 10, RelationType: event.RelThread}), []id.EventID{reply})

		// recurse follows relations of relations.
		deep, err := alice.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{Limit: 20, Recurse: true})
		if err != nil {
			t.Fatal(err)
		}
		relSameIDs(t, "recurse", relIDs(deep.Chunk), append([]id.EventID{greatGrandchild, grandchild}, newestFirst...))
		if deep.RecursionDepth < 3 {
			t.Fatalf("recursion_depth = %d, want at least 3", deep.RecursionDepth)
		}
		deepAnn, err := alice.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{Limit: 20, Recurse: true, RelationType: event.RelAnnotation, Dir: mautrix.DirectionForward})
		if err != nil {
			t.Fatal(err)
		}
		relSameIDs(t, "recurse annotations", relIDs(deepAnn.Chunk), append(append([]id.EventID{}, children[:5]...), grandchild))

		// The m.reference aggregation lists the references.
		ev, err := alice.GetEvent(ctx, roomID, root)
		if err != nil {
			t.Fatal(err)
		}
		if refs := ev.Unsigned.Relations.GetReferences().GetEventIDs(); len(refs) != 1 || refs[0] != ref {
			t.Fatalf("m.reference aggregation = %v, want [%s]", refs, ref)
		}
		if th := ev.Unsigned.Relations.GetThread(); th == nil || th.Count != 1 || th.LatestEvent.ID != reply {
			t.Fatalf("thread summary = %+v", th)
		}

		// Errors: unknown parent, parent of another room, bad parameters.
		_, err = alice.GetRelations(ctx, roomID, "$nope", &mautrix.ReqGetRelations{})
		testserver.WantHTTPError(t, "unknown parent", err, http.StatusNotFound, "M_NOT_FOUND")
		otherRoom := relRoom(t, alice)
		_, err = alice.GetRelations(ctx, otherRoom, root, &mautrix.ReqGetRelations{})
		testserver.WantHTTPError(t, "parent in another room", err, http.StatusNotFound, "M_NOT_FOUND")
		var raw map[string]any
		u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "relations", root}, map[string]string{"dir": "sideways"})
		_, err = alice.MakeRequest(ctx, http.MethodGet, u, nil, &raw)
		testserver.WantHTTPError(t, "dir=sideways", err, http.StatusBadRequest, "M_INVALID_PARAM")
		u = alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "relations", root}, map[string]string{"from": "bogus"})
		_, err = alice.MakeRequest(ctx, http.MethodGet, u, nil, &raw)
		testserver.WantHTTPError(t, "from=bogus", err, http.StatusBadRequest, "M_INVALID_PARAM")
		// recurse=false is answered with its depth, 1.
		u = alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "relations", root}, map[string]string{"recurse": "false", "limit": "50"})
		var flat mautrix.RespGetRelations
		if _, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, &flat); err != nil {
			t.Fatal(err)
		}
		if flat.RecursionDepth != 1 || len(flat.Chunk) != len(children) {
			t.Fatalf("recurse=false: depth %d, %d events", flat.RecursionDepth, len(flat.Chunk))
		}
	})
}

// TestRelationsVisibility checks history visibility on /relations,
// thread summaries and /threads: a user who joined after the root under
// "joined" visibility sees neither the root nor its relations, and a
// user who left sees the children up to their leave only.
func TestRelationsVisibility(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		roomID := relRoom(t, alice, bob)
		if _, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "joined"}); err != nil {
			t.Fatalf("history_visibility: %v", err)
		}

		early := relSend(t, alice, roomID, event.EventMessage, relText("before carol"))
		earlyReply := relSend(t, bob, roomID, event.EventMessage, relReply(early, "also before carol"))
		if _, err := carol.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		lateReply := relSend(t, alice, roomID, event.EventMessage, relReply(early, "after carol joined"))

		// carol cannot see the root: 404, as for a missing event.
		_, err := carol.GetRelations(ctx, roomID, early, &mautrix.ReqGetRelations{})
		testserver.WantHTTPError(t, "relations of an invisible root", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = carol.GetRelations(ctx, roomID, early, &mautrix.ReqGetRelations{RelationType: event.RelThread})
		testserver.WantHTTPError(t, "thread of an invisible root", err, http.StatusNotFound, "M_NOT_FOUND")
		if got := relThreads(t, carol, roomID, nil); len(got.Chunk) != 0 {
			t.Fatalf("carol lists an invisible thread: %v", relIDs(got.Chunk))
		}
		// bob sees everything.
		rels, err := bob.GetRelations(ctx, roomID, early, &mautrix.ReqGetRelations{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		relSameIDs(t, "bob's relations", relIDs(rels.Chunk), []id.EventID{lateReply, earlyReply})
		relSameIDs(t, "bob's threads", relIDs(relThreads(t, bob, roomID, nil).Chunk), []id.EventID{early})

		// A root carol can see, whose thread goes on after she leaves.
		root := relSend(t, alice, roomID, event.EventMessage, relText("carol is here"))
		seen := relSend(t, alice, roomID, event.EventMessage, relReply(root, "carol sees this"))
		if _, err := carol.LeaveRoom(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		unseen := relSend(t, alice, roomID, event.EventMessage, relReply(root, "carol is gone"))

		rels, err = carol.GetRelations(ctx, roomID, root, &mautrix.ReqGetRelations{Limit: 10})
		if err != nil {
			t.Fatalf("carol's relations after leaving: %v", err)
		}
		relSameIDs(t, "carol's relations after leaving", relIDs(rels.Chunk), []id.EventID{seen})
		ev, err := carol.GetEvent(ctx, roomID, root)
		if err != nil {
			t.Fatal(err)
		}
		// The latest thread event carol may see stands in for the newest.
		if th := ev.Unsigned.Relations.GetThread(); th == nil || th.LatestEvent == nil || th.LatestEvent.ID != seen {
			t.Fatalf("carol's thread summary: %+v", th)
		}
		ev, err = bob.GetEvent(ctx, roomID, root)
		if err != nil {
			t.Fatal(err)
		}
		if th := ev.Unsigned.Relations.GetThread(); th == nil || th.LatestEvent == nil || th.LatestEvent.ID != unseen || th.Count != 2 {
			t.Fatalf("bob's thread summary: %+v", th)
		}
		relSameIDs(t, "carol's threads after leaving", relIDs(relThreads(t, carol, roomID, nil).Chunk), []id.EventID{root})
	})
}
