package search

import (
	"strings"
	"testing"
	"unicode"
)

// FuzzParseBatch: the next_batch of /search comes back from the client
// (the order is the server's: Search checks order_by first). What parses
// is of the order asked for, never a negative offset, and renders back
// to itself.
func FuzzParseBatch(f *testing.F) {
	for _, s := range []string{"", batch{Order: OrderRank, Offset: 10}.String(), batch{Order: OrderRecent, Before: 42}.String(),
		batch{Order: OrderRank, Offset: -1}.String(), "!!", "e30", "eyJvIjoicmFuayIsIm4iOjFlMTAwfQ", "\x00"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, recent bool) {
		order := OrderRank
		if recent {
			order = OrderRecent
		}
		b, err := parseBatch(s, order)
		if err != nil {
			return
		}
		if b.Order != order || b.Offset < 0 {
			t.Fatalf("%q for %q gave %+v", s, order, b)
		}
		again, err := parseBatch(b.String(), order)
		if err != nil || again != b {
			t.Fatalf("%q -> %+v -> %+v, %v", s, b, again, err)
		}
	})
}

// FuzzWords: search terms are the client's; the words searched for are
// lower-cased runs of letters and digits, found in the term.
func FuzzWords(f *testing.F) {
	for _, s := range []string{"Hello, World!", "@alice:hs1.test", "\x00\xff", "İstanbul ǅ", strings.Repeat("a ", 1000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, term string) {
		lower := strings.ToLower(term)
		for _, w := range Words(term) {
			if w == "" || !strings.Contains(lower, w) {
				t.Fatalf("%q gave the word %q", term, w)
			}
			for _, r := range w {
				if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					t.Fatalf("%q gave the word %q", term, w)
				}
			}
		}
	})
}
