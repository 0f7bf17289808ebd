package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

func eventIDs(evs any) []string {
	var out []string
	for _, ev := range evs.([]any) {
		out = append(out, ev.(map[string]any)["event_id"].(string))
	}
	return out
}

// TestAdminRoomContext: the admin /context of an event in a room the
// admin is not in, whose history is for joined members only, with the
// client /context's answer; limit halves before and after; a filter
// applies to the timeline; unknown events, events of another room and
// unknown rooms are M_NOT_FOUND.
func TestAdminRoomContext(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		ctx := context.Background()
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "private_chat", InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, StateKey: new(string),
			Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}}}}})
		var m []string
		for _, body := range []string{"m0", "m1", "m2", "m3", "m4"} {
			m = append(m, e.send(e.alice, room, body).String())
		}
		// The client API refuses the admin, who is not in the room.
		if _, err := e.admin.Context(ctx, room, id.EventID(m[2]), nil, 4); err == nil {
			t.Fatal("client /context served an outsider")
		}
		base := admRooms + "/" + room.String() + "/context/"
		c := e.ok("GET", base+url.PathEscape(m[2])+"?limit=4", nil)
		if c["event"].(map[string]any)["event_id"] != m[2] {
			t.Fatalf("event: %v", c["event"])
		}
		if got := eventIDs(c["events_before"]); !slices.Equal(got, []string{m[1], m[0]}) {
			t.Fatalf("events_before %v, want %v", got, m[:2])
		}
		if got := eventIDs(c["events_after"]); !slices.Equal(got, []string{m[3], m[4]}) {
			t.Fatalf("events_after %v, want %v", got, m[3:])
		}
		hv := false
		for _, ev := range c["state"].([]any) {
			hv = hv || ev.(map[string]any)["type"] == "m.room.history_visibility"
		}
		if !hv || c["start"] == nil || c["end"] == nil {
			t.Fatalf("state or tokens missing: %v", c)
		}
		// start continues the admin /messages backwards from m0.
		back := e.ok("GET", admRooms+"/"+room.String()+"/messages?dir=b&limit=1&from="+url.QueryEscape(c["start"].(string)), nil)
		if got := eventIDs(back["chunk"]); len(got) != 1 || slices.Contains(m, got[0]) {
			t.Fatalf("messages from start: %v", got)
		}

		// Without a filter the five before m1 include the room's state
		// events; with one, only messages.
		all := e.ok("GET", base+url.PathEscape(m[1])+"?limit=10", nil)
		if got := eventIDs(all["events_before"]); len(got) != 5 || got[0] != m[0] {
			t.Fatalf("unfiltered events_before: %v", got)
		}
		f := url.QueryEscape(`{"types":["m.room.message"]}`)
		only := e.ok("GET", base+url.PathEscape(m[1])+"?limit=10&filter="+f, nil)
		if got := eventIDs(only["events_before"]); !slices.Equal(got, []string{m[0]}) {
			t.Fatalf("filtered events_before: %v", got)
		}
		if got := eventIDs(only["events_after"]); !slices.Equal(got, m[2:]) {
			t.Fatalf("filtered events_after: %v", got)
		}

		other := e.create(e.bob, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		elsewhere := e.send(e.bob, other, "elsewhere").String()
		for _, path := range []string{
			base + url.PathEscape("$nope:"+e.admin.UserID.Homeserver()),
			base + url.PathEscape(elsewhere),
			admRooms + "/!unknown:example.org/context/" + url.PathEscape(m[2]),
		} {
			status, body := e.do("GET", path, nil)
			testserver.WantError(t, path, status, body, http.StatusNotFound, "M_NOT_FOUND")
		}
		for _, q := range []string{"?limit=-1", "?limit=x", "?filter=%7B", "?filter=3"} {
			status, body := e.do("GET", base+url.PathEscape(m[2])+q, nil)
			if status != http.StatusBadRequest {
				t.Fatalf("%s: %d %v", q, status, body)
			}
		}
	})
}

// TestAdminRoomHierarchy: the admin hierarchy of a space lists both
// its children, the invite-only one the admin (and the space's creator)
// is not in included, which the client /hierarchy hides; limit pages
// with next_batch, max_depth 0 is the space alone.
func TestAdminRoomHierarchy(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		ctx := context.Background()
		space := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space",
			CreationContent: map[string]any{"type": "m.space"}})
		open := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Open"})
		hidden := e.create(e.carol, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Hidden"})
		for _, child := range []id.RoomID{open, hidden} {
			if _, err := e.alice.SendStateEvent(ctx, space, event.StateSpaceChild, child.String(),
				map[string]any{"via": []string{e.alice.UserID.Homeserver()}}); err != nil {
				t.Fatal(err)
			}
		}
		h := e.ok("GET", admRooms+"/"+space.String()+"/hierarchy", nil)
		got := roomIDs(h)
		if len(got) != 3 || got[0] != space.String() || !slices.Contains(got, open.String()) || !slices.Contains(got, hidden.String()) {
			t.Fatalf("admin hierarchy %v, want the space, %s and %s", got, open, hidden)
		}
		if _, ok := h["next_batch"]; ok {
			t.Fatalf("next_batch on the only page: %v", h)
		}
		// The client walk, for the space's creator, hides the room she
		// is not in.
		cl, err := e.alice.Hierarchy(ctx, space, &mautrix.ReqHierarchy{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range cl.Rooms {
			if r.RoomID == hidden {
				t.Fatalf("client hierarchy shows %s", hidden)
			}
		}
		if len(cl.Rooms) != 2 {
			t.Fatalf("client hierarchy: %d rooms", len(cl.Rooms))
		}

		p1 := e.ok("GET", admRooms+"/"+space.String()+"/hierarchy?limit=2", nil)
		next, _ := p1["next_batch"].(string)
		if len(roomIDs(p1)) != 2 || next == "" {
			t.Fatalf("page 1: %v", p1)
		}
		p2 := e.ok("GET", admRooms+"/"+space.String()+"/hierarchy?limit=2&from="+url.QueryEscape(next), nil)
		if rest := roomIDs(p2); len(rest) != 1 || slices.Contains(roomIDs(p1), rest[0]) {
			t.Fatalf("page 2: %v", p2)
		}
		if d0 := roomIDs(e.ok("GET", admRooms+"/"+space.String()+"/hierarchy?max_depth=0", nil)); !slices.Equal(d0, []string{space.String()}) {
			t.Fatalf("max_depth 0: %v", d0)
		}
		status, body := e.do("GET", admRooms+"/!unknown:example.org/hierarchy", nil)
		testserver.WantError(t, "unknown room", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = e.do("GET", admRooms+"/"+space.String()+"/hierarchy?from=junk", nil)
		testserver.WantError(t, "bad from", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})
}

// TestAdminRoomViewsRefuseNonAdmins: context and hierarchy are for
// server admins only, even to a member of the room.
func TestAdminRoomViewsRefuseNonAdmins(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		ev := e.send(e.alice, room, "hi").String()
		for _, path := range []string{
			admRooms + "/" + room.String() + "/context/" + url.PathEscape(ev),
			admRooms + "/" + room.String() + "/hierarchy",
		} {
			status, body := s.Do(t, "GET", path, e.alice.AccessToken, nil)
			testserver.WantError(t, path, status, body, http.StatusForbidden, "M_FORBIDDEN")
			e.ok("GET", path, nil)
		}
	})
}
