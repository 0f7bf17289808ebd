package server

import "testing"

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 100},
		{heapFloor / 2, 100},
		{heapFloor, 100},
		{heapFloor / 4, 300},
		{heapFloor / 64, 6300},
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", c.live, got, c.want)
		}
		// The goal it gives is the floor, or twice the live heap above it.
		if goal := c.live * uint64(100+gcPercentFor(c.live)) / 100; c.live > 0 && goal < min(heapFloor, 2*c.live) {
			t.Errorf("live %d: goal %d under the floor", c.live, goal)
		}
	}
}
