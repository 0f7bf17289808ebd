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

func TestMarks(t *testing.T) {
	m := NewMarks(10)
	if m.Unchanged("a", 5) {
		t.Fatal("a position before start-up was taken as known")
	}
	if !m.Unchanged("a", 10) {
		t.Fatal("no change since start-up was not seen")
	}
	m.Note("a", 12)
	if m.Unchanged("a", 11) || !m.Unchanged("a", 12) || !m.Unchanged("b", 11) {
		t.Fatal("marks")
	}
	m.Note("a", 11)
	if !m.Unchanged("a", 12) {
		t.Fatal("an older change moved the mark back")
	}
	var none *Marks
	if none.Unchanged("a", 100) {
		t.Fatal("nil marks know nothing")
	}
}
