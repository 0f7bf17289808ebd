package rooms

import (
	"slices"
	"testing"
)

func TestHeroes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members map[string]string
		want    []string
	}{
		{"none", map[string]string{"@me:a": "join"}, []string{}},
		{"joined and invited, in order, not self", map[string]string{"@me:a": "join", "@c:a": "invite", "@b:a": "join", "@z:a": "leave"},
			[]string{"@b:a", "@c:a"}},
		{"at most five", map[string]string{"@1:a": "join", "@2:a": "join", "@3:a": "join", "@4:a": "join", "@5:a": "join", "@6:a": "join"},
			[]string{"@1:a", "@2:a", "@3:a", "@4:a", "@5:a"}},
		{"the departed when no one else", map[string]string{"@me:a": "join", "@b:a": "leave", "@c:a": "ban", "@d:a": "knock"},
			[]string{"@b:a", "@c:a"}},
	} {
		if got := Heroes(tc.members, "@me:a"); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
