package accounts

import (
	"testing"
	"time"

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
