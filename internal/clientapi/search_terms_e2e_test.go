package clientapi_test

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestSearchOddTerms checks that query syntax in a search term is taken
// as plain words on both engines: no error, and the words still match.
func TestSearchOddTerms(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		r := relRoom(t, alice)
		ev := relSend(t, alice, r, event.EventMessage, relText("NEAR the (quince) OR: tree"))
		for _, term := range []string{`"quince`, `quince*`, `-quince`, `quince OR`, `(quince) AND NOT NEAR`, `qu:ince`, `quince'`, `^quince$`, `a & b | !c`} {
			searchRooms(t, alice, map[string]any{"search_term": term}, "") // fails the test on an error
		}
		for _, term := range []string{`"quince`, `quince*`, `(quince)`, `QUINCE tree`, `qui`} {
			if got := searchRooms(t, alice, map[string]any{"search_term": term}, ""); !slices.Equal(searchIDs(got), []id.EventID{ev}) {
				t.Fatalf("%q found %v", term, searchIDs(got))
			}
		}
		for _, term := range []string{"", "   ", "!!!"} {
			if got := searchRooms(t, alice, map[string]any{"search_term": term}, ""); len(got.Results) != 0 {
				t.Fatalf("%q found %v", term, searchIDs(got))
			}
		}
	})
}
