package rooms

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// The cast of the auth rule tests. Users on a.test are local to the
// engine under test; b.test plays a remote server whose events arrive
// through Receive.
const (
	userAlice = "@alice:a.test" // creates every room
	userBob   = "@bob:a.test"
	userCarol = "@carol:a.test"
	userDave  = "@dave:a.test" // power 10 in standard rooms
	userMod   = "@mod:a.test"  // power 50 in standard rooms
	userMod2  = "@mod2:a.test" // power 50 in standard rooms
	userRob   = "@rob:b.test"
	userRita  = "@rita:b.test"
)

// versionGroups are the room versions as the spec groups them by what
// changed in their auth rules and event formats.
var versionGroups = []struct {
	name     string
	versions []int
}{
	{"v1-2", []int{1, 2}},
	{"v3-5", []int{3, 4, 5}},
	{"v6-7", []int{6, 7}},
	{"v8-10", []int{8, 9, 10}},
	{"v11", []int{11}},
	{"v12", []int{12}},
}

// eachVersion runs fn once per room version, grouped, on one engine per
// database engine; the versions run in parallel.
func eachVersion(t *testing.T, fn func(t *testing.T, env *authEnv)) {
	eachVersionOpt(t, true, fn)
}

func eachVersionOpt(t *testing.T, parallel bool, fn func(t *testing.T, env *authEnv)) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		e, db, _ := newTestEngine(t, dbURL)
		keys := map[string]ed25519.PrivateKey{"a.test": e.opts.PrivateKey}
		for _, s := range []string{"b.test", "c.test"} {
			_, keys[s], _ = ed25519.GenerateKey(nil)
		}
		for _, g := range versionGroups {
			t.Run(g.name, func(t *testing.T) {
				if parallel {
					t.Parallel()
				}
				for _, n := range g.versions {
					t.Run("v"+strconv.Itoa(n), func(t *testing.T) {
						if parallel {
							t.Parallel()
						}
						v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(strconv.Itoa(n)))
						if err != nil {
							t.Fatal(err)
						}
						fn(t, &authEnv{e: e, db: db, ver: n, v: v, keys: keys})
					})
				}
			})
		}
	})
}

// authEnv is one room version on one engine.
type authEnv struct {
	e    *Engine
	db   *store.DB
	ver  int
	v    gomatrixserverlib.IRoomVersion
	keys map[string]ed25519.PrivateKey
}

// roomSpec describes a room for a test case.
type roomSpec struct {
	preset   string         // default public_chat
	pl       map[string]any // power_level_content_override
	users    map[string]int // power levels of users other than the creator
	creation map[string]any
	join     []string       // local users who join after creation (a public room)
	remote   []string       // remote users who join (over Receive) after them
	joinRule map[string]any // m.room.join_rules content sent last
}

// testRoom is a room under test.
type authRoom struct {
	*authEnv
	t  *testing.T
	id string
}

// room creates a room as alice. Its power levels give alice 100 (before
// v12, where the creator has infinite power and may not be listed), mod
// and mod2 50, dave 10, and let anyone at 50 change the power levels.
func (env *authEnv) room(t *testing.T, rs roomSpec) *authRoom {
	t.Helper()
	ctx := context.Background()
	users := map[string]int{userMod: 50, userMod2: 50, userDave: 10}
	for u, l := range rs.users {
		users[u] = l
	}
	if env.ver < 12 {
		if _, ok := users[userAlice]; !ok {
			users[userAlice] = 100
		}
	}
	override := map[string]json.RawMessage{}
	override["users"], _ = json.Marshal(users)
	override["events"], _ = json.Marshal(map[string]int{spec.MRoomPowerLevels: 50, "m.room.history_visibility": 100, "m.room.tombstone": 100})
	for k, v := range rs.pl {
		override[k], _ = json.Marshal(v)
	}
	creation := map[string]json.RawMessage{}
	for k, v := range rs.creation {
		creation[k], _ = json.Marshal(v)
	}
	preset := rs.preset
	if preset == "" {
		preset = PresetPublicChat
	}
	id, err := env.e.CreateRoom(ctx, CreateRequest{Creator: userAlice, Version: strconv.Itoa(env.ver), Preset: preset,
		PowerLevelOverride: override, CreationContent: creation})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	r := &authRoom{authEnv: env, t: t, id: id}
	for _, u := range rs.join {
		r.mustMember(u, u, spec.Join, nil)
	}
	for _, u := range rs.remote {
		r.mustRecv(u, spec.MRoomMember, strp(u), map[string]any{"membership": spec.Join})
	}
	if rs.joinRule != nil {
		r.mustSend(userAlice, spec.MRoomJoinRules, strp(""), rs.joinRule)
	}
	return r
}

// remoteRoom receives the create event of a room made by rob on b.test.
func (env *authEnv) remoteRoom(t *testing.T, content map[string]any) (*authRoom, gomatrixserverlib.PDU, *Event, error) {
	t.Helper()
	roomID := ""
	if env.ver < 12 {
		roomID = "!" + randomString(12) + ":b.test"
	}
	r := &authRoom{authEnv: env, t: t, id: roomID}
	create := r.build(userRob, spec.MRoomCreate, strp(""), content, []string{}, []string{}, 1)
	r.id = create.RoomID().String()
	ev, err := env.e.Receive(context.Background(), create)
	return r, create, ev, err
}

func (r *authRoom) send(sender, typ string, stateKey *string, content any) (*Event, error) {
	return r.e.Send(context.Background(), SendRequest{RoomID: r.id, Sender: sender, Type: typ, StateKey: stateKey, Content: content})
}

func (r *authRoom) mustSend(sender, typ string, stateKey *string, content any) *Event {
	r.t.Helper()
	ev, err := r.send(sender, typ, stateKey, content)
	if err != nil {
		r.t.Fatalf("%s sending %s: %v", sender, typ, err)
	}
	return ev
}

func (r *authRoom) member(sender, target, memberContent string, extra map[string]any) (*Event, error) {
	return r.e.SetMembership(context.Background(), MembershipRequest{Sender: sender, RoomID: r.id, Target: target, Membership: memberContent, Content: extra})
}

func (r *authRoom) mustMember(sender, target, memberContent string, extra map[string]any) *Event {
	r.t.Helper()
	ev, err := r.member(sender, target, memberContent, extra)
	if err != nil {
		r.t.Fatalf("%s setting %s's membership to %s: %v", sender, target, memberContent, err)
	}
	return ev
}

// head is the room's forward extremities and depth.
func (r *authRoom) head() ([]string, int64) {
	h, err := r.e.lockRoom(context.Background(), r.id)
	if err != nil {
		r.t.Fatal(err)
	}
	defer r.e.unlockRoom(h)
	return append([]string{}, h.extremities...), h.depth
}

// state returns the current state event for a key, nil if none.
func (r *authRoom) state(typ, stateKey string) *Event {
	r.t.Helper()
	st, err := r.e.CurrentState(context.Background(), r.id)
	if err != nil {
		r.t.Fatal(err)
	}
	ev, err := r.e.StateEvent(context.Background(), st, typ, stateKey)
	if err != nil {
		r.t.Fatal(err)
	}
	return ev
}

// specAuthKeys is the spec's auth events selection (server-server API,
// "Auth events selection"), written out independently of the engine.
func specAuthKeys(ver int, sender, typ string, stateKey *string, content map[string]any) []roommodel.StateKey {
	if typ == spec.MRoomCreate {
		return nil
	}
	var keys []roommodel.StateKey
	if ver < 12 {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomCreate})
	}
	keys = append(keys, roommodel.StateKey{Type: spec.MRoomPowerLevels}, roommodel.StateKey{Type: spec.MRoomMember, StateKey: sender})
	if typ != spec.MRoomMember || stateKey == nil {
		return keys
	}
	memberContent, _ := content["membership"].(string)
	if memberContent == spec.Join || memberContent == spec.Invite || memberContent == spec.Knock {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomJoinRules})
	}
	if *stateKey != sender {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomMember, StateKey: *stateKey})
	}
	if tpi, ok := content["third_party_invite"].(map[string]any); ok && memberContent == spec.Invite {
		if signed, ok := tpi["signed"].(map[string]any); ok {
			token, _ := signed["token"].(string)
			keys = append(keys, roommodel.StateKey{Type: spec.MRoomThirdPartyInvite, StateKey: token})
		}
	}
	if via, ok := content["join_authorised_via_users_server"].(string); ok && memberContent == spec.Join && ver >= 8 {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomMember, StateKey: via})
	}
	return keys
}

// authFor selects an event's auth events from the current state.
func (r *authRoom) authFor(sender, typ string, stateKey *string, content map[string]any) []string {
	r.t.Helper()
	st, err := r.e.CurrentState(context.Background(), r.id)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.e.stateIDs(r.t, st, specAuthKeys(r.ver, sender, typ, stateKey, content)...)
}

// build makes an event as the sender's server would, signed by it.
func (r *authRoom) build(sender, typ string, stateKey *string, content any, prevs, auth []string, depth int64) gomatrixserverlib.PDU {
	r.t.Helper()
	server := serverOf(sender)
	rm := remote{server: server, key: r.keys[server]}
	roomID := r.id
	if typ == spec.MRoomCreate && r.ver >= 12 {
		roomID = ""
	}
	return rm.build(r.t, r.v, roomID, sender, typ, stateKey, content, prevs, auth, depth, time.Now())
}

// recvOpts adjust an event built by recv.
type recvOpts struct {
	auth   func(auth []string) []string // rewrites the auth events
	cosign string                       // another server that signs the event
}

// recv builds an event on the room's head with correctly selected auth
// events, as the sender's server would, and gives it to Receive.
func (r *authRoom) recv(sender, typ string, stateKey *string, content map[string]any, opts ...recvOpts) (*Event, error) {
	r.t.Helper()
	prevs, depth := r.head()
	auth := r.authFor(sender, typ, stateKey, content)
	var o recvOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.auth != nil {
		auth = o.auth(auth)
	}
	pdu := r.build(sender, typ, stateKey, content, prevs, auth, depth+1)
	if o.cosign != "" {
		keyID := gomatrixserverlib.KeyID("ed25519:r")
		if o.cosign == "a.test" {
			keyID = r.e.opts.KeyID
		}
		pdu = pdu.Sign(o.cosign, keyID, r.keys[o.cosign])
	}
	return r.e.Receive(context.Background(), pdu)
}

func (r *authRoom) mustRecv(sender, typ string, stateKey *string, content map[string]any, opts ...recvOpts) *Event {
	r.t.Helper()
	ev, err := r.recv(sender, typ, stateKey, content, opts...)
	if err != nil || ev.Status != roommodel.Accepted {
		r.t.Fatalf("%s's %s over federation: %+v, %v", sender, typ, ev, err)
	}
	return ev
}

// ok turns the result of a local send or of Receive into accepted (true)
// or rejected (false): M_FORBIDDEN from Send, roommodel.Rejected from Receive.
// Anything else fails the test.
func (r *authRoom) ok(ev *Event, err error) bool {
	r.t.Helper()
	if err != nil {
		if me, isMx := mxerr.As(err); isMx && me.Code == "M_FORBIDDEN" {
			return false
		}
		r.t.Fatalf("unexpected error: %v", err)
	}
	switch ev.Status {
	case roommodel.Accepted:
		return true
	case roommodel.Rejected:
		return false
	}
	r.t.Fatalf("event %s was soft-failed", ev.EventID())
	return false
}

// okLocal is ok for a local send the engine refuses before the auth
// rules as a bad request (v12 creators in the power levels' users, 400
// M_BAD_JSON as Synapse answers): that is a refusal too.
func (r *authRoom) okLocal(ev *Event, err error) bool {
	r.t.Helper()
	if me, isMx := mxerr.As(err); isMx && me.Code == "M_BAD_JSON" {
		return false
	}
	return r.ok(ev, err)
}

// Version predicates for expected outcomes.
func allVersions(int) bool { return true }
func noVersion(int) bool   { return false }
func fromVersion(n int) func(int) bool {
	return func(v int) bool { return v >= n }
}
func belowVersion(n int) func(int) bool {
	return func(v int) bool { return v < n }
}

// authCase is one row of the auth rule table: run builds a room,
// submits the event under test and reports whether it was accepted;
// allowed says, per room version, whether the spec accepts it.
type authCase struct {
	name    string
	applies func(v int) bool // nil: every version
	allowed func(v int) bool
	run     func(env *authEnv, t *testing.T) bool
}

func textMsg(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

func memberContent(m string) map[string]any { return map[string]any{"membership": m} }

// thirdPartyInvite sets up an identity server key and returns the
// m.room.third_party_invite content for it and a signer of "signed"
// blocks.
func thirdPartyInvite(t *testing.T) (map[string]any, func(mxid, token string, key ed25519.PrivateKey) map[string]any, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	b64 := base64.RawStdEncoding.EncodeToString(pub)
	content := map[string]any{
		"display_name": "c...@example.org", "key_validity_url": "https://id.test/_matrix/identity/v2/pubkey/isvalid",
		"public_key": b64, "public_keys": []map[string]string{{"public_key": b64, "key_validity_url": "https://id.test/_matrix/identity/v2/pubkey/isvalid"}},
	}
	sign := func(mxid, token string, key ed25519.PrivateKey) map[string]any {
		raw, _ := json.Marshal(map[string]string{"mxid": mxid, "token": token})
		signed, err := gomatrixserverlib.SignJSON("id.test", "ed25519:0", key, raw)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		_ = json.Unmarshal(signed, &out)
		return map[string]any{"display_name": "c...@example.org", "signed": out}
	}
	return content, sign, priv
}

var authCases = []authCase{
	// --- m.room.create and the creator's join ---
	{name: "create/creator joins first", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r, create, _, err := env.remoteRoom(t, map[string]any{"creator": userRob, "room_version": strconv.Itoa(env.ver)})
		if err != nil {
			t.Fatal(err)
		}
		auth := []string{create.EventID()}
		if env.ver >= 12 {
			auth = []string{}
		}
		join := r.build(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join), []string{create.EventID()}, auth, 2)
		return r.ok(env.e.Receive(context.Background(), join))
	}},
	{name: "create/no one else joins straight after the create event", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r, create, _, err := env.remoteRoom(t, map[string]any{"creator": userRob, "room_version": strconv.Itoa(env.ver)})
		if err != nil {
			t.Fatal(err)
		}
		auth := []string{create.EventID()}
		if env.ver >= 12 {
			auth = []string{}
		}
		join := r.build(userRita, spec.MRoomMember, strp(userRita), memberContent(spec.Join), []string{create.EventID()}, auth, 2)
		return r.ok(env.e.Receive(context.Background(), join))
	}},
	// v11 dropped "creator": the sender is the creator.
	{name: "create/without a creator property", allowed: fromVersion(11), run: func(env *authEnv, t *testing.T) bool {
		_, _, ev, err := env.remoteRoom(t, map[string]any{"room_version": strconv.Itoa(env.ver)})
		return err == nil && ev.Status == roommodel.Accepted
	}},
	// v12 room IDs have no domain; before, it must be the sender's.
	{name: "create/room ID domain differs from the sender's", applies: belowVersion(12), allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := &authRoom{authEnv: env, t: t, id: "!" + randomString(12) + ":c.test"}
		create := r.build(userRob, spec.MRoomCreate, strp(""), map[string]any{"creator": userRob, "room_version": strconv.Itoa(env.ver)}, []string{}, []string{}, 1)
		ev, err := env.e.Receive(context.Background(), create)
		return err == nil && ev.Status == roommodel.Accepted
	}},
	{name: "create/local rooms: creator joined, creator property before v11", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		create := r.state(spec.MRoomCreate, "")
		var c map[string]any
		_ = json.Unmarshal(create.Content(), &c)
		if _, has := c["creator"]; has != (env.ver < 11) {
			t.Errorf("create content %s: creator present = %v in v%d", create.Content(), has, env.ver)
		}
		join := r.state(spec.MRoomMember, userAlice)
		if prevs := join.PrevEventIDs(); len(prevs) != 1 || prevs[0] != create.EventID() {
			t.Errorf("the creator's join has prev_events %v, want only the create event", prevs)
		}
		m, _ := join.Membership()
		return m == spec.Join
	}},

	// --- joins ---
	{name: "join/uninvited local user, invite-only room", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{preset: PresetPrivateChat})
		return r.ok(r.member(userBob, userBob, spec.Join, nil))
	}},
	{name: "join/uninvited remote user, invite-only room", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{preset: PresetPrivateChat})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},
	{name: "join/invited remote user, invite-only room", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{preset: PresetPrivateChat})
		r.mustMember(userAlice, userRob, spec.Invite, nil)
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},
	{name: "join/anyone, public room", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.member(userBob, userBob, spec.Join, nil)) && r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},
	{name: "join/banned user, public room", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		r.mustMember(userAlice, userRob, spec.Ban, nil)
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},
	{name: "join/on behalf of someone else", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.send(userAlice, spec.MRoomMember, strp(userBob), memberContent(spec.Join)))
	}},
	{name: "join/m.federate false keeps other servers out", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{creation: map[string]any{"m.federate": false}, join: []string{userBob}})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},
	// Join rules a room version does not know reject every join, even an
	// invited user's ("Otherwise, reject").
	{name: "join/invited user, knock room", allowed: fromVersion(7), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}})
		r.mustMember(userAlice, userBob, spec.Invite, nil)
		return r.ok(r.member(userBob, userBob, spec.Join, nil))
	}},
	{name: "join/invited user, knock_restricted room", allowed: fromVersion(10), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.KnockRestricted, "allow": []any{}}})
		r.mustMember(userAlice, userRob, spec.Invite, nil)
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},

	// --- invites ---
	{name: "invite/below the invite level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"invite": 50}, join: []string{userBob}})
		return r.ok(r.member(userBob, userCarol, spec.Invite, nil))
	}},
	{name: "invite/at the invite level", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"invite": 50}, join: []string{userMod}})
		return r.ok(r.member(userMod, userCarol, spec.Invite, nil))
	}},
	{name: "invite/remote inviter below the invite level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"invite": 50}, remote: []string{userRob}})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRita), memberContent(spec.Invite)))
	}},
	{name: "invite/by a non-member", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRita), memberContent(spec.Invite)))
	}},
	{name: "invite/of a joined user", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userBob}})
		return r.ok(r.member(userAlice, userBob, spec.Invite, nil))
	}},
	{name: "invite/of a banned user", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		r.mustMember(userAlice, userBob, spec.Ban, nil)
		return r.ok(r.member(userAlice, userBob, spec.Invite, nil))
	}},
	{name: "invite/third party, valid signature", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		content, sign, key := thirdPartyInvite(t)
		r.mustSend(userAlice, spec.MRoomThirdPartyInvite, strp("tok"), content)
		return r.ok(r.member(userAlice, userCarol, spec.Invite, map[string]any{"third_party_invite": sign(userCarol, "tok", key)}))
	}},
	{name: "invite/third party, only the single public_key", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		content, sign, key := thirdPartyInvite(t)
		delete(content, "public_keys")
		r.mustSend(userAlice, spec.MRoomThirdPartyInvite, strp("tok"), content)
		return r.ok(r.member(userAlice, userCarol, spec.Invite, map[string]any{"third_party_invite": sign(userCarol, "tok", key)}))
	}},
	{name: "invite/third party, signed by another key", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		content, sign, _ := thirdPartyInvite(t)
		r.mustSend(userAlice, spec.MRoomThirdPartyInvite, strp("tok"), content)
		_, other, _ := ed25519.GenerateKey(nil)
		return r.ok(r.member(userAlice, userCarol, spec.Invite, map[string]any{"third_party_invite": sign(userCarol, "tok", other)}))
	}},
	{name: "invite/third party, mxid is not the target", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		content, sign, key := thirdPartyInvite(t)
		r.mustSend(userAlice, spec.MRoomThirdPartyInvite, strp("tok"), content)
		return r.ok(r.member(userAlice, userCarol, spec.Invite, map[string]any{"third_party_invite": sign(userBob, "tok", key)}))
	}},
	{name: "invite/third party, target banned", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		content, sign, key := thirdPartyInvite(t)
		r.mustSend(userAlice, spec.MRoomThirdPartyInvite, strp("tok"), content)
		r.mustMember(userAlice, userCarol, spec.Ban, nil)
		return r.ok(r.member(userAlice, userCarol, spec.Invite, map[string]any{"third_party_invite": sign(userCarol, "tok", key)}))
	}},
	{name: "invite/third party, sender did not send the third_party_invite", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		content, sign, key := thirdPartyInvite(t)
		r.mustSend(userAlice, spec.MRoomThirdPartyInvite, strp("tok"), content)
		return r.ok(r.member(userMod, userCarol, spec.Invite, map[string]any{"third_party_invite": sign(userCarol, "tok", key)}))
	}},
	// m.room.third_party_invite needs the invite level, not state_default.
	{name: "invite/third_party_invite event at the invite level", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"invite": 0}, join: []string{userBob}})
		content, _, _ := thirdPartyInvite(t)
		return r.ok(r.send(userBob, spec.MRoomThirdPartyInvite, strp("tok"), content))
	}},
	{name: "invite/third_party_invite event below the invite level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"invite": 50}, join: []string{userDave}})
		content, _, _ := thirdPartyInvite(t)
		return r.ok(r.send(userDave, spec.MRoomThirdPartyInvite, strp("tok"), content))
	}},

	// --- kicks ---
	{name: "kick/below the kick level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userDave, userCarol}})
		return r.ok(r.member(userDave, userCarol, spec.Leave, nil))
	}},
	{name: "kick/a lower user", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod, userDave}})
		return r.ok(r.member(userMod, userDave, spec.Leave, nil))
	}},
	{name: "kick/an equal user", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod, userMod2}})
		return r.ok(r.member(userMod, userMod2, spec.Leave, nil))
	}},
	{name: "kick/a higher user", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.member(userMod, userAlice, spec.Leave, nil))
	}},
	{name: "kick/remote moderator kicks a lower local user", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{users: map[string]int{userRob: 50}, remote: []string{userRob}, join: []string{userDave}})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userDave), memberContent(spec.Leave)))
	}},
	{name: "kick/by a non-member", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{users: map[string]int{userRob: 50}, join: []string{userDave}})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userDave), memberContent(spec.Leave)))
	}},

	// --- bans ---
	{name: "ban/below the ban level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userDave, userCarol}})
		return r.ok(r.member(userDave, userCarol, spec.Ban, nil))
	}},
	{name: "ban/a lower user", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod, userCarol}})
		return r.ok(r.member(userMod, userCarol, spec.Ban, nil))
	}},
	{name: "ban/an equal user", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod, userMod2}})
		return r.ok(r.member(userMod, userMod2, spec.Ban, nil))
	}},
	{name: "ban/a higher user", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.member(userMod, userAlice, spec.Ban, nil))
	}},
	{name: "ban/banned user cannot leave", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userCarol}})
		r.mustMember(userAlice, userCarol, spec.Ban, nil)
		return r.ok(r.member(userCarol, userCarol, spec.Leave, nil))
	}},
	{name: "ban/unban at the ban and kick levels", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		r.mustMember(userAlice, userCarol, spec.Ban, nil)
		return r.ok(r.member(userMod, userCarol, spec.Leave, nil))
	}},
	{name: "ban/unban below the ban level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"ban": 60, "kick": 0}, join: []string{userMod}})
		r.mustMember(userAlice, userCarol, spec.Ban, nil)
		return r.ok(r.member(userMod, userCarol, spec.Leave, nil))
	}},
	// An unban is a kick of a banned user: it needs the kick level too,
	// and a higher level than the target's.
	{name: "ban/unban below the kick level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"ban": 50, "kick": 75}, join: []string{userMod}})
		r.mustMember(userAlice, userCarol, spec.Ban, nil)
		return r.ok(r.member(userMod, userCarol, spec.Leave, nil))
	}},
	{name: "ban/unban of a higher user", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{users: map[string]int{userCarol: 75}, join: []string{userMod}})
		r.mustMember(userAlice, userCarol, spec.Ban, nil)
		return r.ok(r.member(userMod, userCarol, spec.Leave, nil))
	}},

	// --- power levels ---
	{name: "power/raise own level above own", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userMod] = 100 })))
	}},
	{name: "power/lower own level", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userMod] = 10 })))
	}},
	{name: "power/change a user at own level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userMod2] = 10 })))
	}},
	{name: "power/remove a user at own level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { delete(pl["users"].(map[string]any), userMod2) })))
	}},
	{name: "power/raise a lower user to own level", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userDave] = 50 })))
	}},
	{name: "power/raise a lower user above own level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userDave] = 60 })))
	}},
	{name: "power/change a named level within own", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["ban"] = 40 })))
	}},
	{name: "power/raise a named level above own", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["kick"] = 60 })))
	}},
	{name: "power/lower a named level that is above own", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"invite": 75}, join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["invite"] = 0 })))
	}},
	{name: "power/event level above own", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["events"].(map[string]any)["m.room.topic"] = 60 })))
	}},
	{name: "power/change the level of an event above own", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["events"].(map[string]any)["m.room.tombstone"] = 50 })))
	}},
	// v6 added notifications to the checked properties.
	{name: "power/notifications level above own", allowed: belowVersion(6), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["notifications"] = map[string]any{"room": 75} })))
	}},
	{name: "power/notifications level currently above own", allowed: belowVersion(6), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"notifications": map[string]int{"room": 75}}, join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["notifications"] = map[string]any{"room": 10} })))
	}},
	{name: "power/notifications level at own lowered", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userMod}})
		return r.ok(r.send(userMod, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["notifications"] = map[string]any{"room": 20} })))
	}},
	{name: "power/creator changes the notifications level", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.send(userAlice, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["notifications"] = map[string]any{"room": 100} })))
	}},
	// v10 requires integers; before, strings holding integers count.
	{name: "power/string user level", allowed: belowVersion(10), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userDave}})
		if !r.ok(r.send(userAlice, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userDave] = "50" }))) {
			return false
		}
		// The string counts as its value: dave may now set the topic.
		if !r.ok(r.send(userDave, "m.room.topic", strp(""), map[string]any{"topic": "dave's"})) {
			t.Errorf("dave at power \"50\" may not send state at 50")
		}
		return true
	}},
	{name: "power/string named level", allowed: belowVersion(10), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.send(userAlice, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["ban"] = "60" })))
	}},
	{name: "power/string event level", allowed: belowVersion(10), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.send(userAlice, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["events"].(map[string]any)["m.room.topic"] = "60" })))
	}},
	{name: "power/users key that is not a user ID", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.send(userAlice, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)["not-a-user"] = 10 })))
	}},
	{name: "power/below the power_levels event level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userDave}})
		return r.ok(r.send(userDave, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userDave] = 0 })))
	}},
	// v12: creators have infinite power and may not be listed in users.
	{name: "power/creator listed in users", allowed: belowVersion(12), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.okLocal(r.send(userAlice, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userAlice] = 100 })))
	}},
	{name: "power/additional creator listed in users", allowed: belowVersion(12), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{creation: map[string]any{"additional_creators": []string{userBob}}})
		return r.okLocal(r.send(userAlice, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userBob] = 50 })))
	}},
	{name: "power/additional creator outranks a level-100 user", allowed: fromVersion(12), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{creation: map[string]any{"additional_creators": []string{userBob}}, users: map[string]int{userCarol: 100}, join: []string{userBob, userCarol}})
		return r.ok(r.member(userBob, userCarol, spec.Ban, nil))
	}},
	{name: "power/level-100 user kicks the creator", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{users: map[string]int{userCarol: 100}, join: []string{userCarol}})
		return r.ok(r.member(userCarol, userAlice, spec.Leave, nil))
	}},
	{name: "power/level-100 user demotes the creator", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{users: map[string]int{userCarol: 100}, join: []string{userCarol}})
		return r.okLocal(r.send(userCarol, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userAlice] = 0 })))
	}},

	// --- other events ---
	{name: "event/message from a non-member", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.recv(userRob, "m.room.message", nil, textMsg("hi")))
	}},
	{name: "event/message from a member", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{remote: []string{userRob}})
		return r.ok(r.recv(userRob, "m.room.message", nil, textMsg("hi")))
	}},
	{name: "event/state below state_default", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{join: []string{userDave}})
		return r.ok(r.send(userDave, "m.room.topic", strp(""), map[string]any{"topic": "t"}))
	}},
	{name: "event/message below its events level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"events_default": 20}, join: []string{userDave}})
		return r.ok(r.send(userDave, "m.room.message", nil, textMsg("hi")))
	}},
	{name: "event/state key of another user", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.send(userAlice, "org.example.profile", strp(userBob), map[string]any{}))
	}},
	{name: "event/state key of the sender", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"state_default": 0}, join: []string{userDave}})
		return r.ok(r.send(userDave, "org.example.profile", strp(userDave), map[string]any{}))
	}},
	// v1-5 special-case m.room.aliases: any server may set its own
	// domain's entry, member or not. v6 removed that: they are plain state.
	{name: "aliases/server not in the room sets its own entry", allowed: belowVersion(6), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.recv(userRob, spec.MRoomAliases, strp("b.test"), map[string]any{"aliases": []string{"#a:b.test"}}))
	}},
	{name: "aliases/member sets another server's entry", allowed: fromVersion(6), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{users: map[string]int{userRob: 50}, remote: []string{userRob}})
		return r.ok(r.recv(userRob, spec.MRoomAliases, strp("c.test"), map[string]any{"aliases": []string{"#a:c.test"}}))
	}},
	{name: "aliases/member below state_default sets own entry", allowed: belowVersion(6), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{remote: []string{userRob}})
		return r.ok(r.recv(userRob, spec.MRoomAliases, strp("b.test"), map[string]any{"aliases": []string{"#a:b.test"}}))
	}},
	{name: "aliases/local creator sets own entry", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		ev, err := r.send(userAlice, spec.MRoomAliases, strp("a.test"), map[string]any{"aliases": []string{"#a:a.test"}})
		if err != nil {
			return r.ok(ev, err)
		}
		// Its auth events are the spec's selection: create (before v12),
		// power levels and the sender's membership, as for any event.
		want := r.authFor(userAlice, spec.MRoomAliases, strp("a.test"), nil)
		got := rawAuthIDs(t, ev)
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("m.room.aliases auth_events %v, want %v", got, want)
		}
		return true
	}},

	// --- knocking (v7) ---
	{name: "knock/local user, knock room", allowed: fromVersion(7), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}})
		return r.ok(r.member(userBob, userBob, spec.Knock, nil))
	}},
	{name: "knock/remote user, knock room", allowed: fromVersion(7), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Knock)))
	}},
	{name: "knock/public room", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{})
		return r.ok(r.member(userBob, userBob, spec.Knock, nil))
	}},
	{name: "knock/invite-only room", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{preset: PresetPrivateChat})
		return r.ok(r.member(userBob, userBob, spec.Knock, nil))
	}},
	{name: "knock/knock_restricted room", allowed: fromVersion(10), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.KnockRestricted, "allow": []any{}}})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Knock)))
	}},
	{name: "knock/for someone else", applies: fromVersion(7), allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}})
		return r.ok(r.send(userAlice, spec.MRoomMember, strp(userBob), memberContent(spec.Knock)))
	}},
	{name: "knock/banned user", applies: fromVersion(7), allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}})
		r.mustMember(userAlice, userBob, spec.Ban, nil)
		return r.ok(r.member(userBob, userBob, spec.Knock, nil))
	}},
	{name: "knock/joined user", applies: fromVersion(7), allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}})
		return r.ok(r.member(userAlice, userAlice, spec.Knock, nil))
	}},
	{name: "knock/knocker is invited, then joins", applies: fromVersion(7), allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}})
		r.mustRecv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Knock))
		if !r.ok(r.member(userAlice, userRob, spec.Invite, nil)) {
			return false
		}
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},
	{name: "knock/knocker cannot join uninvited", applies: fromVersion(7), allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}})
		r.mustRecv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Knock))
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},
	{name: "knock/knocker withdraws", applies: fromVersion(7), allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}})
		r.mustMember(userBob, userBob, spec.Knock, nil)
		return r.ok(r.member(userBob, userBob, spec.Leave, nil))
	}},
	{name: "knock/moderator rejects a knock", applies: fromVersion(7), allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{joinRule: map[string]any{"join_rule": spec.Knock}, join: []string{userMod}})
		r.mustMember(userBob, userBob, spec.Knock, nil)
		return r.ok(r.member(userMod, userBob, spec.Leave, nil))
	}},

	// --- restricted joins (v8) ---
	{name: "restricted/local member of the allowed room", allowed: fromVersion(8), run: func(env *authEnv, t *testing.T) bool {
		a := env.room(t, roomSpec{join: []string{userBob}})
		r := env.room(t, roomSpec{preset: PresetPrivateChat, joinRule: restrictedTo(spec.Restricted, a.id)})
		ev, err := r.member(userBob, userBob, spec.Join, nil)
		if err == nil {
			var c map[string]any
			_ = json.Unmarshal(ev.Content(), &c)
			if c["join_authorised_via_users_server"] != userAlice {
				t.Errorf("join content %s: want join_authorised_via_users_server %s", ev.Content(), userAlice)
			}
		}
		return r.ok(ev, err)
	}},
	{name: "restricted/local non-member of the allowed room", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		a := env.room(t, roomSpec{})
		r := env.room(t, roomSpec{preset: PresetPrivateChat, joinRule: restrictedTo(spec.Restricted, a.id)})
		return r.ok(r.member(userBob, userBob, spec.Join, nil))
	}},
	{name: "restricted/remote join authorised by a joined user with invite power", allowed: fromVersion(8), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{preset: PresetPrivateChat, joinRule: restrictedTo(spec.Restricted, "!other:b.test")})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), map[string]any{"membership": spec.Join, "join_authorised_via_users_server": userAlice},
			recvOpts{cosign: "a.test"}))
	}},
	{name: "restricted/remote join without an authorising user", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{preset: PresetPrivateChat, joinRule: restrictedTo(spec.Restricted, "!other:b.test")})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},
	{name: "restricted/remote join authorised by a non-member", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{preset: PresetPrivateChat, users: map[string]int{userCarol: 100}, joinRule: restrictedTo(spec.Restricted, "!other:b.test")})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), map[string]any{"membership": spec.Join, "join_authorised_via_users_server": userCarol},
			recvOpts{cosign: "a.test"}))
	}},
	{name: "restricted/remote join authorised by a member without invite power", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"invite": 50}, joinRule: restrictedTo(spec.Restricted, "!other:b.test"), join: []string{userDave}})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), map[string]any{"membership": spec.Join, "join_authorised_via_users_server": userDave},
			recvOpts{cosign: "a.test"}))
	}},
	{name: "restricted/invited user joins without authorisation", allowed: fromVersion(8), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{preset: PresetPrivateChat, joinRule: restrictedTo(spec.Restricted, "!other:b.test")})
		r.mustMember(userAlice, userRob, spec.Invite, nil)
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), memberContent(spec.Join)))
	}},
	// knock_restricted (v10): restricted joins and knocking both work.
	{name: "restricted/knock_restricted, local member of the allowed room", allowed: fromVersion(10), run: func(env *authEnv, t *testing.T) bool {
		a := env.room(t, roomSpec{join: []string{userBob}})
		r := env.room(t, roomSpec{preset: PresetPrivateChat, joinRule: restrictedTo(spec.KnockRestricted, a.id)})
		return r.ok(r.member(userBob, userBob, spec.Join, nil))
	}},
	{name: "restricted/knock_restricted, remote authorised join", allowed: fromVersion(10), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{preset: PresetPrivateChat, joinRule: restrictedTo(spec.KnockRestricted, "!other:b.test")})
		return r.ok(r.recv(userRob, spec.MRoomMember, strp(userRob), map[string]any{"membership": spec.Join, "join_authorised_via_users_server": userAlice},
			recvOpts{cosign: "a.test"}))
	}},

	// --- redactions ---
	// v1-2 authorise redactions: the redact level, or the same domain as
	// the redacted event. From v3 every redaction passes the auth rules
	// and the check moves to "Handling redactions".
	{name: "redaction/of another server's event, below the redact level", allowed: fromVersion(3), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{remote: []string{userRob}})
		target := r.mustSend(userAlice, "m.room.message", nil, textMsg("alice's"))
		return r.ok(r.recvRedaction(userRob, target.EventID()))
	}},
	{name: "redaction/of an event from the same server", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{remote: []string{userRob, userRita}})
		target := r.mustRecv(userRita, "m.room.message", nil, textMsg("rita's"))
		return r.ok(r.recvRedaction(userRob, target.EventID()))
	}},
	{name: "redaction/at the redact level", allowed: allVersions, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{users: map[string]int{userRob: 50}, remote: []string{userRob}})
		target := r.mustSend(userAlice, "m.room.message", nil, textMsg("alice's"))
		return r.ok(r.recvRedaction(userRob, target.EventID()))
	}},
	{name: "redaction/below its events level", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{pl: map[string]any{"events": map[string]int{spec.MRoomRedaction: 20, spec.MRoomPowerLevels: 50}}, join: []string{userDave}})
		target := r.mustSend(userDave, "m.room.message", nil, textMsg("dave's"))
		return r.ok(r.e.Send(context.Background(), SendRequest{RoomID: r.id, Sender: userDave, Type: spec.MRoomRedaction, Redacts: target.EventID(), Content: map[string]any{}}))
	}},

	// --- auth_events (checked on receipt) ---
	{name: "auth_events/without the create event", allowed: fromVersion(12), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{remote: []string{userRob}})
		create := r.state(spec.MRoomCreate, "").EventID()
		return r.ok(r.recv(userRob, "m.room.message", nil, textMsg("hi"), recvOpts{auth: func(a []string) []string {
			return slices.DeleteFunc(a, func(id string) bool { return id == create })
		}}))
	}},
	{name: "auth_events/with the create event", allowed: belowVersion(12), run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{remote: []string{userRob}})
		create := r.state(spec.MRoomCreate, "").EventID()
		return r.ok(r.recv(userRob, "m.room.message", nil, textMsg("hi"), recvOpts{auth: func(a []string) []string {
			if !slices.Contains(a, create) {
				a = append(a, create)
			}
			return a
		}}))
	}},
	{name: "auth_events/an entry the selection does not name", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{remote: []string{userRob}})
		jr := r.state(spec.MRoomJoinRules, "").EventID()
		return r.ok(r.recv(userRob, "m.room.message", nil, textMsg("hi"), recvOpts{auth: func(a []string) []string { return append(a, jr) }}))
	}},
	{name: "auth_events/two entries for one key", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{remote: []string{userRob}})
		oldPL := r.state(spec.MRoomPowerLevels, "").EventID()
		r.mustSend(userAlice, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["ban"] = 40 }))
		return r.ok(r.recv(userRob, "m.room.message", nil, textMsg("hi"), recvOpts{auth: func(a []string) []string { return append(a, oldPL) }}))
	}},
	{name: "auth_events/a rejected entry", allowed: noVersion, run: func(env *authEnv, t *testing.T) bool {
		r := env.room(t, roomSpec{remote: []string{userRob}})
		bad, err := r.recv(userRob, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["users"].(map[string]any)[userRob] = 100 }))
		if err != nil || bad.Status != roommodel.Rejected {
			t.Fatalf("rob's power grab: %+v %v, want rejected", bad, err)
		}
		pl := r.state(spec.MRoomPowerLevels, "").EventID()
		return r.ok(r.recv(userRob, "m.room.message", nil, textMsg("hi"), recvOpts{auth: func(a []string) []string {
			return append(slices.DeleteFunc(a, func(id string) bool { return id == pl }), bad.EventID())
		}}))
	}},
}

// restrictedTo is join_rules content restricting a room to members of another.
func restrictedTo(rule, roomID string) map[string]any {
	return map[string]any{"join_rule": rule, "allow": []map[string]string{{"type": "m.room_membership", "room_id": roomID}}}
}

// plWith returns the room's current power levels content, changed by fn.
func (r *authRoom) plWith(fn func(pl map[string]any)) map[string]any {
	r.t.Helper()
	var pl map[string]any
	if err := json.Unmarshal(r.state(spec.MRoomPowerLevels, "").Content(), &pl); err != nil {
		r.t.Fatal(err)
	}
	if pl["users"] == nil {
		pl["users"] = map[string]any{}
	}
	if pl["events"] == nil {
		pl["events"] = map[string]any{}
	}
	fn(pl)
	return pl
}

// recvRedaction receives a redaction built by the sender's server, with
// "redacts" where the room version puts it.
func (r *authRoom) recvRedaction(sender, target string) (*Event, error) {
	r.t.Helper()
	prevs, depth := r.head()
	content := map[string]any{}
	if r.ver >= 11 {
		content["redacts"] = target
	}
	auth := r.authFor(sender, spec.MRoomRedaction, nil, nil)
	server := serverOf(sender)
	b := r.v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
		SenderID: sender, RoomID: r.id, Type: spec.MRoomRedaction, Redacts: target, Content: rawJSONOf(content),
		PrevEvents: prevs, AuthEvents: auth, Depth: depth + 1,
	})
	keyID := gomatrixserverlib.KeyID("ed25519:r")
	if server == "a.test" {
		keyID = r.e.opts.KeyID
	}
	pdu, err := b.Build(time.Now(), spec.ServerName(server), keyID, r.keys[server])
	if err != nil {
		r.t.Fatal(err)
	}
	return r.e.Receive(context.Background(), pdu)
}

// rawAuthIDs is the auth_events list as the event's JSON has it
// (gomatrixserverlib's AuthEventIDs adds the create event in v12).
func rawAuthIDs(t *testing.T, ev gomatrixserverlib.PDU) []string {
	t.Helper()
	if ev.Version() == gomatrixserverlib.RoomVersionV1 || ev.Version() == gomatrixserverlib.RoomVersionV2 {
		return ev.AuthEventIDs()
	}
	var raw struct {
		Auth []string `json:"auth_events"`
	}
	if err := json.Unmarshal(ev.JSON(), &raw); err != nil {
		t.Fatal(err)
	}
	return raw.Auth
}

func rawJSONOf(v any) spec.RawJSON {
	raw, _ := json.Marshal(v)
	return raw
}

// TestAuthRules runs the auth rule table for every room version: each
// case builds its own room and submits one event, locally through
// Send/SetMembership or as another server through Receive, and checks
// the engine accepts or rejects it exactly as the spec's rules for that
// room version say.
func TestAuthRules(t *testing.T) {
	eachVersion(t, func(t *testing.T, env *authEnv) {
		for _, c := range authCases {
			if c.applies != nil && !c.applies(env.ver) {
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				want := c.allowed(env.ver)
				if got := c.run(env, t); got != want {
					verdict := map[bool]string{true: "accepted", false: "rejected"}
					t.Errorf("room version %d: %s, want %s", env.ver, verdict[got], verdict[want])
				}
			})
		}
	})
}

var (
	v1EventID   = regexp.MustCompile(`^\$[A-Za-z0-9]+:a\.test$`)
	hashEventID = regexp.MustCompile(`^\$[A-Za-z0-9+/_-]{43}$`)
)

// referenceHash computes an event's reference hash as the spec describes
// it: redact, drop signatures and unsigned, canonical JSON, sha256.
func referenceHash(t *testing.T, v gomatrixserverlib.IRoomVersion, eventJSON []byte) []byte {
	t.Helper()
	redacted, err := v.RedactEventJSON(eventJSON)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(redacted, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "signatures")
	delete(m, "unsigned")
	raw, _ := json.Marshal(m)
	canonical, err := gomatrixserverlib.CanonicalJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(canonical)
	return sum[:]
}

// TestEventFormatPerVersion checks the event and room ID formats and the
// version-specific event shapes: v1-2 "$id:server" event IDs, v3 standard
// and v4+ URL-safe base64 reference hashes, v11's create without creator
// and redacts in content, v12's room ID derived from the create event
// and auth_events without it.
func TestEventFormatPerVersion(t *testing.T) {
	eachVersion(t, func(t *testing.T, env *authEnv) {
		ctx := context.Background()
		r := env.room(t, roomSpec{join: []string{userBob}})
		msgEv := r.mustSend(userBob, "m.room.message", nil, textMsg("hello"))
		red, err := env.e.Send(ctx, SendRequest{RoomID: r.id, Sender: userBob, Type: spec.MRoomRedaction, Redacts: msgEv.EventID(), Content: map[string]any{"reason": "oops"}})
		if err != nil {
			t.Fatal(err)
		}
		create := r.state(spec.MRoomCreate, "")

		// Room IDs.
		if env.ver >= 12 {
			if r.id != "!"+create.EventID()[1:] {
				t.Errorf("v12 room ID %s, want ! + the create event's ID %s", r.id, create.EventID())
			}
		} else if !regexp.MustCompile(`^![A-Za-z]+:a\.test$`).MatchString(r.id) {
			t.Errorf("room ID %s, want !opaque:a.test", r.id)
		}

		for _, ev := range []*Event{create, r.state(spec.MRoomMember, userAlice), msgEv, red} {
			id := ev.EventID()
			switch {
			case env.ver <= 2:
				if !v1EventID.MatchString(id) {
					t.Errorf("v%d event ID %s, want $opaque:a.test", env.ver, id)
				}
				var raw map[string]json.RawMessage
				_ = json.Unmarshal(ev.JSON(), &raw)
				if string(raw["event_id"]) != strconv.Quote(id) {
					t.Errorf("v1 event JSON carries event_id %s, want %s", raw["event_id"], id)
				}
			default:
				if !hashEventID.MatchString(id) {
					t.Fatalf("v%d event ID %s is not a hash", env.ver, id)
				}
				hash := referenceHash(t, env.v, ev.JSON())
				want := "$" + base64.RawURLEncoding.EncodeToString(hash)
				if env.ver == 3 {
					want = "$" + base64.RawStdEncoding.EncodeToString(hash)
				}
				if id != want {
					t.Errorf("v%d event ID %s, want the reference hash %s", env.ver, id, want)
				}
			}
			// v12 leaves the create event out of auth_events.
			if ev.Type() != spec.MRoomCreate {
				auth := rawAuthIDs(t, ev)
				if has := slices.Contains(auth, create.EventID()); has != (env.ver < 12) {
					t.Errorf("v%d %s auth_events %v: create event included = %v", env.ver, ev.Type(), auth, has)
				}
			}
		}
		// v1-2 events reference other events as [id, hashes] pairs.
		var prevs []json.RawMessage
		var raw struct {
			Prev json.RawMessage `json:"prev_events"`
		}
		_ = json.Unmarshal(msgEv.JSON(), &raw)
		_ = json.Unmarshal(raw.Prev, &prevs)
		if len(prevs) == 0 {
			t.Fatalf("no prev_events in %s", msgEv.JSON())
		}
		if isPair := prevs[0][0] == '['; isPair != (env.ver <= 2) {
			t.Errorf("v%d prev_events %s: reference pairs = %v", env.ver, raw.Prev, isPair)
		}

		// v11 moved redacts into the content; the top-level key stays for
		// older versions (gomatrixserverlib reads either).
		var rc map[string]any
		_ = json.Unmarshal(red.Content(), &rc)
		if _, inContent := rc["redacts"]; inContent != (env.ver >= 11) {
			t.Errorf("v%d redaction content %s: redacts in content = %v", env.ver, red.Content(), inContent)
		}
		if got := redactsOf(red); got != msgEv.EventID() {
			t.Errorf("redaction redacts %q, want %s", got, msgEv.EventID())
		}
	})
}

// TestCanonicalJSONPerVersion: from v6 events must be canonical JSON with
// integers only, in [-(2^53)+1, 2^53-1]; a local event breaking that is
// refused as M_BAD_JSON. Before v6 such values pass.
func TestCanonicalJSONPerVersion(t *testing.T) {
	eachVersion(t, func(t *testing.T, env *authEnv) {
		r := env.room(t, roomSpec{})
		for _, content := range []json.RawMessage{
			json.RawMessage(`{"msgtype":"m.text","body":"x","n":1.5}`),
			json.RawMessage(`{"msgtype":"m.text","body":"x","n":9007199254740992}`),
		} {
			_, err := r.send(userAlice, "m.room.message", nil, content)
			if env.ver < 6 {
				if err != nil {
					t.Errorf("v%d %s: %v, want accepted", env.ver, content, err)
				}
				continue
			}
			if me, ok := mxerr.As(err); !ok || me.Code != "M_BAD_JSON" {
				t.Errorf("v%d %s: %v, want M_BAD_JSON", env.ver, content, err)
			}
		}
	})
}
