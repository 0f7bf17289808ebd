package cache

import "testing"

func TestLRUEvictsLeastRecentByCost(t *testing.T) {
	c := NewLRU[string, int](3)
	c.Put("a", 1)
	c.Put("b", 2)
	c.Get("a") // b is now the least recent
	c.PutCost("c", 3, 2)
	if _, ok := c.Get("b"); ok {
		t.Fatal("b should have been evicted")
	}
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatal("a lost")
	}
	c.PutCost("d", 4, 10) // larger than capacity: kept alone
	if c.Len() != 1 {
		t.Fatalf("len %d, want 1", c.Len())
	}
	c.Remove("d")
	if c.Len() != 0 {
		t.Fatal("remove failed")
	}
}
