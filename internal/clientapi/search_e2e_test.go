package clientapi_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testserver"
)

type searchResult struct {
	Rank    float64      `json:"rank"`
	Result  *event.Event `json:"result"`
	Context *struct {
		EventsBefore []*event.Event            `json:"events_before"`
		EventsAfter  []*event.Event            `json:"events_after"`
		Start        string                    `json:"start"`
		End          string                    `json:"end"`
		ProfileInfo  map[string]map[string]any `json:"profile_info"`
	} `json:"context"`
}

type searchGroup struct {
	Results   []id.EventID `json:"results"`
	Order     float64      `json:"order"`
	NextBatch string       `json:"next_batch"`
}

type roomEventsResp struct {
	Count      int64                             `json:"count"`
	Highlights []string                          `json:"highlights"`
	Results    []searchResult                    `json:"results"`
	NextBatch  string                            `json:"next_batch"`
	Groups     map[string]map[string]searchGroup `json:"groups"`
	State      map[string][]*event.Event         `json:"state"`
}

// searchRooms runs POST /search with criteria as room_events.
func searchRooms(t *testing.T, cli *mautrix.Client, criteria map[string]any, nextBatch string) roomEventsResp {
	t.Helper()
	var q map[string]string
	if nextBatch != "" {
		q = map[string]string{"next_batch": nextBatch}
	}
	var resp struct {
		SearchCategories struct {
			RoomEvents roomEventsResp `json:"room_events"`
		} `json:"search_categories"`
	}
	url := cli.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "search"}, q)
	if _, err := cli.MakeRequest(context.Background(), http.MethodPost, url, map[string]any{"search_categories": map[string]any{"room_events": criteria}}, &resp); err != nil {
		t.Fatalf("search %v: %v", criteria, err)
	}
	return resp.SearchCategories.RoomEvents
}

func searchIDs(r roomEventsResp) []id.EventID {
	var out []id.EventID
	for _, res := range r.Results {
		out = append(out, res.Result.ID)
	}
	return out
}

func setVisibility(t *testing.T, cli *mautrix.Client, roomID id.RoomID, hv string) {
	t.Helper()
	if _, err := cli.SendStateEvent(context.Background(), roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": hv}); err != nil {
		t.Fatal(err)
	}
}

// TestSearchHistoryVisibility checks that search finds only what history
// visibility shows: a user who joined later misses earlier messages of a
// "joined" room, finds those of a "shared" one, and never finds anything
// of a room they were never in.
func TestSearchHistoryVisibility(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		joined := relRoom(t, alice)
		setVisibility(t, alice, joined, "joined")
		early := relSend(t, alice, joined, event.EventMessage, relText("apple before"))
		shared := relRoom(t, alice)
		setVisibility(t, alice, shared, "shared")
		sharedOld := relSend(t, alice, shared, event.EventMessage, relText("apple shared history"))
		never := relRoom(t, alice)
		hidden := relSend(t, alice, never, event.EventMessage, relText("apple elsewhere"))
		for _, r := range []id.RoomID{joined, shared} {
			if _, err := bob.JoinRoomByID(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		late := relSend(t, alice, joined, event.EventMessage, relText("apple after"))

		got := searchIDs(searchRooms(t, bob, map[string]any{"search_term": "apple", "order_by": "recent"}, ""))
		if want := []id.EventID{late, sharedOld}; !slices.Equal(got, want) {
			t.Fatalf("bob found %v, want %v (not %s nor %s)", got, want, early, hidden)
		}
		all := searchRooms(t, alice, map[string]any{"search_term": "APPLE", "order_by": "recent"}, "")
		if want := []id.EventID{late, hidden, sharedOld, early}; !slices.Equal(searchIDs(all), want) {
			t.Fatalf("alice found %v, want %v", searchIDs(all), want)
		}
		if all.Count != 4 || !slices.Equal(all.Highlights, []string{"apple"}) {
			t.Fatalf("count %d highlights %v", all.Count, all.Highlights)
		}
		// After leaving, the room's history up to the leave stays searchable.
		if _, err := bob.LeaveRoom(ctx, joined); err != nil {
			t.Fatal(err)
		}
		relSend(t, alice, joined, event.EventMessage, relText("apple gone"))
		got = searchIDs(searchRooms(t, bob, map[string]any{"search_term": "apple", "order_by": "recent"}, ""))
		if want := []id.EventID{late, sharedOld}; !slices.Equal(got, want) {
			t.Fatalf("after leaving bob found %v, want %v", got, want)
		}
	})
}

// TestSearchOrderGroupsAndPages checks rank against recent ordering,
// groupings by room and sender, next_batch pages, keys, the filter,
// event_context with profiles, include_state and redactions.
func TestSearchOrderGroupsAndPages(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		if err := bob.SetDisplayName(ctx, "Bobby"); err != nil {
			t.Fatal(err)
		}
		r1 := relRoom(t, alice, bob)
		r2 := relRoom(t, alice, bob)
		strong := relSend(t, alice, r1, event.EventMessage, relText("kiwi kiwi kiwi kiwi"))
		weak := relSend(t, bob, r2, event.EventMessage, relText("a kiwi among many other words in a rather long message"))

		rank := searchRooms(t, alice, map[string]any{"search_term": "kiwi"}, "")
		if want := []id.EventID{strong, weak}; !slices.Equal(searchIDs(rank), want) {
			t.Fatalf("rank order %v, want %v", searchIDs(rank), want)
		}
		if rank.Results[0].Rank <= rank.Results[1].Rank {
			t.Fatalf("ranks %v, %v", rank.Results[0].Rank, rank.Results[1].Rank)
		}
		recent := searchRooms(t, alice, map[string]any{"search_term": "kiwi", "order_by": "recent",
			"groupings": map[string]any{"group_by": []map[string]string{{"key": "room_id"}, {"key": "sender"}}}}, "")
		if want := []id.EventID{weak, strong}; !slices.Equal(searchIDs(recent), want) {
			t.Fatalf("recent order %v, want %v", searchIDs(recent), want)
		}
		if g := recent.Groups["room_id"][string(r1)]; !slices.Equal(g.Results, []id.EventID{strong}) {
			t.Fatalf("room group %+v", recent.Groups)
		}
		if g := recent.Groups["sender"][string(bob.UserID)]; !slices.Equal(g.Results, []id.EventID{weak}) {
			t.Fatalf("sender group %+v", recent.Groups)
		}

		// Filter: rooms and senders.
		only := searchRooms(t, alice, map[string]any{"search_term": "kiwi", "filter": map[string]any{"rooms": []id.RoomID{r2}}}, "")
		if !slices.Equal(searchIDs(only), []id.EventID{weak}) {
			t.Fatalf("rooms filter: %v", searchIDs(only))
		}
		only = searchRooms(t, alice, map[string]any{"search_term": "kiwi", "filter": map[string]any{"senders": []id.UserID{alice.UserID}}}, "")
		if !slices.Equal(searchIDs(only), []id.EventID{strong}) {
			t.Fatalf("senders filter: %v", searchIDs(only))
		}

		// Pages of two, newest first, until next_batch runs out.
		var grapes []id.EventID
		for i := 0; i < 5; i++ {
			grapes = append(grapes, relSend(t, alice, r1, event.EventMessage, relText("grape "+string(rune('a'+i)))))
		}
		slices.Reverse(grapes)
		for _, order := range []string{"recent", "rank"} {
			var seen []id.EventID
			next, pages := "", 0
			for {
				page := searchRooms(t, alice, map[string]any{"search_term": "grape", "order_by": order, "filter": map[string]any{"limit": 2}}, next)
				pages++
				if len(page.Results) > 2 || pages > 5 {
					t.Fatalf("%s: page %d has %d results", order, pages, len(page.Results))
				}
				seen = append(seen, searchIDs(page)...)
				if next = page.NextBatch; next == "" {
					break
				}
			}
			if pages != 3 {
				t.Fatalf("%s: %d pages", order, pages)
			}
			if order == "recent" && !slices.Equal(seen, grapes) {
				t.Fatalf("recent pages: %v, want %v", seen, grapes)
			}
			sorted := slices.Clone(seen)
			slices.Sort(sorted)
			want := slices.Clone(grapes)
			slices.Sort(want)
			if !slices.Equal(sorted, want) {
				t.Fatalf("%s pages: %v, want %v", order, seen, grapes)
			}
		}
		resp, err := alice.MakeRequest(ctx, http.MethodPost, alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "search"}, map[string]string{"next_batch": "bogus"}),
			map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "grape"}}}, nil)
		if err == nil {
			t.Fatalf("bogus next_batch accepted: %s", resp)
		}

		// event_context around the middle grape, with profiles, and the
		// room's state.
		withCtx := searchRooms(t, alice, map[string]any{"search_term": "grape c", "include_state": true,
			"event_context": map[string]any{"before_limit": 1, "after_limit": 1, "include_profile": true}}, "")
		if len(withCtx.Results) != 1 || withCtx.Results[0].Result.ID != grapes[2] {
			t.Fatalf("grape c: %v", searchIDs(withCtx))
		}
		cx := withCtx.Results[0].Context
		if cx == nil || len(cx.EventsBefore) != 1 || cx.EventsBefore[0].ID != grapes[3] ||
			len(cx.EventsAfter) != 1 || cx.EventsAfter[0].ID != grapes[1] || cx.Start == "" || cx.End == "" {
			t.Fatalf("context: %+v", cx)
		}
		if _, ok := cx.ProfileInfo[string(alice.UserID)]; !ok {
			t.Fatalf("profile_info: %v", cx.ProfileInfo)
		}
		if st := withCtx.State[string(r1)]; ctxStateOf(st, event.StateCreate, "") == nil {
			t.Fatalf("include_state: %v", withCtx.State)
		}
		bobCtx := searchRooms(t, alice, map[string]any{"search_term": "among",
			"event_context": map[string]any{"include_profile": true}}, "")
		if p := bobCtx.Results[0].Context.ProfileInfo[string(bob.UserID)]; p["displayname"] != "Bobby" {
			t.Fatalf("bob's profile_info: %v", bobCtx.Results[0].Context.ProfileInfo)
		}

		// Keys: room names and topics are searched too, each on its own.
		if _, err := alice.SendStateEvent(ctx, r2, event.StateRoomName, "", map[string]any{"name": "Zebra crossing"}); err != nil {
			t.Fatal(err)
		}
		if got := searchRooms(t, alice, map[string]any{"search_term": "zebra", "keys": []string{"content.name"}}, ""); len(got.Results) != 1 {
			t.Fatalf("name search: %v", searchIDs(got))
		}
		if got := searchRooms(t, alice, map[string]any{"search_term": "zebra", "keys": []string{"content.body"}}, ""); len(got.Results) != 0 {
			t.Fatalf("body search found the name: %v", searchIDs(got))
		}

		// A redacted message is no longer found.
		melon := relSend(t, alice, r1, event.EventMessage, relText("melon"))
		if got := searchRooms(t, alice, map[string]any{"search_term": "melon"}, ""); !slices.Equal(searchIDs(got), []id.EventID{melon}) {
			t.Fatalf("melon: %v", searchIDs(got))
		}
		if _, err := alice.RedactEvent(ctx, r1, melon); err != nil {
			t.Fatal(err)
		}
		if got := searchRooms(t, alice, map[string]any{"search_term": "melon"}, ""); len(got.Results) != 0 || got.Count != 0 {
			t.Fatalf("redacted melon found: %v (count %d)", searchIDs(got), got.Count)
		}
	})
}

// TestSearchIndexesExistingEvents checks that events stored while the
// index was behind (here: emptied, as before search existed) are indexed
// on the next start.
func TestSearchIndexesExistingEvents(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		r := relRoom(t, alice)
		ev := relSend(t, alice, r, event.EventMessage, relText("persimmon"))
		if got := searchRooms(t, alice, map[string]any{"search_term": "persimmon"}, ""); !slices.Equal(searchIDs(got), []id.EventID{ev}) {
			t.Fatalf("before restart: %v", searchIDs(got))
		}
		s.Stop()
		db, err := store.Open(context.Background(), s.Config.DatabaseURL(), 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.ResetSearchIndex(context.Background()); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s.Restart()
		s.Repoint(alice)
		if got := searchRooms(t, alice, map[string]any{"search_term": "persimmon"}, ""); !slices.Equal(searchIDs(got), []id.EventID{ev}) {
			t.Fatalf("after re-indexing: %v", searchIDs(got))
		}
	})
}
