package federation_test

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// resyncFetchMembers is the size of the room TestPartialStateResyncEventFetch
// resyncs: enough /event requests for concurrency to show.
const resyncFetchMembers = 200

// TestPartialStateResyncEventFetch: a resident that refuses /state has
// the resync fetch every missing event with /event; they are fetched
// several at a time, never more than eight to the one destination, and
// the room is completed with every member. The peer answers each /event
// after 5 ms, as a server across a network: one request at a time, the
// most it ever had in flight was 1.
func TestPartialStateResyncEventFetch(t *testing.T) {
	peer.EachEngine(t, 1, partialJoins, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		p.Refuse(peer.State, http.StatusNotFound)
		room := p.CreateRoom(t)
		for i := range resyncFetchMembers {
			u := p.UserID(fmt.Sprintf("u%d", i))
			room.Create(t, u, spec.MRoomMember, &u, map[string]string{"membership": spec.Join})
		}
		release := hs1.PartialStateResync().Hold()
		defer release()
		peerJoin(t, hs1, p, room, "bob")
		p.Delay(peer.Event, 5*time.Millisecond)
		start, cpu0 := time.Now(), cpuTime()
		release()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			partial, _, err := hs1.Engine().PartialState(ctx, room.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !partial {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the resync has not completed in 2 minutes (%d /event requests)", p.Hits(peer.Event))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("resync of %d members: %v (process CPU %v), %d /event requests, at most %d in flight", resyncFetchMembers, time.Since(start), cpuTime()-cpu0, p.Hits(peer.Event), p.MaxInFlight(peer.Event))
		state, err := hs1.Engine().CurrentState(ctx, room.ID)
		if err != nil {
			t.Fatal(err)
		}
		members := 0
		for k := range state {
			if k.Type == spec.MRoomMember {
				members++
			}
		}
		// The creator, the peer's users and bob.
		if members != resyncFetchMembers+2 {
			t.Errorf("the completed state holds %d memberships, want %d", members, resyncFetchMembers+2)
		}
		if p.Hits(peer.Event) < resyncFetchMembers/2 {
			t.Fatalf("the resync asked /event %d times: it did not take the /event path", p.Hits(peer.Event))
		}
		if n := p.MaxInFlight(peer.Event); n < 2 || n > 8 {
			t.Errorf("at most %d /event requests in flight at once, want 2 to 8", n)
		}
	})
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
