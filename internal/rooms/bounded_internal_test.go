package rooms

import (
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/cache"
)

// The engine's per-user membership marks and per-room relation flags
// stay bounded however many users and rooms pass through, and a
// forgotten user never counts as unchanged.
func TestEngineMemoryIsBounded(t *testing.T) {
	e := New(nil, NewStreamGen(0, nil), nil, Options{})
	n := 2*cache.DefaultMarksLimit + 10
	for i := 1; i <= n; i++ {
		e.noteMembership(fmt.Sprintf("@u%d:hs1.test", i), int64(i))
		e.noteRelation(fmt.Sprintf("!r%d:hs1.test", i))
	}
	if got := e.memberPos.Len(); got > cache.DefaultMarksLimit {
		t.Fatalf("membership marks: %d users remembered, limit %d", got, cache.DefaultMarksLimit)
	}
	if got, limit := e.relRooms.Len(), defaultLookupCacheBytes/relFlagCost("!r1:hs1.test"); got > limit {
		t.Fatalf("relation flags: %d rooms remembered, limit %d", got, limit)
	}
	if e.MembershipUnchanged("@u1:hs1.test", 0) {
		t.Fatal("a forgotten user's membership counts as unchanged since before its change")
	}
	if !e.MembershipUnchanged("@u1:hs1.test", int64(n)) {
		t.Fatal("no change after the last position, yet not unchanged")
	}
	if e.MembershipUnchanged(fmt.Sprintf("@u%d:hs1.test", n), int64(n-1)) {
		t.Fatal("the newest change is missed")
	}
}
