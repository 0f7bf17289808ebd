package glob

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true}, {"", "a", false}, {"*", "", true}, {"*", "anything", true},
		{"a*b", "ab", true}, {"a*b", "axxb", true}, {"a*b", "axxbc", false},
		{"*b*", "abc", true}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"[a]", "[a]", true}, {`\*`, `\x`, true}, {"é?", "éü", true},
		{"?", "é", true}, {"??", "é", false}, {"@*:*.example.org", "@spam:a.example.org", true},
		{"*a*a*a*a*a*b", strings.Repeat("a", 200), false},
		{"*", "*0", true}, {"a*", "a*b", true}, {"*b", "**b", true}, {"?*", "*", true},
	} {
		if got := Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// FuzzMatch: any pattern and string, never a panic; a pattern without
// wildcards matches only itself, and "*" matches everything.
func FuzzMatch(f *testing.F) {
	f.Add("a*b?c", "axxbyc")
	f.Add("é*", "éàü")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := Match(pattern, s)
		if !strings.ContainsAny(pattern, "*?") && got != (pattern == s) && pattern == string([]rune(pattern)) && s == string([]rune(s)) {
			t.Fatalf("Match(%q, %q) = %v for a literal pattern", pattern, s, got)
		}
		if !Match("*", s) {
			t.Fatalf("* does not match %q", s)
		}
	})
}
