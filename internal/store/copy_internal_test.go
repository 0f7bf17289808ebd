package store

import "testing"

// The copy's checksum must agree across engines (booleans read as bool
// from PostgreSQL and as 0/1 from SQLite, text as string or bytes, rows
// in any order) and differ when a value does.
func TestRowSum(t *testing.T) {
	a, b := newRowSum(), newRowSum()
	a.add([]any{int64(1), "x", true, nil, 2.5, float64(3)})
	a.add([]any{int64(2), "y", false, []byte{0, 1}, 0.1, float64(4)})
	b.add([]any{int64(2), []byte("y"), int64(0), []byte{0, 1}, 0.1, int64(4)})
	b.add([]any{int64(1), []byte("x"), int64(1), nil, 2.5, int64(3)})
	if a.String() != b.String() || a.n != b.n {
		t.Fatalf("same rows, different sums: %s %s", a, b)
	}
	c := newRowSum()
	c.add([]any{int64(1), "x", true, nil, 2.5, float64(3)})
	c.add([]any{int64(2), "y", false, []byte{0, 1}, 0.1, float64(5)})
	if c.String() == a.String() {
		t.Fatal("a changed value left the sum unchanged")
	}
	// A value's boundary is part of the digest: ("ab","c") is not ("a","bc").
	d, e := newRowSum(), newRowSum()
	d.add([]any{"ab", "c"})
	e.add([]any{"a", "bc"})
	if d.String() == e.String() {
		t.Fatal("values that run together hash alike")
	}
}
