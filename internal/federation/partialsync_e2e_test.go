package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// stateRead is the answer to a client state read made while a room's
// state is partial.
type stateRead struct {
	status int
	raw    []byte
}

// readState GETs path of a room's state API as c, in the background.
func readState(s *testserver.Server, c *mautrix.Client, roomID id.RoomID, path string) <-chan stateRead {
	out := make(chan stateRead, 1)
	go func() {
		// Not testserver.Send: /state answers a JSON array.
		req, err := http.NewRequest(http.MethodGet, s.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID.String())+"/state"+path, nil)
		if err != nil {
			out <- stateRead{0, []byte(err.Error())}
			return
		}
		req.Header.Set("Authorization", "Bearer "+c.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- stateRead{0, []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			raw = []byte(err.Error())
		}
		out <- stateRead{resp.StatusCode, raw}
	}()
	return out
}

// TestPartialStateCompletionResent: bob of hs2 joins a named room of hs1
// with partial state (no heroes: hs2 knows only bob's membership) and
// syncs. His /state and /state/m.room.member/{carol} wait for the full
// state (as Synapse's state reads do) and then answer with it. Once the
// state is complete, bob's next incremental /sync sends the room again
// as newly joined, as Synapse does: the full state, carol's membership
// included, in its state section, with the timeline limited.
func TestPartialStateCompletionResent(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, partialJoins, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs2 := net.Servers[1]
		p := joinPartial(t, net)
		roomID, alice, carol, bob, release := p.roomID, p.alice, p.carol, p.bob, p.release
		carolKey := roommodel.StateKey{Type: spec.MRoomMember, StateKey: carol.UserID.String()}
		since, joined := syncRoom(t, hs2, bob, "", `{}`, roomID.String())
		if joined == nil || slices.Contains(stateKeys(joined.State.Events, joined.Timeline.Events), carolKey) {
			t.Fatalf("bob's initial sync during partial state: %+v", joined)
		}
		one := readState(hs2, bob, roomID, "/m.room.member/"+url.PathEscape(carol.UserID.String()))
		all := readState(hs2, bob, roomID, "")

		// Round trips while the reads wait.
		aliceSync := &sendSyncer{c: alice}
		if _, err := bob.SendText(ctx, roomID, "during partial state"); err != nil {
			t.Fatal(err)
		}
		aliceSync.waitMessages(t, roomID, "during partial state")
		select {
		case r := <-one:
			t.Fatalf("/state/m.room.member answered during partial state: %d %s", r.status, r.raw)
		case r := <-all:
			t.Fatalf("/state answered during partial state: %d %s", r.status, r.raw)
		default:
		}
		release()

		r := <-one
		var m event.MemberEventContent
		if r.status != http.StatusOK || json.Unmarshal(r.raw, &m) != nil || m.Membership != event.MembershipJoin {
			t.Fatalf("carol's membership asked during partial state: %d %s", r.status, r.raw)
		}
		r = <-all
		var list []*event.Event
		if r.status != http.StatusOK || json.Unmarshal(r.raw, &list) != nil || !slices.Contains(stateKeys(list), carolKey) {
			t.Fatalf("/state asked during partial state: %d %s", r.status, r.raw)
		}

		// The next syncs: the room comes again, whole.
		testserver.SyncUntil(t, bob, since, "the completed room sent again", func(resp *mautrix.RespSync) bool {
			room, ok := resp.Rooms.Join[roomID]
			if !ok || !slices.Contains(stateKeys(room.State.Events), carolKey) {
				return false
			}
			if !room.Timeline.Limited {
				t.Fatal("the completed room's timeline is not limited")
			}
			return true
		})
	})
}

// stateKeys lists the state keys of the state events among lists.
func stateKeys(lists ...[]*event.Event) []roommodel.StateKey {
	var out []roommodel.StateKey
	for _, l := range lists {
		for _, ev := range l {
			if ev.StateKey != nil {
				out = append(out, roommodel.StateKey{Type: ev.Type.Type, StateKey: *ev.StateKey})
			}
		}
	}
	return out
}

// TestPartialStateJoinPeer: a Myelin user joins a room of the scripted
// peer with partial state. The peer serves only what the spec
// guarantees (no /state), so the full state comes from /state_ids and
// /event. The peer's answer omitted three of its eight members; once the
// room is complete /joined_members lists all of them.
func TestPartialStateJoinPeer(t *testing.T) {
	peer.EachEngine(t, 1, partialJoins, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		p.Refuse(peer.State, http.StatusNotFound)
		room := p.CreateRoom(t)
		want := []string{room.Creator}
		for i := 1; i <= 7; i++ {
			u := p.UserID(fmt.Sprintf("u%d", i))
			room.Create(t, u, spec.MRoomMember, &u, map[string]string{"membership": spec.Join})
			want = append(want, u)
		}
		release := hs1.PartialStateResync().Hold()
		defer release()
		bob := peerJoin(t, hs1, p, room, "bob")
		want = append(want, bob.UserID.String())
		if partial, _, err := hs1.Engine().PartialState(ctx, room.ID); err != nil || !partial {
			t.Fatalf("hs1's room after the join: partial %v, %v", partial, err)
		}
		state, err := hs1.Engine().CurrentState(ctx, room.ID)
		if err != nil {
			t.Fatal(err)
		}
		known := 0
		for k := range state {
			if k.Type == spec.MRoomMember {
				known++
			}
		}
		if known != 6 {
			t.Fatalf("hs1's partial state holds %d memberships, want the five heroes' and bob's", known)
		}
		release()
		wantJoined(t, bob, id.RoomID(room.ID), want...)
		if partial, _, err := hs1.Engine().PartialState(ctx, room.ID); err != nil || partial {
			t.Fatalf("hs1's room after joined_members: partial %v, %v", partial, err)
		}
		if p.Hits(peer.StateIDs) == 0 || p.Hits(peer.Event) == 0 {
			t.Fatalf("the resync asked /state_ids %d times and /event %d times", p.Hits(peer.StateIDs), p.Hits(peer.Event))
		}
	})
}
