package search

import (
	"slices"
	"testing"
)

func TestWords(t *testing.T) {
	for term, want := range map[string][]string{
		"Hello, World!":        {"hello", "world"},
		`"quote" AND (x*)`:     {"quote", "and", "x"},
		"@alice:hs1.test":      {"alice", "hs1", "test"},
		"  ":                   nil,
		"Ünïcode naïve café's": {"ünïcode", "naïve", "café", "s"},
	} {
		if got := Words(term); !slices.Equal(got, want) {
			t.Errorf("Words(%q) = %q, want %q", term, got, want)
		}
	}
}

func TestDirectoryMatches(t *testing.T) {
	name := "Robert Tester"
	u := &DirectoryUser{UserID: "@bob:hs1.test", DisplayName: &name}
	for term, want := range map[string]bool{
		"rob": true, "ROBERT test": true, "@bo": true, "hs1": true, "bob rob": true,
		"bert": false, "robert x": false, "": false, "ester": false,
	} {
		if got := matches(Words(term), u); got != want {
			t.Errorf("matches(%q) = %v, want %v", term, got, want)
		}
	}
}
