package rooms

import (
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// MaxHeroes is how many members a room summary names (client-server
// spec, /sync "m.heroes": "up to 5").
const MaxHeroes = 5

// Heroes picks the members a room summary names in m.heroes, as Synapse
// does: up to five members other than self who are joined or invited,
// in user ID order, or, when there are none, those who left or were
// banned. members maps user IDs to their membership. The same rule
// serves /sync and the members a send_join with omit_members keeps
// (server-server spec, send_join v2).
func Heroes(members map[string]string, self string) []string {
	var heroes, gone []string
	for user, m := range members {
		switch {
		case user == self:
		case m == spec.Join || m == spec.Invite:
			heroes = append(heroes, user)
		case m == spec.Leave || m == spec.Ban:
			gone = append(gone, user)
		}
	}
	if len(heroes) == 0 {
		heroes = gone
	}
	slices.Sort(heroes)
	if heroes == nil {
		return []string{}
	}
	return heroes[:min(len(heroes), MaxHeroes)]
}
