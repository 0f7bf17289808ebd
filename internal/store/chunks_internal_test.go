package store

import (
	"errors"
	"slices"
	"testing"
)

// TestInChunks: a long IN list is queried in chunks of at most maxInList
// values, covering every value once and in order; an error stops it.
func TestInChunks(t *testing.T) {
	vals := make([]int, 2*maxInList+1)
	for i := range vals {
		vals[i] = i
	}
	var sizes []int
	got, err := inChunks(vals, func(chunk []int) ([]int, error) {
		sizes = append(sizes, len(chunk))
		return chunk, nil
	})
	if err != nil || !slices.Equal(got, vals) || !slices.Equal(sizes, []int{maxInList, maxInList, 1}) {
		t.Fatalf("got %d values in chunks %v, err %v", len(got), sizes, err)
	}
	if got, err := inChunks([]int(nil), func([]int) ([]int, error) { t.Fatal("queried nothing"); return nil, nil }); got != nil || err != nil {
		t.Fatalf("empty list: %v, %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := inChunks(vals, func([]int) ([]int, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

// TestChunkSize: a group commit's batch of up to exactChunks rows goes
// in one statement per table whatever its number (in powers of two a
// batch of 7 took three); longer runs take powers of two up to 64, so
// that the statement texts stay few.
func TestChunkSize(t *testing.T) {
	split := func(n int) []int {
		var sizes []int
		for n > 0 {
			c := chunkSize(n)
			sizes = append(sizes, c)
			n -= c
		}
		return sizes
	}
	for n, want := range map[int][]int{1: {1}, 7: {7}, 16: {16}, 21: {16, 5}, 100: {64, 32, 4}, 130: {64, 64, 2}} {
		if got := split(n); !slices.Equal(got, want) {
			t.Errorf("%d rows in statements of %v, want %v", n, got, want)
		}
	}
}
