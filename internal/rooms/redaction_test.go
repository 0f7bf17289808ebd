package rooms

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// redactionCase is an event to redact and what of it survives, per
// room version.
type redactionCase struct {
	name  string
	event func(r *authRoom) *Event
	// kept and stripped are content keys that must survive the version's
	// redaction algorithm, or must not.
	check func(ver int) (kept, stripped []string)
}

func jsonObject(t *testing.T, raw []byte) map[string]json.RawMessage {
	t.Helper()
	var c map[string]json.RawMessage
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("content %s: %v", raw, err)
	}
	return c
}

func jsonTopLevel(t *testing.T, raw []byte) map[string]json.RawMessage {
	t.Helper()
	return jsonObject(t, raw)
}

// split puts keys into kept or stripped depending on cond.
func keptIf(cond bool, keys ...string) (kept, stripped []string) {
	if cond {
		return keys, nil
	}
	return nil, keys
}

func mergeKeys(pairs ...[2][]string) (kept, stripped []string) {
	for _, p := range pairs {
		kept = append(kept, p[0]...)
		stripped = append(stripped, p[1]...)
	}
	return kept, stripped
}

func keyPair(kept, stripped []string) [2][]string { return [2][]string{kept, stripped} }

var redactionCases = []redactionCase{
	{name: "message", event: func(r *authRoom) *Event {
		return r.mustSend(userBob, "m.room.message", nil, textMsg("secret"))
	}, check: func(int) ([]string, []string) { return nil, []string{"body", "msgtype"} }},
	// v11 keeps invite in power levels; notifications are never kept.
	{name: "power levels", event: func(r *authRoom) *Event {
		return r.mustSend(userAlice, spec.MRoomPowerLevels, strp(""), r.plWith(func(pl map[string]any) { pl["invite"] = 10 }))
	}, check: func(ver int) ([]string, []string) {
		return mergeKeys(keyPair([]string{"ban", "kick", "redact", "users", "users_default", "events", "events_default", "state_default"}, []string{"notifications"}),
			keyPair(keptIf(ver >= 11, "invite")))
	}},
	// v9 keeps join_authorised_via_users_server.
	{name: "member", event: func(r *authRoom) *Event {
		return r.mustSend(userCarol, spec.MRoomMember, strp(userCarol), map[string]any{"membership": spec.Join, "displayname": "Carol",
			"join_authorised_via_users_server": userAlice})
	}, check: func(ver int) ([]string, []string) {
		return mergeKeys(keyPair([]string{"membership"}, []string{"displayname"}), keyPair(keptIf(ver >= 9, "join_authorised_via_users_server")))
	}},
	// v8 keeps allow.
	{name: "join rules", event: func(r *authRoom) *Event {
		return r.mustSend(userAlice, spec.MRoomJoinRules, strp(""), map[string]any{"join_rule": spec.Public,
			"allow": []map[string]string{{"type": "m.room_membership", "room_id": "!a:a.test"}}, "org.example": 1})
	}, check: func(ver int) ([]string, []string) {
		return mergeKeys(keyPair([]string{"join_rule"}, []string{"org.example"}), keyPair(keptIf(ver >= 8, "allow")))
	}},
	// v6 dropped aliases from the algorithm.
	{name: "aliases", event: func(r *authRoom) *Event {
		return r.mustSend(userAlice, spec.MRoomAliases, strp("a.test"), map[string]any{"aliases": []string{"#x:a.test"}})
	}, check: func(ver int) ([]string, []string) { return keptIf(ver < 6, "aliases") }},
	{name: "history visibility", event: func(r *authRoom) *Event {
		return r.mustSend(userAlice, spec.MRoomHistoryVisibility, strp(""), map[string]any{"history_visibility": "joined", "org.example": 1})
	}, check: func(int) ([]string, []string) { return []string{"history_visibility"}, []string{"org.example"} }},
	// v11 keeps the redacts of a redaction (in its content).
	{name: "redaction", event: func(r *authRoom) *Event {
		target := r.mustSend(userBob, "m.room.message", nil, textMsg("to be redacted"))
		red, err := r.e.Send(context.Background(), SendRequest{RoomID: r.id, Sender: userBob, Type: spec.MRoomRedaction, Redacts: target.EventID(),
			Content: map[string]any{"reason": "spam"}})
		if err != nil {
			r.t.Fatal(err)
		}
		return red
	}, check: func(ver int) ([]string, []string) {
		return mergeKeys(keyPair(nil, []string{"reason"}), keyPair(keptIf(ver >= 11, "redacts")))
	}},
	// v11 keeps the whole create content; before, only creator.
	{name: "create", event: func(r *authRoom) *Event {
		return r.state(spec.MRoomCreate, "")
	}, check: func(ver int) ([]string, []string) {
		if ver < 11 {
			return []string{"creator"}, []string{"room_version", "org.example.keep"}
		}
		return []string{"room_version", "org.example.keep"}, nil
	}},
}

// freshEngine is another engine on the same database, with empty caches:
// what it serves comes from the store.
func (env *authEnv) freshEngine() *Engine {
	return New(env.db, env.e.stream, bus.New(), env.e.opts)
}

// TestRedactionAlgorithmPerVersion redacts one event of each kind whose
// redaction differs between room versions and checks the redacted event
// the engine serves, from its cache and from the store, keeps and strips
// what the version's algorithm says; then PruneRedactions (retention 0)
// rewrites the stored JSON and the events still load, redacted.
func TestRedactionAlgorithmPerVersion(t *testing.T) {
	eachVersionOpt(t, false, func(t *testing.T, env *authEnv) {
		ctx := context.Background()
		r := env.room(t, roomSpec{creation: map[string]any{"org.example.keep": "x"}, join: []string{userBob, userCarol}})
		type redacted struct {
			c         redactionCase
			target    *Event
			redaction string
		}
		var done []redacted
		for _, c := range redactionCases {
			target := c.event(r)
			if c.name == "message" {
				// v11 no longer keeps the top-level origin.
				if _, ok := jsonTopLevel(t, target.JSON())["origin"]; !ok {
					t.Fatalf("event without origin: %s", target.JSON())
				}
			}
			red, err := env.e.Send(ctx, SendRequest{RoomID: r.id, Sender: userAlice, Type: spec.MRoomRedaction, Redacts: target.EventID(), Content: map[string]any{}})
			if err != nil {
				t.Fatalf("%s: redaction: %v", c.name, err)
			}
			done = append(done, redacted{c, target, red.EventID()})
		}

		check := func(t *testing.T, e *Engine, d redacted, pruned bool) {
			t.Helper()
			ev, err := e.Event(ctx, d.target.EventID())
			if err != nil {
				t.Fatalf("%s: %v", d.c.name, err)
			}
			if ev.RedactedBy != d.redaction {
				t.Errorf("%s: RedactedBy %q, want %s", d.c.name, ev.RedactedBy, d.redaction)
			}
			if !ev.Redacted() {
				t.Errorf("%s: served event is not marked redacted", d.c.name)
			}
			content := jsonObject(t, ev.Content())
			kept, stripped := d.c.check(env.ver)
			for _, k := range kept {
				if _, ok := content[k]; !ok {
					t.Errorf("v%d %s (pruned %v): %q was stripped, want kept: %s", env.ver, d.c.name, pruned, k, ev.Content())
				}
			}
			for _, k := range stripped {
				if _, ok := content[k]; ok {
					t.Errorf("v%d %s (pruned %v): %q was kept, want stripped: %s", env.ver, d.c.name, pruned, k, ev.Content())
				}
			}
			top := jsonTopLevel(t, ev.JSON())
			if _, ok := top["origin"]; ok != (env.ver < 11) {
				t.Errorf("v%d %s: top-level origin kept = %v", env.ver, d.c.name, ok)
			}
			if _, ok := top["signatures"]; !ok {
				t.Errorf("%s: redaction dropped the signatures", d.c.name)
			}
			if ev.EventID() != d.target.EventID() || ev.Type() != d.target.Type() || ev.Sender() != d.target.Sender() {
				t.Errorf("%s: redaction changed the event's identity", d.c.name)
			}
		}
		for _, d := range done {
			check(t, env.e, d, false)             // cached by the engine
			check(t, env.freshEngine(), d, false) // loaded from the store
			// The store keeps the original until the redaction is pruned.
			rows, err := env.db.EventsByID(ctx, []string{d.target.EventID()})
			if err != nil || len(rows) != 1 {
				t.Fatalf("%s: rows %v %v", d.c.name, rows, err)
			}
			if rows[0].Pruned || rows[0].RedactedBy == nil || *rows[0].RedactedBy != d.redaction {
				t.Errorf("%s: stored row pruned=%v redacted_by=%v", d.c.name, rows[0].Pruned, rows[0].RedactedBy)
			}
			orig, _ := env.v.NewEventFromTrustedJSONWithEventID(d.target.EventID(), []byte(rows[0].JSON), false)
			if string(orig.Content()) != string(d.target.Content()) {
				t.Errorf("%s: stored content %s, want the original %s before pruning", d.c.name, orig.Content(), d.target.Content())
			}
		}

		// Prune with retention 0, as of a second from now.
		p := env.freshEngine()
		p.now = func() time.Time { return time.Now().Add(time.Second) }
		for {
			n, err := p.PruneRedactions(ctx, env.db, 0)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		for _, d := range done {
			rows, err := env.db.EventsByID(ctx, []string{d.target.EventID()})
			if err != nil || len(rows) != 1 {
				t.Fatalf("%s: rows %v %v", d.c.name, rows, err)
			}
			if !rows[0].Pruned {
				t.Errorf("%s: row not pruned", d.c.name)
			}
			want, err := env.v.RedactEventJSON([]byte(d.target.JSON()))
			if err != nil {
				t.Fatal(err)
			}
			if got := jsonObject(t, []byte(rows[0].JSON)); string(rawJSONOf(got)) != string(rawJSONOf(jsonObject(t, want))) {
				t.Errorf("%s: pruned JSON %s, want %s", d.c.name, rows[0].JSON, want)
			}
			check(t, env.freshEngine(), d, true)
		}
	})
}

// TestRedactionApplied checks who may redact what, per room version: the
// auth rules of v1-2 reject a redaction of another server's event below
// the redact level, v3+ accept it into the room but do not apply it;
// a server may redact its own users' events and the redact level
// redacts anything. v11 redactions that name their target only in the
// content (as other servers build them) are applied too.
func TestRedactionApplied(t *testing.T) {
	eachVersion(t, func(t *testing.T, env *authEnv) {
		ctx := context.Background()
		r := env.room(t, roomSpec{remote: []string{userRob, userRita}})
		redactedBy := func(id string) string {
			t.Helper()
			ev, err := env.freshEngine().Event(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			cached, err := env.e.Event(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if cached.RedactedBy != ev.RedactedBy {
				t.Errorf("cache says redacted by %q, store by %q", cached.RedactedBy, ev.RedactedBy)
			}
			if (ev.RedactedBy != "") != ev.Redacted() {
				t.Errorf("event %s: RedactedBy %q but PDU redacted %v", id, ev.RedactedBy, ev.Redacted())
			}
			return ev.RedactedBy
		}

		alices := r.mustSend(userAlice, "m.room.message", nil, textMsg("alice's"))
		red, err := r.recvRedaction(userRob, alices.EventID())
		if err != nil {
			t.Fatal(err)
		}
		wantStatus := roommodel.Accepted
		if env.ver <= 2 {
			wantStatus = roommodel.Rejected
		}
		if red.Status != wantStatus {
			t.Errorf("rob's redaction of alice's message: status %d, want %d", red.Status, wantStatus)
		}
		if by := redactedBy(alices.EventID()); by != "" {
			t.Errorf("alice's message was redacted by %s, a remote user below the redact level", by)
		}

		ritas := r.mustRecv(userRita, "m.room.message", nil, textMsg("rita's"))
		red = r.mustRecvRedaction(userRob, ritas.EventID())
		if by := redactedBy(ritas.EventID()); by != red.EventID() {
			t.Errorf("rita's message redacted by %q, want %s (same server)", by, red.EventID())
		}

		robs := r.mustRecv(userRob, "m.room.message", nil, textMsg("rob's"))
		red2, err := env.e.Send(ctx, SendRequest{RoomID: r.id, Sender: userAlice, Type: spec.MRoomRedaction, Redacts: robs.EventID(), Content: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		if by := redactedBy(robs.EventID()); by != red2.EventID() {
			t.Errorf("rob's message redacted by %q, want alice's %s (redact level)", by, red2.EventID())
		}

		if env.ver >= 11 {
			// A v11 redaction with redacts only in its content.
			robs2 := r.mustRecv(userRob, "m.room.message", nil, textMsg("rob's second"))
			prevs, depth := r.head()
			b := env.v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
				SenderID: userRob, RoomID: r.id, Type: spec.MRoomRedaction, Content: rawJSONOf(map[string]string{"redacts": robs2.EventID()}),
				PrevEvents: prevs, AuthEvents: r.authFor(userRob, spec.MRoomRedaction, nil, nil), Depth: depth + 1,
			})
			pdu, err := b.Build(time.Now(), "b.test", "ed25519:r", env.keys["b.test"])
			if err != nil {
				t.Fatal(err)
			}
			if _, top := jsonTopLevel(t, pdu.JSON())["redacts"]; top {
				t.Fatalf("test event has a top-level redacts: %s", pdu.JSON())
			}
			ev, err := env.e.Receive(ctx, pdu)
			if err != nil || ev.Status != roommodel.Accepted {
				t.Fatalf("content-only redaction: %+v %v", ev, err)
			}
			if ev.Redacts() != robs2.EventID() {
				t.Errorf("Redacts() of a content-only redaction = %q, want %s", ev.Redacts(), robs2.EventID())
			}
			if by := redactedBy(robs2.EventID()); by != pdu.EventID() {
				t.Errorf("content-only v11 redaction not applied: redacted by %q", by)
			}
		}

	})
}

func (r *authRoom) mustRecvRedaction(sender, target string) *Event {
	r.t.Helper()
	ev, err := r.recvRedaction(sender, target)
	if err != nil || ev.Status != roommodel.Accepted {
		r.t.Fatalf("%s's redaction of %s: %+v %v", sender, target, ev, err)
	}
	return ev
}
