package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

func TestPlainTopic(t *testing.T) {
	for _, tc := range []struct{ content, want string }{
		{`{"topic":"plain"}`, "plain"},
		// m.topic (spec v1.15): the text/plain entry, a missing mimetype
		// standing for text/plain.
		{`{"m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>x</b>"},{"body":"x"}]}}`, "x"},
		{`{"m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>x</b>"},{"mimetype":"text/plain","body":"y"}]}}`, "y"},
		{`{"topic":"wins","m.topic":{"m.text":[{"body":"loses"}]}}`, "wins"},
		{`{"m.topic":{"m.text":[{"mimetype":"text/html","body":"<b>x</b>"}]}}`, ""},
		{`{"topic":5}`, ""},
		{`not json`, ""},
	} {
		if got := plainTopic([]byte(tc.content)); got != tc.want {
			t.Errorf("plainTopic(%s) = %q, want %q", tc.content, got, tc.want)
		}
	}
}

func TestValidOrder(t *testing.T) {
	for _, tc := range []struct {
		order string
		want  bool
	}{
		{"", true}, {"a", true}, {" ~", true}, {strings.Repeat("a", 50), true},
		{strings.Repeat("a", 51), false}, {"tab\t", false}, {"\x7f", false}, {"é", false},
	} {
		if got := validOrder(tc.order); got != tc.want {
			t.Errorf("validOrder(%q) = %v, want %v", tc.order, got, tc.want)
		}
	}
}

func TestMatchesPublicFilter(t *testing.T) {
	space := "m.space"
	room := Summary{RoomID: "!abc:hs1.test", Name: "Go Lovers", Topic: "Gophers", CanonicalAlias: "#go:hs1.test"}
	spaceRoom := Summary{RoomID: "!sp:hs1.test", Name: "A space", RoomType: space}
	for _, tc := range []struct {
		what  string
		s     Summary
		term  string
		types []*string
		want  bool
	}{
		{"no filter", room, "", nil, true},
		{"name, any case", room, "go lov", nil, true},
		{"topic", room, "GOPHER", nil, true},
		{"alias", room, "#go:", nil, true},
		{"room ID", room, "!abc", nil, true},
		{"blank term", room, "   ", nil, true},
		{"no match", room, "rust", nil, false},
		{"null type: untyped rooms", room, "", []*string{nil}, true},
		{"null type excludes spaces", spaceRoom, "", []*string{nil}, false},
		{"m.space", spaceRoom, "", []*string{&space}, true},
		{"m.space excludes rooms", room, "", []*string{&space}, false},
		{"term and type both needed", spaceRoom, "go", []*string{&space}, false},
	} {
		if got := matchesPublicFilter(tc.s, tc.term, tc.types); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
	}
}

const alice = "@alice:hs1.test"

type fixture struct {
	db     *store.DB
	engine *rooms.Engine
	svc    *Service
}

func newFixture(t *testing.T, dbURL string) *fixture {
	t.Helper()
	env := roomtest.New(t, dbURL, "12")
	db, engine := env.DB, env.Engine
	return &fixture{db: db, engine: engine, svc: New(engine, db)}
}

func state(typ, key string, content any) rooms.StateEvent {
	raw, _ := json.Marshal(content)
	return rooms.StateEvent{Type: typ, StateKey: key, Content: raw}
}

func (f *fixture) room(t *testing.T, r rooms.CreateRequest) string {
	t.Helper()
	if r.Creator == "" {
		r.Creator = alice
	}
	id, err := f.engine.CreateRoom(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDescribe: a summary from the room's state, as the spec's
// PublishedRoomsChunk and RoomSummary have it.
func TestDescribe(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		name := "Lounge"
		id := f.room(t, rooms.CreateRequest{Preset: "public_chat", Name: &name,
			CreationContent: map[string]json.RawMessage{"type": json.RawMessage(`"m.space"`)},
			InitialState: []rooms.StateEvent{
				state("m.room.topic", "", map[string]any{"m.topic": map[string]any{"m.text": []any{map[string]any{"body": "rich topic"}}}}),
				state("m.room.avatar", "", map[string]any{"url": "mxc://hs1.test/av"}),
				state(spec.MRoomHistoryVisibility, "", map[string]any{"history_visibility": "world_readable"}),
				state("m.room.guest_access", "", map[string]any{"guest_access": "can_join"}),
				state("m.room.encryption", "", map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}),
			}})
		d, err := f.svc.Describe(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := Summary{RoomID: id, Name: "Lounge", Topic: "rich topic", NumJoinedMembers: 1, WorldReadable: true, GuestCanJoin: true,
			AvatarURL: "mxc://hs1.test/av", JoinRule: spec.Public, RoomType: "m.space", RoomVersion: "12", Encryption: "m.megolm.v1.aes-sha2"}
		if fmt.Sprint(d.Summary) != fmt.Sprint(want) {
			t.Fatalf("summary\n got  %+v\n want %+v", d.Summary, want)
		}
		if len(d.State) == 0 {
			t.Fatal("no state with the summary")
		}

		// Restricted: the allowed rooms of m.room_membership rules only.
		restricted := f.room(t, rooms.CreateRequest{Preset: "private_chat", InitialState: []rooms.StateEvent{
			state(spec.MRoomJoinRules, "", map[string]any{"join_rule": "restricted", "allow": []any{
				map[string]any{"type": "m.room_membership", "room_id": id},
				map[string]any{"type": "m.other", "room_id": "!x:hs1.test"},
				map[string]any{"type": "m.room_membership"},
			}}),
		}})
		d, err = f.svc.Describe(ctx, restricted)
		if err != nil {
			t.Fatal(err)
		}
		if d.Summary.JoinRule != spec.Restricted || len(d.Summary.AllowedRoomIDs) != 1 || d.Summary.AllowedRoomIDs[0] != id {
			t.Fatalf("restricted: %+v", d.Summary)
		}
		// private_chat gives guest access (spec presets) but not world-readable history.
		if d.Summary.WorldReadable || !d.Summary.GuestCanJoin || d.Summary.Name != "" {
			t.Fatalf("private room: %+v", d.Summary)
		}

		_, err = f.svc.Describe(ctx, "!unknown:hs1.test")
		if e, ok := mxerr.As(err); !ok || e.Code != "M_NOT_FOUND" {
			t.Fatalf("unknown room: %v", err)
		}
	})
}

// TestPublicRooms: only published rooms a directory may show (public,
// knockable or world-readable, with joined members), the largest first,
// paged by offset tokens; filters; bad tokens and option clashes are
// M_INVALID_PARAM.
func TestPublicRooms(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		var public []string
		for i := range 3 {
			name := fmt.Sprintf("public %d", i)
			id := f.room(t, rooms.CreateRequest{Preset: "public_chat", Name: &name})
			for j := range i {
				u := fmt.Sprintf("@u%d_%d:hs1.test", i, j)
				if _, err := f.engine.SetMembership(ctx, rooms.MembershipRequest{Sender: u, RoomID: id, Target: u, Membership: spec.Join}); err != nil {
					t.Fatal(err)
				}
			}
			public = append(public, id)
		}
		private := f.room(t, rooms.CreateRequest{Preset: "private_chat"})
		unpublished := f.room(t, rooms.CreateRequest{Preset: "public_chat"})
		readable := f.room(t, rooms.CreateRequest{Preset: "private_chat", InitialState: []rooms.StateEvent{
			state(spec.MRoomHistoryVisibility, "", map[string]any{"history_visibility": "world_readable"})}})
		for _, id := range append([]string{private, readable}, public...) {
			if err := f.db.SetRoomPublished(ctx, id, true); err != nil {
				t.Fatal(err)
			}
		}

		resp, err := f.svc.PublicRooms(ctx, PublicRoomsQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range resp.Chunk {
			got = append(got, s.RoomID)
			if s.RoomVersion != "" || s.Encryption != "" {
				t.Errorf("%s: room_version/encryption in a directory entry", s.RoomID)
			}
		}
		// public 2 (3 members), public 1 (2), then the one-member rooms by ID.
		if len(got) != 4 || got[0] != public[2] || got[1] != public[1] || resp.Total != 4 {
			t.Fatalf("listed %v (total %d); public %v, world-readable %s, private %s", got, resp.Total, public, readable, private)
		}
		for _, id := range got {
			if id == private || id == unpublished {
				t.Fatalf("%s (private %s, unpublished %s) was listed", id, private, unpublished)
			}
		}

		limit := 1
		seen := map[string]bool{}
		since := ""
		for page := 0; ; page++ {
			r, err := f.svc.PublicRooms(ctx, PublicRoomsQuery{Limit: &limit, Since: since})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Chunk) != 1 || r.Chunk[0].RoomID != got[page] {
				t.Fatalf("page %d: %v, want %s", page, r.Chunk, got[page])
			}
			seen[r.Chunk[0].RoomID] = true
			if page > 0 && r.PrevBatch == "" {
				t.Fatalf("page %d has no prev_batch", page)
			}
			if r.NextBatch == "" {
				break
			}
			since = r.NextBatch
		}
		if len(seen) != 4 {
			t.Fatalf("paging saw %d rooms", len(seen))
		}

		r, err := f.svc.PublicRooms(ctx, PublicRoomsQuery{Filter: &struct {
			GenericSearchTerm string    `json:"generic_search_term"`
			RoomTypes         []*string `json:"room_types"`
		}{GenericSearchTerm: "PUBLIC 1"}})
		if err != nil || len(r.Chunk) != 1 || r.Chunk[0].RoomID != public[1] {
			t.Fatalf("filtered: %v %v", r.Chunk, err)
		}
		// Past the end: empty, not an error.
		if r, err := f.svc.PublicRooms(ctx, PublicRoomsQuery{Since: "o99"}); err != nil || len(r.Chunk) != 0 {
			t.Fatalf("since past the end: %v %v", r.Chunk, err)
		}
		for _, bad := range []PublicRoomsQuery{{Since: "x1"}, {Since: "o-1"}, {Since: "o"}, {IncludeAllNetworks: true, ThirdPartyInstanceID: "irc"},
			{ThirdPartyInstanceID: "irc"}} { // Synapse's "Invalid ID": not "{appservice id}|{network id}"
			_, err := f.svc.PublicRooms(ctx, bad)
			if e, ok := mxerr.As(err); !ok || e.Code != "M_INVALID_PARAM" {
				t.Errorf("%+v: %v, want M_INVALID_PARAM", bad, err)
			}
		}
		if r, err := f.svc.PublicRooms(ctx, PublicRoomsQuery{ThirdPartyInstanceID: "irc|libera"}); err != nil || len(r.Chunk) != 0 {
			t.Fatalf("another network: %v %v", r.Chunk, err)
		}
	})
}

// TestSpaceChildren: children without a valid via are left out;
// suggested_only keeps suggested ones; the order is a valid order string
// first, then origin_server_ts, then room ID (spec "Spaces").
func TestSpaceChildren(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		via := []string{"hs1.test"}
		space := f.room(t, rooms.CreateRequest{Preset: "public_chat", InitialState: []rooms.StateEvent{
			state("m.space.child", "!d:hs1.test", map[string]any{"via": via}),
			state("m.space.child", "!c:hs1.test", map[string]any{"via": via, "suggested": true}),
			state("m.space.child", "!b:hs1.test", map[string]any{"via": via, "order": "b"}),
			state("m.space.child", "!a:hs1.test", map[string]any{"via": via, "order": "z", "suggested": true}),
			state("m.space.child", "!e:hs1.test", map[string]any{"via": via, "order": "\x01bad"}),
			state("m.space.child", "!removed:hs1.test", map[string]any{}),
			state("m.space.child", "!emptyvia:hs1.test", map[string]any{"via": []string{}}),
			state("m.space.child", "!badvia:hs1.test", map[string]any{"via": []any{1}}),
		}})
		st, err := f.engine.CurrentState(ctx, space)
		if err != nil {
			t.Fatal(err)
		}
		ids := func(suggested bool) []string {
			evs, err := f.svc.SpaceChildren(ctx, st, suggested)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, ev := range evs {
				out = append(out, *ev.StateKey())
			}
			return out
		}
		// The unordered ones were sent in the order d, c, e (so by
		// origin_server_ts, ties by room ID): c, d, e within one
		// millisecond, d, c, e otherwise.
		got := ids(false)
		if len(got) != 5 || got[0] != "!b:hs1.test" || got[1] != "!a:hs1.test" {
			t.Fatalf("children %v", got)
		}
		rest := strings.Join(got[2:], " ")
		if rest != "!c:hs1.test !d:hs1.test !e:hs1.test" && rest != "!d:hs1.test !c:hs1.test !e:hs1.test" {
			t.Fatalf("unordered children %v", got[2:])
		}
		if got := ids(true); strings.Join(got, " ") != "!a:hs1.test !c:hs1.test" {
			t.Fatalf("suggested only: %v", got)
		}
		d, err := f.svc.Describe(ctx, space)
		if err != nil {
			t.Fatal(err)
		}
		children, _ := f.svc.SpaceChildren(ctx, st, false)
		entry := NewHierarchyRoom(d, children)
		if len(entry.ChildrenState) != 5 || entry.ChildrenState[0].StateKey != "!b:hs1.test" || entry.ChildrenState[0].Type != "m.space.child" ||
			entry.ChildrenState[0].OriginServerTS == 0 || entry.ChildrenState[0].Sender != alice {
			t.Fatalf("hierarchy entry: %+v", entry.ChildrenState)
		}
	})
}
