package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/testdb"
)

const (
	alice = "@alice:hs1.test"
	bob   = "@bob:hs1.test"
	carol = "@carol:hs2.test"
)

// fakeAccounts knows alice and bob on hs1.test.
type fakeAccounts struct{}

func (fakeAccounts) LocalpartOf(userID string) (string, bool) {
	lp, server, ok := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	return lp, ok && server == "hs1.test"
}

func (fakeAccounts) Profile(_ context.Context, localpart string) (map[string]json.RawMessage, error) {
	return map[string]json.RawMessage{"displayname": json.RawMessage(`"` + localpart + ` D."`)}, nil
}

func (fakeAccounts) User(_ context.Context, localpart string) (accounts.User, error) {
	if localpart == "alice" || localpart == "bob" {
		return accounts.User{Localpart: localpart, UserID: "@" + localpart + ":hs1.test"}, nil
	}
	return accounts.User{}, accounts.ErrNoSuchUser
}

// remote records what was asked of federation.
type remote struct {
	calls    []string
	via      []string
	content  map[string]any
	stripped []clientevent.Stripped
}

func (r *remote) Join(_ context.Context, userID, roomID string, via []string, content map[string]any) error {
	r.calls, r.via, r.content = append(r.calls, "join "+userID+" "+roomID), via, content
	return nil
}

func (r *remote) Knock(_ context.Context, userID, roomID string, via []string, reason string) error {
	r.calls, r.via = append(r.calls, "knock "+userID+" "+roomID+" "+reason), via
	return nil
}

func (r *remote) Leave(_ context.Context, userID, roomID, reason string) error {
	r.calls = append(r.calls, "leave "+userID+" "+roomID)
	return nil
}

func (r *remote) InviteCountersigner(_ context.Context, roomID, invitee string, state []clientevent.Stripped) (func(context.Context, gomatrixserverlib.PDU) (gomatrixserverlib.PDU, error), error) {
	r.calls, r.stripped = append(r.calls, "invite "+invitee+" "+roomID), state
	// The invitee's server would add its signature; the event is
	// otherwise the same.
	return func(_ context.Context, pdu gomatrixserverlib.PDU) (gomatrixserverlib.PDU, error) { return pdu, nil }, nil
}

type fixture struct {
	engine *rooms.Engine
	remote *remote
	svc    *Service
}

func newFixture(t *testing.T, dbURL string, federated bool) *fixture {
	t.Helper()
	env := roomtest.New(t, dbURL, "12")
	db, engine := env.DB, env.Engine
	f := &fixture{engine: engine, remote: &remote{}}
	o := Options{ServerName: "hs1.test", Rooms: engine, Store: db, Accounts: fakeAccounts{}}
	if federated {
		o.Remote = f.remote
	}
	f.svc = New(o)
	return f
}

func (f *fixture) room(t *testing.T, preset string) string {
	t.Helper()
	name := "Lounge"
	id, err := f.engine.CreateRoom(context.Background(), rooms.CreateRequest{Creator: alice, Preset: preset, Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) membership(t *testing.T, roomID, userID string) string {
	t.Helper()
	m, err := f.engine.MembershipOf(context.Background(), roomID, userID)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if e, ok := mxerr.As(err); !ok || e.Code != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

// TestRouting: a change of a room a local user is joined to is made
// here; one of a room no one here is in goes to the server holding it,
// with the via servers and, for a join, the reason in the content (the
// remote server builds the event); without federation it is made here.
func TestRouting(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, true)
		local := f.room(t, "public_chat")
		if err := f.svc.Join(ctx, bob, local, []string{"hs2.test"}, Reason("hi")); err != nil {
			t.Fatal(err)
		}
		if m := f.membership(t, local, bob); m != spec.Join || len(f.remote.calls) != 0 {
			t.Fatalf("local join: membership %q, remote calls %v", m, f.remote.calls)
		}
		if remote, err := f.svc.Leave(ctx, bob, local, ""); err != nil || remote {
			t.Fatalf("local leave: remote %v, %v", remote, err)
		}
		if m := f.membership(t, local, bob); m != spec.Leave {
			t.Fatalf("after leave: %q", m)
		}

		far := "!far:hs2.test"
		if err := f.svc.Join(ctx, bob, far, []string{"hs2.test"}, Reason("hello")); err != nil {
			t.Fatal(err)
		}
		if len(f.remote.calls) != 1 || f.remote.calls[0] != "join "+bob+" "+far || f.remote.via[0] != "hs2.test" ||
			fmt.Sprint(f.remote.content["reason"]) != fmt.Sprint(json.RawMessage(`"hello"`)) || f.remote.content["displayname"] == nil {
			t.Fatalf("remote join: %v via %v content %v", f.remote.calls, f.remote.via, f.remote.content)
		}
		if err := f.svc.Knock(ctx, bob, far, []string{"hs3.test"}, "let me in"); err != nil {
			t.Fatal(err)
		}
		if f.remote.calls[1] != "knock "+bob+" "+far+" let me in" || f.remote.via[0] != "hs3.test" {
			t.Fatalf("remote knock: %v via %v", f.remote.calls, f.remote.via)
		}

		// Without federation the engine answers: it knows no server to
		// join through.
		off := newFixture(t, dbURL, false)
		wantCode(t, off.svc.Join(ctx, bob, far, []string{"hs2.test"}, nil), "M_NOT_FOUND")
		if len(off.remote.calls) != 0 {
			t.Fatalf("federation off, yet remote calls: %v", off.remote.calls)
		}
	})
}

// TestInvite: a local invitee must exist and gets their profile in the
// event; a joined user cannot be invited; a remote invitee's server is
// asked to countersign, with the room's stripped state including the
// inviter's membership.
func TestInvite(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, true)
		id := f.room(t, "private_chat")
		wantCode(t, f.svc.Invite(ctx, InviteRequest{Sender: alice, RoomID: id, Target: "@nobody:hs1.test"}), "M_NOT_FOUND")
		wantCode(t, f.svc.Invite(ctx, InviteRequest{Sender: alice, RoomID: id, Target: alice}), "M_FORBIDDEN")
		if err := f.svc.Invite(ctx, InviteRequest{Sender: alice, RoomID: id, Target: bob, IsDirect: true}); err != nil {
			t.Fatal(err)
		}
		if m := f.membership(t, id, bob); m != spec.Invite {
			t.Fatalf("bob: %q", m)
		}
		state, err := f.engine.CurrentState(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := f.engine.StateEvent(ctx, state, spec.MRoomMember, bob)
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		_ = json.Unmarshal(ev.Content(), &c)
		if c["displayname"] != "bob D." || c["is_direct"] != true {
			t.Fatalf("invite content: %v", c)
		}
		if len(f.remote.calls) != 0 {
			t.Fatalf("local invite went to federation: %v", f.remote.calls)
		}

		if err := f.svc.Invite(ctx, InviteRequest{Sender: alice, RoomID: id, Target: carol}); err != nil {
			t.Fatal(err)
		}
		if len(f.remote.calls) != 1 || f.remote.calls[0] != "invite "+carol+" "+id || f.membership(t, id, carol) != spec.Invite {
			t.Fatalf("remote invite: %v, membership %q", f.remote.calls, f.membership(t, id, carol))
		}
		var sawName, sawInviter bool
		for _, s := range f.remote.stripped {
			sawName = sawName || s.Type == "m.room.name"
			sawInviter = sawInviter || (s.Type == spec.MRoomMember && s.StateKey == alice)
		}
		if !sawName || !sawInviter {
			t.Fatalf("invite_room_state: name %v, inviter %v: %+v", sawName, sawInviter, f.remote.stripped)
		}
	})
}

// TestKickBanUnban: a kick needs a target in the room, an unban a banned
// one; a ban needs neither.
func TestKickBanUnban(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, false)
		id := f.room(t, "public_chat")
		wantCode(t, f.svc.Kick(ctx, alice, id, bob, nil), "M_FORBIDDEN")
		wantCode(t, f.svc.Unban(ctx, alice, id, bob, ""), "M_FORBIDDEN")
		if err := f.svc.Join(ctx, bob, id, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Kick(ctx, alice, id, bob, Reason("out")); err != nil || f.membership(t, id, bob) != spec.Leave {
			t.Fatalf("kick: %v, %q", err, f.membership(t, id, bob))
		}
		wantCode(t, f.svc.Kick(ctx, alice, id, bob, nil), "M_FORBIDDEN")
		if err := f.svc.Ban(ctx, alice, id, carol, nil); err != nil || f.membership(t, id, carol) != spec.Ban {
			t.Fatalf("ban of someone never in the room: %v, %q", err, f.membership(t, id, carol))
		}
		if err := f.svc.Unban(ctx, alice, id, carol, ""); err != nil || f.membership(t, id, carol) != spec.Leave {
			t.Fatalf("unban: %v, %q", err, f.membership(t, id, carol))
		}
	})
}

// TestPartAll: deactivation leaves every joined room and declines every
// invite.
func TestPartAll(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, true)
		a, b, c := f.room(t, "public_chat"), f.room(t, "public_chat"), f.room(t, "private_chat")
		for _, id := range []string{a, b} {
			if err := f.svc.Join(ctx, bob, id, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.svc.Invite(ctx, InviteRequest{Sender: alice, RoomID: c, Target: bob}); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.PartAll(ctx, bob); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{a, b, c} {
			if m := f.membership(t, id, bob); m != spec.Leave {
				t.Fatalf("%s: %q after PartAll", id, m)
			}
		}
		if len(f.remote.calls) != 0 {
			t.Fatalf("rooms held here went to federation: %v", f.remote.calls)
		}
	})
}

// TestStrippedState: the prejoin types in their order, and the inviter's
// membership only when one is named (invites, not knocks).
func TestStrippedState(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, false)
		id := f.room(t, "public_chat")
		state, err := f.engine.CurrentState(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		types := func(s []clientevent.Stripped) string {
			var out []string
			for _, e := range s {
				out = append(out, e.Type+"|"+e.StateKey)
			}
			return strings.Join(out, ",")
		}
		knock, err := StrippedState(ctx, f.engine, state, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := types(knock), "m.room.create|,m.room.join_rules|,m.room.name|"; got != want {
			t.Fatalf("knock state %s, want %s", got, want)
		}
		invite, err := StrippedState(ctx, f.engine, state, alice)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := types(invite), "m.room.create|,m.room.join_rules|,m.room.name|,m.room.member|"+alice; got != want {
			t.Fatalf("invite state %s, want %s", got, want)
		}
	})
}

// TestForgetAndJoinedRooms: a room can be forgotten only once left (400
// M_UNKNOWN while joined, invited or knocking; 404 if never in it), and
// joined_rooms lists only joined rooms.
func TestForgetAndJoinedRooms(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, false)
		a, b := f.room(t, "public_chat"), f.room(t, "private_chat")
		if err := f.svc.Join(ctx, bob, a, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Invite(ctx, InviteRequest{Sender: alice, RoomID: b, Target: bob}); err != nil {
			t.Fatal(err)
		}
		if ids, err := f.svc.JoinedRooms(ctx, bob); err != nil || len(ids) != 1 || ids[0] != a {
			t.Fatalf("joined rooms %v, %v; want [%s]", ids, err, a)
		}
		for _, id := range []string{a, b} {
			err := f.svc.Forget(ctx, bob, id)
			if e, ok := mxerr.As(err); !ok || e.Code != "M_UNKNOWN" || e.Status != 400 {
				t.Fatalf("forget %s while a member: %v", id, err)
			}
		}
		wantCode(t, f.svc.Forget(ctx, carol, a), "M_NOT_FOUND")
		if _, err := f.svc.Leave(ctx, bob, a, ""); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Forget(ctx, bob, a); err != nil {
			t.Fatalf("forget after leaving: %v", err)
		}
		if ids, err := f.svc.JoinedRooms(ctx, bob); err != nil || len(ids) != 0 {
			t.Fatalf("joined rooms after leaving %v, %v", ids, err)
		}
		// Joining again brings a forgotten room back.
		if err := f.svc.Join(ctx, bob, a, nil, nil); err != nil {
			t.Fatal(err)
		}
		if ids, err := f.svc.JoinedRooms(ctx, bob); err != nil || len(ids) != 1 {
			t.Fatalf("joined rooms after rejoining %v, %v", ids, err)
		}
	})
}

// TestSplitInvites: with federation, remote invitees wait until the room
// exists (their server countersigns); without, all are invited at once.
func TestSplitInvites(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		users := []string{bob, carol, alice}
		now, later := newFixture(t, dbURL, true).svc.SplitInvites(users)
		if strings.Join(now, ",") != bob+","+alice || strings.Join(later, ",") != carol {
			t.Fatalf("federated: at creation %v, afterwards %v", now, later)
		}
		now, later = newFixture(t, dbURL, false).svc.SplitInvites(users)
		if len(now) != 3 || len(later) != 0 {
			t.Fatalf("no federation: at creation %v, afterwards %v", now, later)
		}
	})
}

// TestContentFields: what of a client's body a member event starts from.
func TestContentFields(t *testing.T) {
	c := Content{
		"reason": json.RawMessage(`""`), "displayname": json.RawMessage(`null`), "avatar_url": json.RawMessage(`"mxc://a/b"`),
		"membership": json.RawMessage(`"ban"`), "join_authorised_via_users_server": json.RawMessage(`"@x:y"`),
		"third_party_invite": json.RawMessage(`{}`), "org.example": json.RawMessage(`[1]`),
	}
	got, _ := json.Marshal(c.fields())
	if string(got) != `{"avatar_url":"mxc://a/b","org.example":[1]}` {
		t.Fatalf("fields: %s", got)
	}
	if got, _ := json.Marshal(Reason("why").fields()); string(got) != `{"reason":"why"}` {
		t.Fatalf("Reason: %s", got)
	}
	if Reason("") != nil || len(Content(nil).fields()) != 0 {
		t.Fatalf("an empty reason is no content")
	}
}
