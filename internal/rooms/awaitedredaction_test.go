package rooms

import (
	"context"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// TestRedactionBeforeTargetRules: redactions accepted before their
// target arrives are applied to it when it is stored only as the
// redaction rules allow (spec "Redactions", Synapse's redaction
// recheck), judged then: a user below the redact level of another
// server does not redact it, a moderator does; the store and the cache
// agree. Versions 1 and 2 check the redaction's domain at auth time
// instead, so they are left out.
func TestRedactionBeforeTargetRules(t *testing.T) {
	eachVersion(t, func(t *testing.T, env *authEnv) {
		if env.ver < 3 {
			t.Skip("versions 1 and 2 check a redaction's target domain in its auth rules")
		}
		ctx := context.Background()
		r := env.room(t, roomSpec{join: []string{userBob, userMod}, remote: []string{userRob, userRita}})
		arrive := func(body string, redactors ...string) (*Event, []*Event) {
			t.Helper()
			prevs, depth := r.head()
			target := r.build(userRob, "m.room.message", nil, textMsg(body), prevs,
				r.authFor(userRob, "m.room.message", nil, nil), depth+1)
			var reds []*Event
			for _, by := range redactors {
				red, err := env.e.Send(ctx, SendRequest{RoomID: r.id, Sender: by, Type: spec.MRoomRedaction, Redacts: target.EventID(), Content: map[string]any{}})
				if err != nil || red.Status != roommodel.Accepted {
					t.Fatalf("%s's redaction of an event not here yet: %+v %v", by, red, err)
				}
				reds = append(reds, red)
			}
			ev, err := env.e.Receive(ctx, target)
			if err != nil || ev.Status != roommodel.Accepted {
				t.Fatalf("the target: %+v %v", ev, err)
			}
			return ev, reds
		}
		check := func(what string, ev *Event, want string) {
			t.Helper()
			if ev.RedactedBy != want || ev.Redacted() != (want != "") {
				t.Errorf("%s: as stored, redacted by %q (PDU redacted %v), want %q", what, ev.RedactedBy, ev.Redacted(), want)
			}
			for name, e := range map[string]*Engine{"cache": env.e, "store": env.freshEngine()} {
				got, err := e.Event(ctx, ev.EventID())
				if err != nil {
					t.Fatal(err)
				}
				if got.RedactedBy != want || got.Redacted() != (want != "") {
					t.Errorf("%s: from the %s, redacted by %q, want %q", what, name, got.RedactedBy, want)
				}
			}
		}

		ev, _ := arrive("bob may not", userBob)
		check("bob's redaction (power 0, another server)", ev, "")
		ev, reds := arrive("mod may", userMod)
		check("the moderator's redaction", ev, reds[0].EventID())
		// The first that the rules allow applies; both are forgotten.
		ev, reds = arrive("bob then mod", userBob, userMod)
		check("bob's and then the moderator's redactions", ev, reds[1].EventID())
		if ids, err := env.db.AwaitedRedactions(ctx, r.id, ev.EventID()); err != nil || len(ids) != 0 {
			t.Errorf("awaited redactions left after their target arrived: %v %v", ids, err)
		}
		// The redactions of other servers' users that the target's server
		// sends: rita redacts rob's event (same server).
		prevs, depth := r.head()
		target := r.build(userRob, "m.room.message", nil, textMsg("rita may"), prevs, r.authFor(userRob, "m.room.message", nil, nil), depth+1)
		red := r.mustRecvRedaction(userRita, target.EventID())
		got, err := env.e.Receive(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		check("rita's redaction (same server)", got, red.EventID())
	})
}
