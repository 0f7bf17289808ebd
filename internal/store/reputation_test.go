package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestReputationDecisionLog: decisions are stored with their feeds,
// filtered and counted per feed, and the log is cut by age and by count.
func TestReputationDecisionLog(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		var ds []store.ReputationDecision
		for i := range 10 {
			feeds := []string{"!a"}
			if i%2 == 0 {
				feeds = append(feeds, "!b")
			}
			action := "events"
			if i >= 8 {
				action = "invites"
			}
			ds = append(ds, store.ReputationDecision{TS: int64(100 + i), Action: action, Kind: "user", Entity: fmt.Sprintf("@u%d:x", i), Feeds: feeds, Score: 1, Detail: fmt.Sprintf("$e%d", i)})
		}
		if err := db.AddReputationDecisions(ctx, ds); err != nil {
			t.Fatal(err)
		}
		got, total, err := db.ReputationDecisions(ctx, store.ReputationDecisionQuery{Limit: 3, Feed: "!b"})
		if err != nil || total != 5 || len(got) != 3 || got[0].Entity != "@u8:x" || !slices.Equal(got[0].Feeds, []string{"!a", "!b"}) {
			t.Fatalf("feed !b: %+v, %d, %v", got, total, err)
		}
		if _, total, _ := db.ReputationDecisions(ctx, store.ReputationDecisionQuery{Limit: 10, Action: "invites", Kind: "user", SinceTS: 109}); total != 1 {
			t.Fatalf("invites since 109: %d", total)
		}
		stats, err := db.ReputationFeedStats(ctx, "!a", 105)
		if err != nil || stats["events"] != 3 || stats["invites"] != 2 {
			t.Fatalf("stats: %v, %v", stats, err)
		}
		// Older than 102 goes (2), then all but the newest 5.
		if n, err := db.PruneReputationDecisions(ctx, 102, 5); err != nil || n != 5 {
			t.Fatalf("prune: %d, %v", n, err)
		}
		got, total, _ = db.ReputationDecisions(ctx, store.ReputationDecisionQuery{Limit: 10})
		if total != 5 || got[len(got)-1].Entity != "@u5:x" {
			t.Fatalf("after prune: %+v", got)
		}
		if stats, _ := db.ReputationFeedStats(ctx, "!b", 0); stats["events"] != 1 || stats["invites"] != 1 {
			t.Fatalf("stats after prune: %v", stats)
		}
		// Subscriptions.
		if err := db.PutReputationFeed(ctx, store.ReputationFeed{Feed: "#l:x", Weight: 0.5, Source: "api", AddedTS: 1}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetReputationFeedRoom(ctx, "#l:x", "!l", "boom"); err != nil {
			t.Fatal(err)
		}
		if err := db.PutReputationFeed(ctx, store.ReputationFeed{Feed: "#l:x", Weight: 2, Allow: true, Source: "api", AddedTS: 2}); err != nil {
			t.Fatal(err)
		}
		feeds, err := db.ReputationFeeds(ctx)
		if err != nil || len(feeds) != 1 || feeds[0] != (store.ReputationFeed{Feed: "#l:x", RoomID: "!l", Weight: 2, Allow: true, Source: "api", AddedTS: 1, LastError: "boom"}) {
			t.Fatalf("feeds: %+v, %v", feeds, err)
		}
		if err := db.DeleteReputationFeed(ctx, "#l:x"); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteReputationFeed(ctx, "#l:x"); err != store.ErrNotFound {
			t.Fatalf("second delete: %v", err)
		}
	})
}
