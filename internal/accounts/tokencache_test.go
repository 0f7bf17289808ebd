package accounts

import (
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/store"
)

func TestTokenCacheInvalidation(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newTokenCache(10, time.Minute)
	alice := store.TokenOwner{User: store.User{Localpart: "alice"}, DeviceID: "A"}
	bob := store.TokenOwner{User: store.User{Localpart: "bob"}, DeviceID: "B"}

	c.put("a", alice, c.start(), now)
	c.put("b", bob, c.start(), now)
	if _, ok := c.get("a", now); !ok {
		t.Fatal("fresh entry missing")
	}
	c.invalidate("alice")
	if _, ok := c.get("a", now); ok {
		t.Fatal("alice's token survived her session change")
	}
	if _, ok := c.get("b", now); !ok {
		t.Fatal("bob's token was dropped by alice's change")
	}

	// A lookup that started before a change must not be cached: it may
	// have read the database before the change.
	started := c.start()
	c.invalidate("bob")
	c.put("b", bob, started, now)
	if _, ok := c.get("b", now); ok {
		t.Fatal("a lookup racing a change was cached")
	}

	c.put("a", alice, c.start(), now)
	if _, ok := c.get("a", now.Add(2*time.Minute)); ok {
		t.Fatal("entry outlived its TTL")
	}
}

// TestServiceTrimIdle: at quiet the service forgets the last-seen times
// and cached tokens that no longer change what a request does, keeps
// the rest, and is trimmed by the quiet checks (cache.TrimWhenIdle).
func TestServiceTrimIdle(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(nil, Options{})
	s.now = func() time.Time { return now }
	alice := store.TokenOwner{User: store.User{Localpart: "alice"}, DeviceID: "A"}
	bob := store.TokenOwner{User: store.User{Localpart: "bob"}, DeviceID: "B"}
	carol := store.TokenOwner{User: store.User{Localpart: "carol"}, DeviceID: "C"}

	s.lastSeen["alice|A"] = now.Add(-seenInterval)
	s.lastSeen["bob|B"] = now.Add(-seenInterval / 2)
	s.tokens.put("a", alice, s.tokens.start(), now.Add(-2*time.Minute))
	s.tokens.put("b", bob, s.tokens.start(), now.Add(-time.Second))
	s.tokens.put("c", carol, s.tokens.start(), now)
	s.tokens.invalidate("carol")

	if n := cache.TrimIdleCaches(); n < 3 {
		t.Fatalf("the quiet checks dropped %d entries, want at least 3 of the service's", n)
	}
	if _, ok := s.lastSeen["alice|A"]; ok {
		t.Error("a last-seen time older than seenInterval was kept")
	}
	if _, ok := s.lastSeen["bob|B"]; !ok {
		t.Error("a last-seen time still throttling writes was dropped")
	}
	if _, ok := s.tokens.get("b", now); !ok {
		t.Error("a current token was dropped")
	}
	if len(s.tokens.entries) != 1 || len(s.tokens.gens) != 0 {
		t.Errorf("token cache holds %d entries and %d generations after the trim, want bob's entry and none (carol's retired)", len(s.tokens.entries), len(s.tokens.gens))
	}
	// Forgotten generations start again; changes still retire entries.
	s.tokens.put("c", carol, s.tokens.start(), now)
	if _, ok := s.tokens.get("c", now); !ok {
		t.Error("carol's token, looked up again after the trim, was not cached")
	}
	s.tokens.invalidate("carol")
	if _, ok := s.tokens.get("c", now); ok {
		t.Error("carol's token survived her session change after the trim")
	}
	started := s.tokens.start()
	s.tokens.invalidate("alice")
	s.tokens.put("a", alice, started, now)
	if _, ok := s.tokens.get("a", now); ok {
		t.Error("a lookup racing a change was cached after the trim")
	}
}
