package rooms

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// TestEventJSONMatchesParsed: the events and auth chains served from the
// stored JSON (EventJSONByNID, AuthChainJSON) are byte for byte those the
// parsed events give (EventsByNID, AuthChain), in every room version:
// redacted events (a message, a state event) served redacted, before and
// after their stored JSON is pruned, rejected events as stored, and the
// auth chain in the same breadth-first order; and the memberships read
// from the stored column are those of the parsed member events.
func TestEventJSONMatchesParsed(t *testing.T) {
	// Not in parallel: PruneRedactions prunes the whole database.
	eachVersionOpt(t, false, func(t *testing.T, env *authEnv) {
		ctx := context.Background()
		r := env.room(t, roomSpec{remote: []string{userRob, userRita}})
		evs := []*Event{r.state(spec.MRoomCreate, ""), r.state(spec.MRoomPowerLevels, ""), r.state(spec.MRoomJoinRules, ""),
			r.state(spec.MRoomMember, userAlice), r.state(spec.MRoomMember, userRob), r.state(spec.MRoomMember, userRita)}
		topic := r.mustSend(userAlice, spec.MRoomTopic, strp(""), map[string]any{"topic": "to be redacted"})
		ritas := r.mustRecv(userRita, "m.room.message", nil, textMsg("rita's"))
		kept := r.mustRecv(userRob, "m.room.message", nil, textMsg("kept"))
		if _, err := r.e.Send(ctx, SendRequest{RoomID: r.id, Sender: userAlice, Type: spec.MRoomRedaction, Redacts: topic.EventID(),
			Content: map[string]any{}}); err != nil {
			t.Fatal(err)
		}
		r.mustRecvRedaction(userRob, ritas.EventID())
		// Rob may not set the power levels (50 needed, he has 0).
		rejected, err := r.recv(userRob, spec.MRoomPowerLevels, strp(""), map[string]any{"users": map[string]int{userRob: 100}})
		if err != nil || rejected.Status != roommodel.Rejected {
			t.Fatalf("rob's power levels: %+v %v", rejected, err)
		}
		left := r.mustRecv(userRita, spec.MRoomMember, strp(userRita), map[string]any{"membership": spec.Leave})
		evs = append(evs, topic, ritas, kept, rejected, left)

		compare := func(t *testing.T, e *Engine) {
			t.Helper()
			nids := make([]int64, len(evs))
			ids := make([]string, len(evs))
			var authIDs []string
			for i, ev := range evs {
				nids[i], ids[i] = ev.NID, ev.EventID()
				authIDs = append(authIDs, ev.AuthEventIDs()...)
			}
			parsed, err := e.EventsByNID(ctx, nids)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := e.EventJSONByNID(ctx, append(nids, 1<<40))
			if err != nil {
				t.Fatal(err)
			}
			byID, err := e.EventJSONByID(ctx, append(ids, "$unknown"))
			if err != nil {
				t.Fatal(err)
			}
			sameEvents(t, "by NID", parsed, raw)
			sameEvents(t, "by ID", parsed, byID)
			for _, ev := range raw {
				if ev.ID == topic.EventID() || ev.ID == ritas.EventID() {
					if bytes.Contains(ev.JSON, []byte("to be redacted")) || bytes.Contains(ev.JSON, []byte("rita's")) {
						t.Errorf("redacted event %s served with its content: %s", ev.ID, ev.JSON)
					}
				}
			}
			chain, err := e.AuthChain(ctx, parsed)
			if err != nil {
				t.Fatal(err)
			}
			rawChain, err := e.AuthChainJSON(ctx, authIDs)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) == 0 {
				t.Fatal("empty auth chain")
			}
			sameEvents(t, "auth chain", chain, rawChain)

			current, err := e.CurrentState(ctx, r.id)
			if err != nil {
				t.Fatal(err)
			}
			members, err := e.Members(ctx, current)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for _, m := range members {
				want[*m.StateKey()], _ = m.Membership()
			}
			got, err := e.Memberships(ctx, current)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, want) || want[userRita] != spec.Leave {
				t.Errorf("Memberships = %v, want %v", got, want)
			}
		}
		t.Run("cached", func(t *testing.T) { compare(t, env.e) })
		t.Run("stored", func(t *testing.T) { compare(t, env.freshEngine()) })
		if _, err := env.freshEngine().PruneRedactions(ctx, env.db, 0); err != nil {
			t.Fatal(err)
		}
		t.Run("pruned", func(t *testing.T) { compare(t, env.freshEngine()) })
	})
}

func sameEvents(t *testing.T, what string, want []*Event, got []RawEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i, ev := range want {
		if got[i].ID != ev.EventID() || got[i].NID != ev.NID || !bytes.Equal(got[i].JSON, ev.JSON()) {
			t.Errorf("%s: event %d is %s (NID %d) %s, want %s (NID %d) %s", what, i, got[i].ID, got[i].NID, got[i].JSON,
				ev.EventID(), ev.NID, ev.JSON())
		}
	}
}

// TestServerInRoomFollowsState: ServerInRoom and CurrentServers, kept
// per snapshot of the current state, change with the state: a server is in the room while
// one of its users is joined, out when the last leaves, in again when
// one comes back.
func TestServerInRoomFollowsState(t *testing.T) {
	eachVersion(t, func(t *testing.T, env *authEnv) {
		ctx := context.Background()
		r := env.room(t, roomSpec{remote: []string{userRob}})
		in := func(want bool, when string) {
			t.Helper()
			for range 2 { // computed, then kept
				got, err := env.e.ServerInRoom(ctx, r.id, "b.test")
				if err != nil || got != want {
					t.Fatalf("%s: b.test in the room %v (%v), want %v", when, got, err, want)
				}
				servers, err := env.e.CurrentServers(ctx, r.id)
				if err != nil || slices.Contains(servers, "b.test") != want || !slices.Contains(servers, "a.test") {
					t.Fatalf("%s: CurrentServers %v (%v)", when, servers, err)
				}
				servers[0] = "scribbled.test" // a copy: the kept list is not touched
			}
		}
		in(true, "rob joined")
		r.mustRecv(userRob, spec.MRoomMember, strp(userRob), map[string]any{"membership": spec.Leave})
		in(false, "rob left")
		r.mustRecv(userRob, spec.MRoomMember, strp(userRob), map[string]any{"membership": spec.Join})
		in(true, "rob back")
		if _, err := env.e.ServerInRoom(ctx, "!unknown:a.test", "b.test"); err == nil {
			t.Error("ServerInRoom of an unknown room: no error")
		}
	})
}
