package store_test

import (
	"context"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestReputationUsersStore: every user's global entry of a type is
// listed (not room entries, not other types), and a feed's decisions'
// distinct entities are counted per kind.
func TestReputationUsersStore(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		for i, e := range []struct{ user, room, typ string }{
			{"@a:x", "", "org.myelin.reputation.subscriptions"},
			{"@b:x", "", "org.myelin.reputation.subscriptions"},
			{"@c:x", "!r:x", "org.myelin.reputation.subscriptions"},
			{"@d:x", "", "m.other"},
		} {
			if err := db.PutAccountData(ctx, e.user, e.room, e.typ, `{"feeds":[]}`, int64(i+1)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.GlobalAccountDataOfType(ctx, "org.myelin.reputation.subscriptions")
		if err != nil || len(got) != 2 || got[0].UserID != "@a:x" || got[1].UserID != "@b:x" || got[0].Content != `{"feeds":[]}` {
			t.Fatalf("listed %+v, %v", got, err)
		}
		ds := []store.ReputationDecision{
			{TS: 100, Action: "events", Kind: "user", Entity: "@u1:x", Feeds: []string{"!f"}, Detail: "$1"},
			{TS: 101, Action: "events", Kind: "user", Entity: "@u1:x", Feeds: []string{"!f"}, Detail: "$2"},
			{TS: 102, Action: "events", Kind: "server", Entity: "evil", Feeds: []string{"!f"}, Detail: "$3"},
			{TS: 103, Action: "invites", Kind: "room", Entity: "!r:evil", Feeds: []string{"!f"}, Detail: "$4"},
			{TS: 104, Action: "joins", Kind: "room", Entity: "!j:evil", Feeds: []string{"!f"}, Detail: "@me:x"},
			{TS: 50, Action: "events", Kind: "user", Entity: "@old:x", Feeds: []string{"!f"}, Detail: "$0"},
		}
		if err := db.AddReputationDecisions(ctx, ds); err != nil {
			t.Fatal(err)
		}
		kinds, err := db.ReputationFeedEntities(ctx, "!f", 100, []string{"events", "invites"})
		if err != nil || kinds["user"] != 1 || kinds["server"] != 1 || kinds["room"] != 1 {
			t.Fatalf("entities %v, %v", kinds, err)
		}
	})
}
