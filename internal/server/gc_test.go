package server

import "testing"

func TestGCPercentFor(t *testing.T) {
	const floor = 32 << 20
	for _, c := range []struct {
		live, roots uint64
		want        int
	}{
		{0, 0, 100},
		{floor / 2, 0, 100},
		{floor, 1 << 20, 100},
		{floor / 4, 0, 300},
		// Roots count in Go's goal: with 4 MiB of them, a GOGC of 300
		// would put the goal at 44 MiB, not 32.
		{floor / 4, 4 << 20, 200},
		// A tiny live heap: GOGC is bounded rather than 6,300, which a
		// heap found bigger at the next collection would make a goal of
		// hundreds of MB.
		{floor / 64, 0, maxGCPercent},
		{floor / 4, floor, 100}, // the default goal is over the floor already
	} {
		got := gcPercentFor(floor, c.live, c.roots)
		if got != c.want {
			t.Errorf("gcPercentFor(%d, %d) = %d, want %d", c.live, c.roots, got, c.want)
		}
		// Go's goal at that GOGC is the floor (unless bounded), or the
		// default's above it.
		goal := c.live + (c.live+c.roots)*uint64(got)/100
		if c.live > 0 && got > 100 && got < maxGCPercent && (goal > floor || goal < floor-floor/100) {
			t.Errorf("live %d, roots %d: goal %d, want the floor %d", c.live, c.roots, goal, floor)
		}
	}
}
