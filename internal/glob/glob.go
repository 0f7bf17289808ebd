// Package glob is the spec's glob-style matching (appendix "Glob-style
// matching"): `*` any run of characters, `?` exactly one, every other
// character itself, over the whole string. Invite filtering (MSC4155)
// and reputation feeds (moderation policy lists) both match IDs this way.
package glob

// Match reports whether s matches pattern as a whole. Characters are
// Unicode code points, as Synapse's glob_to_regex matches them; ASCII
// input (identifiers, in practice) is matched byte by byte without
// decoding. Time is at worst proportional to len(pattern)*len(s): the
// last star is the only backtrack point a match needs.
func Match(pattern, s string) bool {
	if ascii(pattern) && ascii(s) {
		return match([]byte(pattern), []byte(s))
	}
	return match([]rune(pattern), []rune(s))
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func match[C byte | rune](p, s []C) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		// A star is a wildcard even where the string holds a star too.
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
