package reputation

import (
	"slices"
	"strings"

	matrixglob "github.com/myelin-chat/myelin/internal/glob"
)

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

// match reports whether s matches the glob (spec glob-style matching).
func (g *glob) match(s string) bool { return matrixglob.Match(g.pattern, s) }

// globIndex finds the globs that may match a string without trying
// them all: each glob is filed under one of its literal runs (the text
// between wildcards): its prefix, its suffix, or a run inside, and a
// lookup tries each filed length against the string's own ends (or,
// for inner runs, each of its substrings of that length). Globs with no
// literal run (`*`, `?*`) are always tried.
type globIndex struct {
	byPlace [3]map[int]map[string][]*globRule
	lens    [3][]int
	open    []*globRule
	n       int
}

// Where a glob is filed.
const (
	placeSuffix = iota
	placePrefix
	placeInner
)

type globRule struct {
	g    *glob
	rule *Rule
}

// placement picks the literal run a glob is filed under: the longest,
// as the most selective. A user ID's server part (a suffix from ':')
// counts for half its length, since the globs of one server all share
// it ("@*spam*:example.org"), and an anchored end wins a tie, since
// looking it up costs one probe rather than one per position.
func placement(g *glob) (place int, key string) {
	if g.prefix == "" && g.suffix == "" && !strings.ContainsFunc(g.pattern, func(r rune) bool { return r != '*' && r != '?' }) {
		return -1, ""
	}
	score := func(place int, run string) int {
		n := 4 * len(run)
		if place == placeSuffix && strings.HasPrefix(run, ":") {
			n /= 2
		}
		if place != placeInner {
			n++
		}
		return n
	}
	best := -1
	try := func(p int, run string) {
		if run == "" {
			return
		}
		if sc := score(p, run); sc > best {
			best, place, key = sc, p, run
		}
	}
	try(placeSuffix, g.suffix)
	try(placePrefix, g.prefix)
	inner := g.pattern[len(g.prefix) : len(g.pattern)-len(g.suffix)]
	for _, run := range strings.FieldsFunc(inner, func(r rune) bool { return r == '*' || r == '?' }) {
		try(placeInner, run)
	}
	return place, key
}

func (x *globIndex) add(gr *globRule) {
	x.n++
	place, key := placement(gr.g)
	if place < 0 {
		x.open = append(x.open, gr)
		return
	}
	m := x.byPlace[place]
	if m == nil {
		m = map[int]map[string][]*globRule{}
		x.byPlace[place] = m
	}
	byKey := m[len(key)]
	if byKey == nil {
		byKey = map[string][]*globRule{}
		m[len(key)] = byKey
		x.lens[place] = append(x.lens[place], len(key))
	}
	byKey[key] = append(byKey[key], gr)
}

func (x *globIndex) remove(rule *Rule) {
	drop := func(list []*globRule) []*globRule {
		for i, gr := range list {
			if gr.rule == rule {
				x.n--
				return append(list[:i:i], list[i+1:]...)
			}
		}
		return list
	}
	place, key := placement(compileGlob(rule.Entity))
	if place < 0 {
		x.open = drop(x.open)
		return
	}
	m := x.byPlace[place]
	byKey := m[len(key)]
	if byKey == nil {
		return
	}
	if rest := drop(byKey[key]); len(rest) > 0 {
		byKey[key] = rest
	} else {
		delete(byKey, key)
	}
	if len(byKey) == 0 {
		delete(m, len(key))
		x.lens[place] = slices.DeleteFunc(x.lens[place], func(l int) bool { return l == len(key) })
	}
}

// each calls fn for every glob matching s until fn returns false (a
// glob whose inner run occurs twice in s may be passed twice).
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
	for _, l := range x.lens[placeSuffix] {
		if l <= len(s) && !try(x.byPlace[placeSuffix][l][s[len(s)-l:]]) {
			return
		}
	}
	for _, l := range x.lens[placePrefix] {
		if l <= len(s) && !try(x.byPlace[placePrefix][l][s[:l]]) {
			return
		}
	}
	for _, l := range x.lens[placeInner] {
		byKey := x.byPlace[placeInner][l]
		for i := 0; i+l <= len(s); i++ {
			if !try(byKey[s[i:i+l]]) {
				return
			}
		}
	}
	try(x.open)
}
