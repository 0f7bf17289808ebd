package directory

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// FuzzPage: the since token and limit of /publicRooms are the client's
// (or another server's). The page asked for lies within the list, and
// the tokens of the pages around it parse back to offsets within it.
func FuzzPage(f *testing.F) {
	for _, s := range []struct {
		n      int
		since  string
		limit  int
		hasLim bool
	}{{10, "", 5, true}, {10, "o5", 5, true}, {10, "o1", math.MaxInt, true}, {10, "o9223372036854775807", 1, true}, {3, "o2", -1, true},
		{0, "o0", 0, false}, {10, "o-1", 5, true}, {10, "o+3", 2, true}, {10, "x", 1, true}} {
		f.Add(s.n, s.since, s.limit, s.hasLim)
	}
	f.Fuzz(func(t *testing.T, n int, since string, limit int, hasLimit bool) {
		if n < 0 || n > 1<<20 {
			return
		}
		offset := 0
		if since != "" {
			v, err := strconv.Atoi(strings.TrimPrefix(since, "o"))
			if !strings.HasPrefix(since, "o") || err != nil || v < 0 {
				return // refused by PublicRooms
			}
			offset = v
		}
		var lp *int
		if hasLimit {
			lp = &limit
		}
		start, end, prev, next := page(n, offset, lp)
		if start < 0 || start > end || end > n {
			t.Fatalf("page(%d, %d, %d) = [%d, %d)", n, offset, limit, start, end)
		}
		for _, tok := range []string{prev, next} {
			if tok == "" {
				continue
			}
			v, err := strconv.Atoi(strings.TrimPrefix(tok, "o"))
			if err != nil || v < 0 || v > n {
				t.Fatalf("page(%d, %d, %d) gave the token %q", n, offset, limit, tok)
			}
		}
	})
}

// FuzzChildRefs: children_state comes from other servers' /hierarchy
// answers. Whatever a content holds, childRefs keeps at most
// maxChildrenPerRoom children, each with a non-empty via of the strings
// the content gave, and never panics.
func FuzzChildRefs(f *testing.F) {
	for _, c := range []string{`{"via":["hs2.test"]}`, `{"via":["a"],"order":"x","suggested":true}`, `{"via":[]}`, `{"via":[1]}`,
		`{"via":"a"}`, `{"via":["\u0000"],"order":"\u007f"}`, `null`, `[]`, `{"via":["a"],"order":5}`} {
		f.Add([]byte(c), int64(3), "!r:hs2.test", false)
	}
	f.Fuzz(func(t *testing.T, content []byte, ts int64, roomID string, suggested bool) {
		var children []ChildState
		for i := range maxChildrenPerRoom + 2 {
			children = append(children, ChildState{Type: "m.space.child", StateKey: roomID + strconv.Itoa(i), Content: content, OriginServerTS: ts - int64(i)})
		}
		refs := childRefs(children, suggested)
		if len(refs) > maxChildrenPerRoom {
			t.Fatalf("%d children kept", len(refs))
		}
		for _, r := range refs {
			if len(r.via) == 0 {
				t.Fatalf("child %q kept without a via", r.roomID)
			}
		}
	})
}
