package cache

import (
	"maps"
	"runtime"
	"testing"
)

// TestResizedGivesBackTheMap: a map emptied after a burst, copied with
// Resized, holds what its entries take, not the burst's buckets (which
// a map keeps when keys are deleted, and maps.Clone copies).
func TestResizedGivesBackTheMap(t *testing.T) {
	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := live()
	m := map[int64]int64{}
	for i := range int64(200000) {
		m[i] = -i
	}
	full := live()
	for i := int64(10); i < 200000; i++ {
		delete(m, i)
	}
	want := map[int64]int64{}
	for i := range int64(10) {
		want[i] = -i
	}
	m = Resized(m)
	emptied := live()
	t.Logf("heap %d KiB empty, %d full, %d emptied and resized", base>>10, full>>10, emptied>>10)
	if emptied > base+(full-base)/10 {
		t.Errorf("resized map holds %d KiB of the %d KiB it took full", (emptied-base)>>10, (full-base)>>10)
	}
	if !maps.Equal(m, want) {
		t.Errorf("Resized changed the entries: %v, want %v", m, want)
	}
	runtime.KeepAlive(m)
}
