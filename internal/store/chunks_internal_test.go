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
