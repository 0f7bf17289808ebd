package admin

import (
	"net/url"
	"testing"

	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// FuzzRoomViewParams: the admin /context and /hierarchy query parsers
// never panic, refuse what they cannot read with a Matrix 4xx, and keep
// limits within their caps.
func FuzzRoomViewParams(f *testing.F) {
	f.Add("limit=4&filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%2C%22lazy_load_members%22%3Atrue%7D")
	f.Add("limit=-1&filter={")
	f.Add("limit=99999999999999999999999&max_depth=2&from=eyJyIjoiIXIifQ")
	f.Add("from=junk&suggested_only=true&limit=0")
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		check := func(what string, err error) {
			if err == nil {
				return
			}
			if me, ok := mxerr.As(err); !ok || me.Status < 400 || me.Status >= 500 {
				t.Fatalf("%s: %v is not a Matrix 4xx error", what, err)
			}
		}
		cq, err := parseContextQuery(q)
		check("context", err)
		if err == nil && (cq.limit < 0 || cq.limit > maxMessages || cq.filter == nil) {
			t.Fatalf("context query %q: %+v", query, cq)
		}
		tok, limit, err := directory.ParseHierarchyQuery(q, "!r")
		check("hierarchy", err)
		if err == nil && (limit < 1 || limit > directory.MaxHierarchyRooms || tok.Skip < 0 || tok.Room != "!r") {
			t.Fatalf("hierarchy query %q: %+v %d", query, tok, limit)
		}
	})
}
