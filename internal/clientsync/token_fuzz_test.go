package clientsync

import (
	"strings"
	"testing"
)

// FuzzParseToken: /sync's since and every pagination token built on
// stream positions come from clients. Whatever parses renders back to a
// token that parses to the same positions; a sync token is never below
// zero; what does not start with "s" never parses.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"s0", "s42", "s42_7", "s-5", "s9223372036854775807", "s-9223372036854775808",
		"s9223372036854775808", "s1_2_3_4", "s1__2", "s_", "s", "", "x1", "s1\x00", "s1_\xff", "s+1", "s 1", "s1_-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		page, perr := ParsePageToken(s)
		tok, err := ParseToken(s)
		if !strings.HasPrefix(s, "s") && (err == nil || perr == nil) {
			t.Fatalf("%q parsed without the s prefix", s)
		}
		if err == nil {
			if perr != nil || page != tok {
				t.Fatalf("%q: sync token %+v but page token %+v, %v", s, tok, page, perr)
			}
			if tok.Events < 0 || tok.ToDevice < 0 {
				t.Fatalf("%q: negative sync token %+v", s, tok)
			}
			again, err := ParseToken(tok.String())
			if err != nil || again != tok {
				t.Fatalf("%q -> %q -> %+v, %v; want %+v", s, tok.String(), again, err, tok)
			}
		}
		if perr == nil {
			again, err := ParsePageToken(page.String())
			if err != nil || again != page {
				t.Fatalf("%q -> %q -> %+v, %v; want %+v", s, page.String(), again, err, page)
			}
		}
	})
}
