package reputation

import (
	"context"
	"testing"
)

func TestParseUserSubscriptions(t *testing.T) {
	got := ParseUserSubscriptions([]byte(`{"threshold": 2, "feeds": [
		{"room": "!a:x", "weight": 1.5, "via": ["x", 3]},
		{"room": "#b:y", "allow": true},
		{"room": "!a:x"},
		{"room": "not a room"},
		{"room": "!c:x", "weight": -1},
		"junk"]}`))
	if got.Threshold != 2 || len(got.Feeds) != 2 || got.Feeds[0].Weight != 1.5 || len(got.Feeds[0].Via) != 1 ||
		got.Feeds[1].Weight != 1 || !got.Feeds[1].Allow {
		t.Fatalf("parsed %+v", got)
	}
	if got := ParseUserSubscriptions([]byte(`[1]`)); len(got.Feeds) != 0 || got.Threshold != DefaultThreshold {
		t.Fatalf("bad content parsed as %+v", got)
	}
	if got := ParseUserSubscriptions([]byte(`{"threshold": -1}`)); got.Threshold != DefaultThreshold {
		t.Fatalf("a negative threshold kept: %+v", got)
	}
}

// Two users' filters over the same feeds blend with their own weights:
// two half-weighted feeds that agree hide a sender only together, and
// an allow-list counts against them.
func TestUserFiltersBlend(t *testing.T) {
	u := NewUserFilters()
	for _, id := range []string{"!f1:x", "!f2:x", "!ok:x"} {
		u.blend.SetFeed(id, 1, false)
		u.blend.SetRule(id, StateRule{Type: "m.policy.rule.user", StateKey: "a",
			Content: []byte(`{"entity": "@spam:evil", "recommendation": "m.ban"}`)})
	}
	u.set("@both:h", ParseUserSubscriptions([]byte(`{"feeds": [{"room": "!f1:x", "weight": 0.5}, {"room": "!f2:x", "weight": 0.5}]}`)))
	u.set("@one:h", ParseUserSubscriptions([]byte(`{"feeds": [{"room": "!f1:x", "weight": 0.5}]}`)))
	u.set("@allow:h", ParseUserSubscriptions([]byte(`{"feeds": [{"room": "!f1:x"}, {"room": "!ok:x", "allow": true}]}`)))
	ctx := context.Background()
	if feeds := u.HidesSender(ctx, "@both:h", "@spam:evil"); len(feeds) != 2 {
		t.Errorf("two half feeds together: %v", feeds)
	}
	for _, user := range []string{"@one:h", "@allow:h", "@nobody:h"} {
		if feeds := u.HidesSender(ctx, user, "@spam:evil"); feeds != nil {
			t.Errorf("%s hides the sender: %v", user, feeds)
		}
	}
	if feeds := u.HidesSender(ctx, "@both:h", "@fine:evil"); feeds != nil {
		t.Errorf("an unlisted sender is hidden: %v", feeds)
	}
	u.Hid("@both:h", []string{"!f1:x"}, false, "@spam:evil", "!r:evil")
	u.Hid("@both:h", []string{"!f1:x"}, true, "@spam:evil", "!r2:evil")
	x := u.UserExtent("@both:h", 0)
	if len(x) != 2 || x[0].Events != 1 || x[0].Invites != 1 || x[0].Users != 1 || x[0].Rooms != 2 || x[0].Servers != 1 || x[1].Events != 0 {
		t.Errorf("extent: %+v", x)
	}
}

func FuzzParseUserSubscriptions(f *testing.F) {
	f.Add([]byte(`{"threshold": 2, "feeds": [{"room": "!a:x", "weight": 1.5, "via": ["x"]}]}`))
	f.Add([]byte(`{"feeds": [{"room": "#b:y", "allow": true}, 1, null]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := ParseUserSubscriptions(raw)
		if got.Threshold <= 0 || len(got.Feeds) > maxUserFeeds {
			t.Fatalf("parsed %+v", got)
		}
		for _, feed := range got.Feeds {
			if feed.Weight < 0 || checkFeedName(feed.Room) != nil || len(feed.Via) > 10 {
				t.Fatalf("bad feed kept: %+v", feed)
			}
		}
	})
}
