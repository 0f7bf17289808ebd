package cache

import (
	"fmt"
	"testing"
)

// Marks stays within its limit however many keys change, and never
// claims a forgotten key unchanged.
func TestMarksAreBounded(t *testing.T) {
	m := NewMarksLimit(10, 100)
	for i := 0; i < 1000; i++ {
		m.Note(fmt.Sprint("k", i), int64(11+i))
		if n := m.Len(); n > 100 {
			t.Fatalf("after %d keys: %d remembered, limit 100", i+1, n)
		}
	}
	for i := 0; i < 1000; i++ {
		pos := int64(11 + i)
		if m.Unchanged(fmt.Sprint("k", i), pos-1) {
			t.Fatalf("k%d changed at %d but counts unchanged after %d", i, pos, pos-1)
		}
		if !m.Unchanged(fmt.Sprint("k", i), 1010) {
			t.Fatalf("k%d: nothing changed after the last position, yet not unchanged", i)
		}
	}
	// The newest keys are still told apart: an unrelated key is
	// unchanged after the newest half's positions.
	if !m.Unchanged("other", 1009) {
		t.Fatal("a key never noted counts as changed after the newest positions")
	}
	if m.Unchanged("other", 9) {
		t.Fatal("a position before the start counts as unchanged")
	}
}
