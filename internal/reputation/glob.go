package reputation

import "strings"

// glob is a compiled Matrix glob (spec "Moderation policy lists": `*`
// any run of characters, `?` exactly one). Matching is linear-time
// backtracking over the pattern's literal runs, without regexps, so
// that 100,000 globs stay cheap to hold and to compile.
type glob struct {
	pattern string
	// prefix and suffix are the literal runs before the first and after
	// the last wildcard; the index keys globs by them.
	prefix, suffix string
}

func compileGlob(p string) *glob {
	g := &glob{pattern: p}
	if i := strings.IndexAny(p, "*?"); i >= 0 {
		g.prefix = p[:i]
		g.suffix = p[strings.LastIndexAny(p, "*?")+1:]
	}
	return g
}

// match reports whether s matches the glob, byte by byte as Mjolnir and
// Synapse's glob_to_regex do for identifiers (which are ASCII in
// practice; a multi-byte character counts as several for `?`).
func (g *glob) match(s string) bool {
	p := g.pattern
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
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

// globIndex finds the globs that may match a string without trying
// them all: each glob is filed under its longer literal end (prefix or
// suffix), and a lookup tries each filed length against the string's
// own ends; globs with no literal end (`*`, `?*`) are always tried.
type globIndex struct {
	byPrefix, bySuffix map[int]map[string][]*globRule
	prefixLens         []int
	suffixLens         []int
	open               []*globRule
	n                  int
}

type globRule struct {
	g    *glob
	rule *Rule
}

func (x *globIndex) add(gr *globRule) {
	x.n++
	g := gr.g
	switch {
	case g.prefix == "" && g.suffix == "":
		x.open = append(x.open, gr)
	case len(g.suffix) >= len(g.prefix):
		x.bySuffix, x.suffixLens = file(x.bySuffix, x.suffixLens, g.suffix, gr)
	default:
		x.byPrefix, x.prefixLens = file(x.byPrefix, x.prefixLens, g.prefix, gr)
	}
}

func file(m map[int]map[string][]*globRule, lens []int, key string, gr *globRule) (map[int]map[string][]*globRule, []int) {
	if m == nil {
		m = map[int]map[string][]*globRule{}
	}
	byKey := m[len(key)]
	if byKey == nil {
		byKey = map[string][]*globRule{}
		m[len(key)] = byKey
		lens = append(lens, len(key))
	}
	byKey[key] = append(byKey[key], gr)
	return m, lens
}

func (x *globIndex) remove(rule *Rule) {
	g := compileGlob(rule.Entity)
	drop := func(list []*globRule) []*globRule {
		for i, gr := range list {
			if gr.rule == rule {
				x.n--
				return append(list[:i:i], list[i+1:]...)
			}
		}
		return list
	}
	unfile := func(m map[int]map[string][]*globRule, lens []int, key string) []int {
		byKey := m[len(key)]
		if byKey == nil {
			return lens
		}
		if rest := drop(byKey[key]); len(rest) > 0 {
			byKey[key] = rest
		} else {
			delete(byKey, key)
		}
		if len(byKey) == 0 {
			delete(m, len(key))
			for i, l := range lens {
				if l == len(key) {
					return append(lens[:i:i], lens[i+1:]...)
				}
			}
		}
		return lens
	}
	switch {
	case g.prefix == "" && g.suffix == "":
		x.open = drop(x.open)
	case len(g.suffix) >= len(g.prefix):
		x.suffixLens = unfile(x.bySuffix, x.suffixLens, g.suffix)
	default:
		x.prefixLens = unfile(x.byPrefix, x.prefixLens, g.prefix)
	}
}

// each calls fn for every glob matching s until fn returns false.
func (x *globIndex) each(s string, fn func(*Rule) bool) {
	if x.n == 0 {
		return
	}
	try := func(list []*globRule) bool {
		for _, gr := range list {
			if gr.g.match(s) && !fn(gr.rule) {
				return false
			}
		}
		return true
	}
	for _, l := range x.suffixLens {
		if l <= len(s) && !try(x.bySuffix[l][s[len(s)-l:]]) {
			return
		}
	}
	for _, l := range x.prefixLens {
		if l <= len(s) && !try(x.byPrefix[l][s[:l]]) {
			return
		}
	}
	try(x.open)
}
