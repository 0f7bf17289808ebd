package directory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// fakeRemote answers federation /hierarchy from a table and counts the
// requests per server.
type fakeRemote struct {
	answers map[string]*RemoteHierarchy // by server
	asked   map[string]int
}

func (f *fakeRemote) RoomHierarchy(_ context.Context, server, roomID string, _ bool) (*RemoteHierarchy, error) {
	f.asked[server]++
	if a, ok := f.answers[server]; ok {
		return a, nil
	}
	return nil, errors.New("unreachable")
}

// TestRemoteSummaryCache: a room this server is not in is described from
// the first via server that answers about that room (an answer about
// another room is refused, as Synapse does; a server that is down is
// asked once), and the answer is reused for five minutes, then asked
// again.
func TestRemoteSummaryCache(t *testing.T) {
	env := roomtest.New(t, testdb.NewURL(t, testdb.Engines()[0]), "10")
	const roomID = "!remote:hs2.test"
	remote := &fakeRemote{asked: map[string]int{}, answers: map[string]*RemoteHierarchy{
		"liar.test": {Room: HierarchyRoom{Summary: Summary{RoomID: "!other:hs2.test", Name: "Other", JoinRule: "public"}}},
		"hs2.test":  {Room: HierarchyRoom{Summary: Summary{RoomID: roomID, Name: "Remote", JoinRule: "public"}}},
	}}
	s := NewSpaces(New(env.Engine, env.DB), roomtest.ServerName, remote)
	now := time.Unix(1_000_000, 0)
	s.now = func() time.Time { return now }
	ctx := context.Background()
	// down.test is named twice but asked once: a server that did not
	// answer is not asked again within one walk.
	via := []string{"down.test", "liar.test", "down.test", "bad name", roomtest.ServerName}
	sum, membership, err := s.RoomSummary(ctx, roomID, "@alice:hs1.test", via)
	if err != nil || sum.Name != "Remote" || membership != "" {
		t.Fatalf("summary: %+v %q %v", sum, membership, err)
	}
	if remote.asked["down.test"] != 1 || remote.asked["liar.test"] != 1 || remote.asked["hs2.test"] != 1 ||
		remote.asked["bad name"] != 0 || remote.asked[roomtest.ServerName] != 0 {
		t.Fatalf("servers asked: %v", remote.asked)
	}
	if _, _, err := s.RoomSummary(ctx, roomID, "", via); err != nil || remote.asked["hs2.test"] != 1 {
		t.Fatalf("second summary within five minutes: %v, asked %v", err, remote.asked)
	}
	now = now.Add(remoteCacheTTL)
	if _, _, err := s.RoomSummary(ctx, roomID, "", via); err != nil || remote.asked["hs2.test"] != 2 {
		t.Fatalf("summary after five minutes: %v, asked %v", err, remote.asked)
	}
	// An invite-only room is hidden from a user this server knows
	// nothing about, and unknown rooms are not found.
	remote.answers["hs2.test"] = &RemoteHierarchy{Room: HierarchyRoom{Summary: Summary{RoomID: "!private:hs2.test", JoinRule: "invite"}}}
	for _, id := range []string{"!private:hs2.test", "!nowhere:hs3.test"} {
		if _, _, err := s.RoomSummary(ctx, id, "@alice:hs1.test", []string{"hs2.test"}); !isNotFound(err) {
			t.Fatalf("summary of %s: %v, want M_NOT_FOUND", id, err)
		}
	}
}

func isNotFound(err error) bool {
	me, ok := mxerr.As(err)
	return ok && me.Code == "M_NOT_FOUND"
}
