package bench

import "testing"

// The scale curve's figures are comparable from step to step only if
// every user is in exactly 10 rooms, never twice in one, and the rooms
// keep their mix of sizes within 2 and min(5000, users).
func TestScaleRoomLayout(t *testing.T) {
	for _, n := range []int{10, 11, 100, 1000, 10000} {
		sizes := scaleRoomSizes(n)
		per := make([]int, n)
		counts := map[int]int{}
		for r, m := range scaleRoomMembers(n, sizes) {
			if len(m) != sizes[r] || len(m) < 2 || len(m) > min(n, scaleMaxRoom) {
				t.Fatalf("n=%d: room %d has %d members (size %d)", n, r, len(m), sizes[r])
			}
			counts[len(m)]++
			seen := map[int]bool{}
			for _, u := range m {
				if seen[u] {
					t.Fatalf("n=%d: user %d twice in room %d", n, u, r)
				}
				seen[u] = true
				per[u]++
			}
		}
		for u, c := range per {
			if c != scaleRoomsPerUser {
				t.Fatalf("n=%d: user %d in %d rooms, want %d", n, u, c, scaleRoomsPerUser)
			}
		}
		if n >= 1000 && (counts[min(n, scaleMaxRoom)] == 0 || counts[2] == 0) {
			t.Errorf("n=%d: sizes %v lack the largest or the smallest rooms", n, counts)
		}
		t.Logf("n=%d: %d rooms", n, len(sizes))
	}
}
