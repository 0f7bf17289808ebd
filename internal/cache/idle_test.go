package cache

import (
	"runtime"
	"testing"
)

func TestLRUTrimIdleDropsWhatWentUnused(t *testing.T) {
	c := NewLRU[string, int](100)
	c.Put("a", 1)
	c.Put("b", 2)
	c.Put("c", 3)
	// Everything was used since the last trim (there was none).
	if n := c.TrimIdle(); n != 0 || c.Len() != 3 {
		t.Fatalf("first trim dropped %d, %d left; want 0, 3", n, c.Len())
	}
	c.Get("a")
	c.PutCost("d", 4, 5)
	if n := c.TrimIdle(); n != 2 {
		t.Fatalf("trim dropped %d, want 2 (b and c went unused)", n)
	}
	for _, k := range []string{"a", "d"} {
		if !c.Contains(k) {
			t.Errorf("%s was used and is gone", k)
		}
	}
	if c.Contains("b") || c.Contains("c") {
		t.Error("unused entries survived")
	}
	// The costs of what was dropped are given back: 95 more fit.
	c.PutCost("e", 5, 94)
	if !c.Contains("a") || !c.Contains("d") {
		t.Error("cost of the dropped entries still counted")
	}
	c.TrimIdle()
	c.TrimIdle()
	if c.Len() != 0 {
		t.Fatalf("%d entries survived two trims unused", c.Len())
	}
}

func TestTrimIdleCachesOnlyRegisteredAndForgetsDropped(t *testing.T) {
	kept := ExpireWhenIdle(NewLRU[int, int](10))
	plain := NewLRU[int, int](10)
	kept.Put(1, 1)
	plain.Put(1, 1)
	TrimIdleCaches()
	TrimIdleCaches()
	if kept.Len() != 0 {
		t.Error("a registered cache kept an unused entry through two trims")
	}
	if plain.Len() != 1 {
		t.Error("an unregistered cache was trimmed")
	}
	// A dropped cache leaves the registry.
	before := registered()
	func() { ExpireWhenIdle(NewLRU[int, int](10)).Put(1, 1) }()
	runtime.GC()
	TrimIdleCaches()
	if after := registered(); after != before {
		t.Errorf("registry holds %d caches, want %d: a collected cache was kept", after, before)
	}
	runtime.KeepAlive(kept)
}

func registered() int {
	idle.mu.Lock()
	defer idle.mu.Unlock()
	return len(idle.caches)
}

// TestLRUTrimIdleGivesBackTheMap: a cache emptied by TrimIdle after a
// burst does not keep the burst's map (Go's maps never shrink), and
// still works after.
func TestLRUTrimIdleGivesBackTheMap(t *testing.T) {
	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	c := NewLRU[int64, int64](1 << 30)
	base := live()
	for i := range int64(200000) {
		c.Put(i, i)
	}
	full := live()
	c.TrimIdle() // marks the entries unused since now
	if n := c.TrimIdle(); n != 200000 || c.Len() != 0 {
		t.Fatalf("TrimIdle dropped %d, %d left; want all 200000", n, c.Len())
	}
	emptied := live()
	t.Logf("heap %d KiB empty, %d full, %d emptied", base>>10, full>>10, emptied>>10)
	if emptied > base+(full-base)/10 {
		t.Errorf("emptied cache holds %d KiB of the %d KiB it took full", (emptied-base)>>10, (full-base)>>10)
	}
	c.Put(1, 2)
	if v, ok := c.Get(1); !ok || v != 2 {
		t.Errorf("Get after trim = %d, %v", v, ok)
	}
	runtime.KeepAlive(c)
}

// countingTrimmer is a record other than an LRU registered with
// TrimWhenIdle. Its padding keeps it out of the allocator's tiny blocks,
// which would keep it alive with their other objects.
type countingTrimmer struct {
	calls int
	_     [32]byte
}

func (c *countingTrimmer) TrimIdle() int { c.calls++; return 0 }

func TestTrimWhenIdleTrimsOtherRecords(t *testing.T) {
	c := TrimWhenIdle(&countingTrimmer{})
	TrimIdleCaches()
	if c.calls != 1 {
		t.Errorf("a record registered with TrimWhenIdle was trimmed %d times by one TrimIdleCaches, want 1", c.calls)
	}
	before := registered()
	func() { TrimWhenIdle(&countingTrimmer{}) }()
	runtime.GC()
	TrimIdleCaches()
	if after := registered(); after != before {
		t.Errorf("registry holds %d records, want %d: a collected one was kept", after, before)
	}
	runtime.KeepAlive(c)
}
