package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const (
	admRooms   = admBase + "/rooms"
	admRoomsV2 = "/_synapse/admin/v2/rooms"
)

func openWithSecret(c *config.Config) {
	c.Registration.SharedSecret, c.Registration.Open = admSecret, true
}

// roomsEnv is a server with an admin and three users.
type roomsEnv struct {
	t                 *testing.T
	s                 *testserver.Server
	admin             *mautrix.Client
	alice, bob, carol *mautrix.Client
}

func newRoomsEnv(t *testing.T, s *testserver.Server) *roomsEnv {
	return &roomsEnv{t: t, s: s, admin: s.RegisterAdmin("root", "pw-root-123"),
		alice: s.Register("alice", "pw-alice-1"), bob: s.Register("bob", "pw-bob-1"), carol: s.Register("carol", "pw-carol-1")}
}

// do calls the admin API as the admin.
func (e *roomsEnv) do(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	return e.s.Do(e.t, method, path, e.admin.AccessToken, body)
}

// ok calls the admin API as the admin and wants 200.
func (e *roomsEnv) ok(method, path string, body any) map[string]any {
	e.t.Helper()
	status, resp := e.do(method, path, body)
	testserver.WantStatus(e.t, method+" "+path, status, resp, http.StatusOK)
	return resp
}

func (e *roomsEnv) create(c *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	e.t.Helper()
	resp, err := c.CreateRoom(context.Background(), req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.RoomID
}

func (e *roomsEnv) send(c *mautrix.Client, room id.RoomID, body string) id.EventID {
	e.t.Helper()
	resp, err := c.SendMessageEvent(context.Background(), room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": body})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.EventID
}

func roomIDs(resp map[string]any) []string {
	var out []string
	for _, r := range resp["rooms"].([]any) {
		out = append(out, r.(map[string]any)["room_id"].(string))
	}
	return out
}

// TestAdminRoomList: GET /_synapse/admin/v1/rooms sorts by name (rooms
// without one last) or any of Synapse's orders, in either direction,
// pages with from/limit (next_batch, prev_batch, total_rooms), and
// searches names and aliases (any case) and exact room IDs.
func TestAdminRoomList(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		ctx := context.Background()
		alpha := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Alpha", RoomAliasName: "alpha", Visibility: "public"})
		beta := e.create(e.bob, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "beta",
			InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{Raw: map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}}}})
		unnamed := e.create(e.carol, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		for _, c := range []*mautrix.Client{e.bob, e.carol} {
			if _, err := c.JoinRoom(ctx, alpha.String(), nil); err != nil {
				t.Fatal(err)
			}
		}

		resp := e.ok("GET", admRooms, nil)
		if got, want := roomIDs(resp), []string{alpha.String(), beta.String(), unnamed.String()}; !slices.Equal(got, want) {
			t.Fatalf("by name: %v, want %v", got, want)
		}
		if resp["total_rooms"] != float64(3) || resp["offset"] != float64(0) || resp["next_batch"] != nil || resp["prev_batch"] != nil {
			t.Fatalf("page fields: %v", resp)
		}
		first := resp["rooms"].([]any)[0].(map[string]any)
		for k, want := range map[string]any{"name": "Alpha", "canonical_alias": "#alpha:hs1.test", "joined_members": float64(3),
			"joined_local_members": float64(3), "creator": e.alice.UserID.String(), "encryption": nil, "federatable": true,
			"public": true, "join_rules": "public", "history_visibility": "shared", "version": s.Config.Rooms.DefaultVersion, "room_type": nil} {
			if first[k] != want {
				t.Errorf("alpha %s = %v, want %v", k, first[k], want)
			}
		}
		if first["state_events"].(float64) < 6 {
			t.Errorf("alpha state_events = %v", first["state_events"])
		}
		if got := roomIDs(e.ok("GET", admRooms+"?dir=b", nil)); !slices.Equal(got, []string{unnamed.String(), beta.String(), alpha.String()}) {
			t.Fatalf("by name backwards: %v", got)
		}
		if got := roomIDs(e.ok("GET", admRooms+"?order_by=joined_members", nil)); got[0] != alpha.String() {
			t.Fatalf("by joined_members: %v", got)
		}
		if got := roomIDs(e.ok("GET", admRooms+"?order_by=encryption", nil)); got[0] != beta.String() {
			t.Fatalf("by encryption: %v", got)
		}
		if got := roomIDs(e.ok("GET", admRooms+"?order_by=public&dir=b", nil)); got[0] != alpha.String() {
			t.Fatalf("by public, backwards: %v", got)
		}

		page := e.ok("GET", admRooms+"?limit=1&from=1", nil)
		if got := roomIDs(page); !slices.Equal(got, []string{beta.String()}) || page["next_batch"] != float64(2) || page["prev_batch"] != float64(0) || page["total_rooms"] != float64(3) {
			t.Fatalf("page 2: %v", page)
		}
		last := e.ok("GET", admRooms+"?limit=1&from=2", nil)
		if last["next_batch"] != nil || last["prev_batch"] != float64(1) {
			t.Fatalf("last page: %v", last)
		}

		huge := e.ok("GET", admRooms+"?from=9223372036854775807&limit=9223372036854775807", nil)
		if len(huge["rooms"].([]any)) != 0 || huge["next_batch"] != nil || huge["total_rooms"] != float64(3) {
			t.Fatalf("huge from and limit: %v", huge)
		}
		all := e.ok("GET", admRooms+"?from=1&limit=9223372036854775807", nil)
		if len(all["rooms"].([]any)) != 2 || all["next_batch"] != nil {
			t.Fatalf("huge limit: %v", all)
		}
		for term, want := range map[string][]string{"ALP": {alpha.String()}, "#alpha": {alpha.String()}, "bet": {beta.String()},
			unnamed.String(): {unnamed.String()}, "nothing-like-this": nil} {
			got := e.ok("GET", admRooms+"?search_term="+url.QueryEscape(term), nil)
			if ids := roomIDs(got); !slices.Equal(ids, want) || got["total_rooms"] != float64(len(want)) {
				t.Errorf("search %q: %v (total %v), want %v", term, ids, got["total_rooms"], want)
			}
		}
		for _, bad := range []string{"?search_term=", "?order_by=size_of_moon", "?dir=x", "?from=-1", "?limit=abc"} {
			status, body := e.do("GET", admRooms+bad, nil)
			testserver.WantError(t, bad, status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}
	})
}

// TestAdminRoomDetails: details (with joined_local_devices and
// forgotten), members, state and messages of a room the admin is not
// in, including history its members' settings hide from outsiders;
// M_NOT_FOUND for rooms the server does not know.
func TestAdminRoomDetails(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		ctx := context.Background()
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Secret", Topic: "plans", Invite: []id.UserID{e.bob.UserID}})
		if _, err := e.bob.JoinRoom(ctx, room.String(), nil); err != nil {
			t.Fatal(err)
		}
		var sent []id.EventID
		for i := range 3 {
			sent = append(sent, e.send(e.alice, room, fmt.Sprintf("msg %d", i)))
		}
		d := e.ok("GET", admRooms+"/"+room.String(), nil)
		for k, want := range map[string]any{"room_id": room.String(), "name": "Secret", "topic": "plans", "avatar": nil,
			"joined_members": float64(2), "joined_local_members": float64(2), "joined_local_devices": float64(2),
			"forgotten": false, "join_rules": "invite", "public": false} {
			if d[k] != want {
				t.Errorf("details %s = %v, want %v", k, d[k], want)
			}
		}
		m := e.ok("GET", admRooms+"/"+room.String()+"/members", nil)
		if fmt.Sprint(m["members"]) != fmt.Sprint([]any{e.alice.UserID.String(), e.bob.UserID.String()}) || m["total"] != float64(2) {
			t.Fatalf("members: %v", m)
		}
		st := e.ok("GET", admRooms+"/"+room.String()+"/state", nil)
		types := map[string]bool{}
		for _, ev := range st["state"].([]any) {
			types[ev.(map[string]any)["type"].(string)] = true
		}
		for _, typ := range []string{"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name", "m.room.topic"} {
			if !types[typ] {
				t.Errorf("state lacks %s: %v", typ, types)
			}
		}

		msgs := e.ok("GET", admRooms+"/"+room.String()+"/messages?dir=b&limit=2", nil)
		chunk := msgs["chunk"].([]any)
		if len(chunk) != 2 || chunk[0].(map[string]any)["event_id"] != sent[2].String() || chunk[1].(map[string]any)["event_id"] != sent[1].String() || msgs["end"] == nil {
			t.Fatalf("messages backwards: %v", msgs)
		}
		more := e.ok("GET", admRooms+"/"+room.String()+"/messages?dir=b&limit=100&from="+url.QueryEscape(msgs["end"].(string)), nil)
		if c := more["chunk"].([]any); len(c) < 5 || c[0].(map[string]any)["event_id"] != sent[0].String() {
			t.Fatalf("messages page 2: %v", more)
		}
		fwd := e.ok("GET", admRooms+"/"+room.String()+"/messages?limit=1", nil)
		if c := fwd["chunk"].([]any); len(c) != 1 || c[0].(map[string]any)["type"] != "m.room.create" {
			t.Fatalf("messages forwards from the start: %v", fwd)
		}
		// The client API refuses the admin, who is not in the room.
		if _, err := e.admin.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 10); err == nil {
			t.Fatal("client /messages let a non-member read a private room")
		}

		// Forgotten once every local member left and forgot it.
		for _, c := range []*mautrix.Client{e.alice, e.bob} {
			if _, err := c.LeaveRoom(ctx, room); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ForgetRoom(ctx, room); err != nil {
				t.Fatal(err)
			}
		}
		if d := e.ok("GET", admRooms+"/"+room.String(), nil); d["forgotten"] != true || d["joined_members"] != float64(0) {
			t.Fatalf("after everyone forgot: %v", d)
		}

		for _, p := range []string{"", "/members", "/state", "/messages", "/forward_extremities", "/timestamp_to_event?ts=1"} {
			status, body := e.do("GET", admRooms+"/!unknown:hs1.test"+p, nil)
			testserver.WantError(t, "unknown room "+p, status, body, http.StatusNotFound, "M_NOT_FOUND")
		}
	})
}

// TestAdminRoomBlock: a blocked room refuses local joins (403 M_UNKNOWN,
// Synapse's words) and invites until unblocked; a room the server does
// not know may be blocked too.
func TestAdminRoomBlock(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		ctx := context.Background()
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		path := admRooms + "/" + room.String() + "/block"
		if b := e.ok("GET", path, nil); b["block"] != false || b["user_id"] != nil {
			t.Fatalf("before: %v", b)
		}
		if b := e.ok("PUT", path, map[string]any{"block": true}); b["block"] != true {
			t.Fatalf("PUT: %v", b)
		}
		if b := e.ok("GET", path, nil); b["block"] != true || b["user_id"] != e.admin.UserID.String() {
			t.Fatalf("after: %v", b)
		}
		_, err := e.bob.JoinRoom(ctx, room.String(), nil)
		testserver.WantHTTPError(t, "join blocked room", err, http.StatusForbidden, "M_UNKNOWN")
		if herr, ok := err.(mautrix.HTTPError); !ok || herr.RespError == nil || herr.RespError.Err != "This room has been blocked on this server" {
			t.Fatalf("join error: %v", err)
		}
		_, err = e.alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: e.carol.UserID})
		testserver.WantHTTPError(t, "invite into blocked room", err, http.StatusForbidden, "M_UNKNOWN")
		// Members may still speak and leave.
		e.send(e.alice, room, "still here")

		e.ok("PUT", path, map[string]any{"block": false})
		if _, err := e.bob.JoinRoom(ctx, room.String(), nil); err != nil {
			t.Fatalf("join after unblock: %v", err)
		}

		unknown := admRooms + "/!nowhere:elsewhere.test/block"
		e.ok("PUT", unknown, map[string]any{"block": true})
		if b := e.ok("GET", unknown, nil); b["block"] != true {
			t.Fatalf("unknown room: %v", b)
		}
		for _, bad := range []any{map[string]any{}, map[string]any{"block": "yes"}} {
			status, body := e.do("PUT", path, bad)
			testserver.WantError(t, fmt.Sprint("PUT ", bad), status, body, http.StatusBadRequest, "M_BAD_JSON")
		}
		status, body := e.do("GET", admRooms+"/not-a-room/block", nil)
		testserver.WantError(t, "bad room ID", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})
}

// waitDeletion polls a deletion's status until it ends; the test's own
// deadline bounds it.
func (e *roomsEnv) waitDeletion(deleteID string) map[string]any {
	e.t.Helper()
	for {
		st := e.ok("GET", admRoomsV2+"/delete_status/"+deleteID, nil)
		switch st["status"] {
		case "complete", "failed":
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdminRoomDeleteV2: a background deletion with a new room moves the
// local members there (where the message is), moves the aliases, blocks
// and purges the room: it is gone from the admin API, /messages, the
// directory, and cannot be joined again; the status endpoints tell it.
func TestAdminRoomDeleteV2(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		ctx := context.Background()
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Bad", RoomAliasName: "bad", Visibility: "public"})
		if _, err := e.bob.JoinRoom(ctx, room.String(), nil); err != nil {
			t.Fatal(err)
		}
		e.send(e.bob, room, "illegal content")

		resp := e.ok("DELETE", admRoomsV2+"/"+room.String(), map[string]any{
			"new_room_user_id": e.admin.UserID.String(), "room_name": "Gone", "message": "Moved you", "block": true, "purge": true})
		deleteID, _ := resp["delete_id"].(string)
		if deleteID == "" {
			t.Fatalf("no delete_id: %v", resp)
		}
		st := e.waitDeletion(deleteID)
		if st["status"] != "complete" {
			t.Fatalf("deletion: %v", st)
		}
		sr := st["shutdown_room"].(map[string]any)
		if fmt.Sprint(sr["kicked_users"]) != fmt.Sprint([]any{e.alice.UserID.String(), e.bob.UserID.String()}) ||
			len(sr["failed_to_kick_users"].([]any)) != 0 || fmt.Sprint(sr["local_aliases"]) != "[#bad:hs1.test]" {
			t.Fatalf("shutdown_room: %v", sr)
		}
		newRoom, _ := sr["new_room_id"].(string)
		byRoom := e.ok("GET", admRoomsV2+"/"+room.String()+"/delete_status", nil)
		if res := byRoom["results"].([]any); len(res) != 1 || res[0].(map[string]any)["delete_id"] != deleteID || res[0].(map[string]any)["status"] != "complete" {
			t.Fatalf("delete_status of room: %v", byRoom)
		}

		// The members are in the new room, which has the message and the alias.
		for _, c := range []*mautrix.Client{e.alice, e.bob} {
			joined, err := c.JoinedRooms(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(joined.JoinedRooms, []id.RoomID{id.RoomID(newRoom)}) {
				t.Fatalf("%s is in %v, want only the new room %s", c.UserID, joined.JoinedRooms, newRoom)
			}
		}
		msgs, err := e.bob.Messages(ctx, id.RoomID(newRoom), "", "", mautrix.DirectionBackward, nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range msgs.Chunk {
			if ev.Type == event.EventMessage && ev.Content.Raw["body"] == "Moved you" && ev.Sender == e.admin.UserID {
				found = true
			}
		}
		if !found {
			t.Fatalf("new room lacks the message: %v", msgs.Chunk)
		}
		if alias, err := e.bob.ResolveAlias(ctx, "#bad:hs1.test"); err != nil || alias.RoomID.String() != newRoom {
			t.Fatalf("alias now: %v, %v", alias, err)
		}
		if d := e.ok("GET", admRooms+"/"+newRoom, nil); d["name"] != "Gone" {
			t.Fatalf("new room: %v", d)
		}
		// Users cannot speak in it (users_default -10).
		if _, err := e.bob.SendMessageEvent(ctx, id.RoomID(newRoom), event.EventMessage, map[string]any{"msgtype": "m.text", "body": "hi"}); err == nil {
			t.Fatal("a moved user could speak in the notification room")
		}

		// The old room is gone.
		for _, p := range []string{"", "/members", "/state", "/messages"} {
			status, body := e.do("GET", admRooms+"/"+room.String()+p, nil)
			testserver.WantError(t, "purged room "+p, status, body, http.StatusNotFound, "M_NOT_FOUND")
		}
		if ids := roomIDs(e.ok("GET", admRooms+"?search_term="+url.QueryEscape(room.String()), nil)); len(ids) != 0 {
			t.Fatalf("purged room still listed: %v", ids)
		}
		if _, err := e.carol.JoinRoom(ctx, room.String(), nil); err == nil {
			t.Fatal("joined a purged room")
		}
		if b := e.ok("GET", admRooms+"/"+room.String()+"/block", nil); b["block"] != true {
			t.Fatalf("block after purge: %v", b)
		}
		pub, err := e.carol.PublicRooms(ctx, &mautrix.ReqPublicRooms{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pub.Chunk {
			if r.RoomID == room {
				t.Fatal("purged room still in the directory")
			}
		}

		// Unknown statuses; bad bodies.
		status, body := e.do("GET", admRoomsV2+"/delete_status/nope", nil)
		testserver.WantError(t, "unknown delete_id", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = e.do("GET", admRoomsV2+"/!other:hs1.test/delete_status", nil)
		testserver.WantError(t, "room without deletion", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = e.do("DELETE", admRoomsV2+"/"+newRoom, map[string]any{"purge": "yes"})
		testserver.WantError(t, "purge not a boolean", status, body, http.StatusBadRequest, "M_BAD_JSON")
		status, body = e.do("DELETE", admRoomsV2+"/!unknown:hs1.test", map[string]any{})
		testserver.WantError(t, "unknown room, no block", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = e.do("DELETE", admRoomsV2+"/"+newRoom, map[string]any{"new_room_user_id": "@someone:elsewhere.test"})
		testserver.WantError(t, "remote new_room_user_id", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})
}

// TestAdminRoomDeleteV1: the synchronous deletion without purge answers
// what it did; the members have left, the room is blocked but kept, and
// a purge of a room with joined members needs force_purge.
func TestAdminRoomDeleteV1(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		ctx := context.Background()
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if _, err := e.bob.JoinRoom(ctx, room.String(), nil); err != nil {
			t.Fatal(err)
		}
		res := e.ok("DELETE", admRooms+"/"+room.String(), map[string]any{"block": true, "purge": false})
		if fmt.Sprint(res["kicked_users"]) != fmt.Sprint([]any{e.alice.UserID.String(), e.bob.UserID.String()}) || res["new_room_id"] != nil {
			t.Fatalf("v1 delete: %v", res)
		}
		d := e.ok("GET", admRooms+"/"+room.String(), nil)
		if d["joined_members"] != float64(0) || d["forgotten"] != true {
			t.Fatalf("after shutdown: %v", d)
		}
		_, err := e.bob.JoinRoom(ctx, room.String(), nil)
		testserver.WantHTTPError(t, "rejoin", err, http.StatusForbidden, "M_UNKNOWN")

		// A room with members is purged only by force.
		other := e.create(e.carol, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		id2 := e.ok("DELETE", admRoomsV2+"/"+other.String(), map[string]any{"purge": true, "force_purge": true})["delete_id"].(string)
		if st := e.waitDeletion(id2); st["status"] != "complete" {
			t.Fatalf("forced purge: %v", st)
		}
		status, body := e.do("GET", admRooms+"/"+other.String(), nil)
		testserver.WantError(t, "purged", status, body, http.StatusNotFound, "M_NOT_FOUND")
		// An unknown room is blocked, nothing else.
		res = e.ok("DELETE", admRooms+"/!never:hs1.test", map[string]any{"block": true})
		if len(res["kicked_users"].([]any)) != 0 {
			t.Fatalf("unknown room: %v", res)
		}
		if b := e.ok("GET", admRooms+"/!never:hs1.test/block", nil); b["block"] != true {
			t.Fatalf("unknown room not blocked: %v", b)
		}
	})
}

// TestAdminMakeRoomAdmin: the room's most powerful local member raises
// the user to their level and invites them into an invite-only room;
// with no local member able to, 400.
func TestAdminMakeRoomAdmin(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		ctx := context.Background()
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "priv"})
		e.ok("POST", admRooms+"/%23priv:hs1.test/make_room_admin", map[string]any{"user_id": e.carol.UserID.String()})
		if _, err := e.carol.JoinRoom(ctx, room.String(), nil); err != nil {
			t.Fatalf("carol could not join after make_room_admin: %v", err)
		}
		// Carol may now change the power levels herself.
		var pl event.PowerLevelsEventContent
		if err := e.carol.StateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatal(err)
		}
		if pl.Users[e.carol.UserID] < 100 {
			t.Fatalf("carol's level %d", pl.Users[e.carol.UserID])
		}
		pl.EventsDefault = 5
		if _, err := e.carol.SendStateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatalf("carol as room admin: %v", err)
		}
		// The admin themself by default, in a public room: no invite needed.
		pub := e.create(e.bob, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		e.ok("POST", admRooms+"/"+pub.String()+"/make_room_admin", nil)
		if _, err := e.admin.JoinRoom(ctx, pub.String(), nil); err != nil {
			t.Fatal(err)
		}
		if err := e.admin.StateEvent(ctx, pub, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatal(err)
		}
		if pl.Users[e.admin.UserID] < 100 {
			t.Fatalf("admin's level %d", pl.Users[e.admin.UserID])
		}
		// Nobody local left with power.
		if _, err := e.bob.LeaveRoom(ctx, pub); err != nil {
			t.Fatal(err)
		}
		if _, err := e.admin.LeaveRoom(ctx, pub); err != nil {
			t.Fatal(err)
		}
		status, body := e.do("POST", admRooms+"/"+pub.String()+"/make_room_admin", map[string]any{"user_id": e.alice.UserID.String()})
		testserver.WantStatus(t, "no local admin", status, body, http.StatusBadRequest)
		status, body = e.do("POST", admRooms+"/%23nope:hs1.test/make_room_admin", nil)
		testserver.WantError(t, "unknown alias", status, body, http.StatusNotFound, "M_NOT_FOUND")
	})
}

// TestAdminRoomExtremitiesAndTimestamp: forward extremities are listed
// (one after local sends: nothing to delete) and timestamp_to_event
// finds the event nearest a time in either direction, 404 past the end.
func TestAdminRoomExtremitiesAndTimestamp(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		last := e.send(e.alice, room, "last")
		x := e.ok("GET", admRooms+"/"+room.String()+"/forward_extremities", nil)
		res := x["results"].([]any)
		if x["count"] != float64(1) || len(res) != 1 || res[0].(map[string]any)["event_id"] != last.String() || res[0].(map[string]any)["depth"].(float64) < 2 {
			t.Fatalf("extremities: %v", x)
		}
		if d := e.ok("DELETE", admRooms+"/"+room.String()+"/forward_extremities", nil); d["deleted"] != float64(0) {
			t.Fatalf("delete: %v", d)
		}
		e.send(e.alice, room, "after")

		now := time.Now().UnixMilli() + 60_000
		got := e.ok("GET", fmt.Sprintf("%s/%s/timestamp_to_event?ts=%d&dir=b", admRooms, room, now), nil)
		if got["event_id"] == nil || got["origin_server_ts"].(float64) > float64(now) {
			t.Fatalf("dir=b: %v", got)
		}
		first := e.ok("GET", fmt.Sprintf("%s/%s/timestamp_to_event?ts=0", admRooms, room), nil)
		st := e.ok("GET", admRooms+"/"+room.String()+"/messages?limit=1", nil)
		if first["event_id"] != st["chunk"].([]any)[0].(map[string]any)["event_id"] {
			t.Fatalf("ts=0 forwards: %v, first event %v", first, st)
		}
		status, body := e.do("GET", fmt.Sprintf("%s/%s/timestamp_to_event?ts=%d&dir=f", admRooms, room, now), nil)
		testserver.WantError(t, "past the end", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = e.do("GET", fmt.Sprintf("%s/%s/timestamp_to_event", admRooms, room), nil)
		testserver.WantStatus(t, "no ts", status, body, http.StatusBadRequest)
	})
}

// TestAdminRoomsRefuseNonAdmins: every room admin route answers a user
// who is not a server admin 403 M_FORBIDDEN, and changes nothing.
func TestAdminRoomsRefuseNonAdmins(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "public_chat"}).String()
		for _, r := range []struct{ method, path string }{
			{"GET", admRooms},
			{"GET", admRooms + "/" + room},
			{"DELETE", admRooms + "/" + room},
			{"GET", admRooms + "/" + room + "/members"},
			{"GET", admRooms + "/" + room + "/state"},
			{"GET", admRooms + "/" + room + "/messages"},
			{"GET", admRooms + "/" + room + "/block"},
			{"PUT", admRooms + "/" + room + "/block"},
			{"POST", admRooms + "/" + room + "/make_room_admin"},
			{"GET", admRooms + "/" + room + "/forward_extremities"},
			{"DELETE", admRooms + "/" + room + "/forward_extremities"},
			{"GET", admRooms + "/" + room + "/timestamp_to_event?ts=0"},
			{"DELETE", admRoomsV2 + "/" + room},
			{"GET", admRoomsV2 + "/" + room + "/delete_status"},
			{"GET", admRoomsV2 + "/delete_status/abc"},
		} {
			status, body := s.Do(t, r.method, r.path, e.alice.AccessToken, map[string]any{"block": true})
			testserver.WantError(t, r.method+" "+r.path, status, body, http.StatusForbidden, "M_FORBIDDEN")
		}
		if d := e.ok("GET", admRooms+"/"+room, nil); d["joined_members"] != float64(1) {
			t.Fatalf("a refused request changed the room: %v", d)
		}
		if b := e.ok("GET", admRooms+"/"+room+"/block", nil); b["block"] != false {
			t.Fatalf("a refused request blocked the room: %v", b)
		}
	})
}
