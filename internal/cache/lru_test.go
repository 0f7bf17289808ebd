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

// TestLRURemoveIf: the matching entries go and give their cost back;
// the others stay in their order of use.
func TestLRURemoveIf(t *testing.T) {
	c := NewLRU[string, int](10)
	c.PutCost("a", 1, 3)
	c.PutCost("b", 2, 3)
	c.PutCost("c", 3, 3)
	if n := c.RemoveIf(func(k string, v int) bool { return v != 2 }); n != 2 {
		t.Fatalf("removed %d, want 2", n)
	}
	if c.Contains("a") || c.Contains("c") || !c.Contains("b") || c.Len() != 1 {
		t.Fatalf("after RemoveIf: a %v b %v c %v len %d", c.Contains("a"), c.Contains("b"), c.Contains("c"), c.Len())
	}
	// The cost was given back: two more entries of cost 3 fit with b.
	c.PutCost("d", 4, 3)
	c.PutCost("e", 5, 3)
	if !c.Contains("b") || c.Len() != 3 {
		t.Fatalf("cost not given back: len %d, b kept %v", c.Len(), c.Contains("b"))
	}
}
