package federation

import (
	"fmt"
	"testing"
	"time"
)

// TestFailureCache: a failed server is recent until notaryRetryAfter has
// passed, then forgotten; the cache never holds more than
// maxNotaryFailures servers, making room for the newest failure.
func TestFailureCache(t *testing.T) {
	var c failureCache
	now := time.Unix(1000, 0)
	if c.recent("a.test", now) {
		t.Fatal("an unknown server is recent")
	}
	c.add("a.test", now)
	if !c.recent("a.test", now.Add(notaryRetryAfter-time.Millisecond)) {
		t.Fatal("a failure is forgotten within the window")
	}
	if c.recent("b.test", now) {
		t.Fatal("one server's failure counts for another")
	}
	if c.recent("a.test", now.Add(notaryRetryAfter)) {
		t.Fatal("a failure is still recent after the window")
	}
	if len(c.until) != 0 {
		t.Fatalf("an expired entry was kept: %v", c.until)
	}

	for i := range maxNotaryFailures + 10 {
		c.add(fmt.Sprintf("s%d.test", i), now)
	}
	if len(c.until) != maxNotaryFailures {
		t.Fatalf("%d entries, want at most %d", len(c.until), maxNotaryFailures)
	}
	last := fmt.Sprintf("s%d.test", maxNotaryFailures+9)
	if !c.recent(last, now) {
		t.Fatal("the newest failure made no room for itself")
	}
	// Expired entries go first when room is needed.
	later := now.Add(notaryRetryAfter)
	c.add("fresh.test", later)
	if len(c.until) != 1 || !c.recent("fresh.test", later) {
		t.Fatalf("expired entries were not dropped to make room: %d left", len(c.until))
	}
}
