package filter

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var filterSeeds = []string{
	`{}`,
	`{"room":{"timeline":{"limit":10,"types":["m.room.*"],"not_senders":["@a:x"]},"state":{"lazy_load_members":true}}}`,
	`{"event_fields":["content.body","type"],"event_format":"client","presence":{"not_types":["*"]}}`,
	`{"room":{"rooms":["!a:x"],"not_rooms":["!b:x"],"include_leave":true,"ephemeral":{"limit":0}}}`,
	`{"types":["*a*a*a*a*a*a*a*a*a*a*a*b"],"contains_url":false,"limit":20}`,
	`{"room":{"timeline":{"limit":-1}}}`,
	`{"room":{"timeline":{"limit":1e400}}}`,
	`{"room":{"timeline":{"limit":99999999999999999999}}}`,
	`{"types":["\u0000"],"senders":["\ud800"]}`,
	"{\"types\":[\"\xff\xfe\"]}",
	`{"event_format":"federation","room":{"account_data":{"senders":null}}}`,
	`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	`{"room":{"timeline":{"types":[` + strings.Repeat(`"x",`, 100) + `"y"]}}}`,
}

// FuzzParse: filters are stored from /user/{userId}/filter bodies and
// read from the filter query parameter of /sync. What parses has no
// negative limit and a known event_format, and survives a round trip
// through its JSON form (which is how a stored filter is served back).
func FuzzParse(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		flt, err := Parse(raw)
		if err != nil {
			return
		}
		if flt.EventFormat != "" && flt.EventFormat != "client" && flt.EventFormat != "federation" {
			t.Fatalf("event_format %q accepted", flt.EventFormat)
		}
		for _, l := range []*int{flt.Presence.Limit, flt.AccountData.Limit, flt.Room.Timeline.Limit, flt.Room.State.Limit,
			flt.Room.Ephemeral.Limit, flt.Room.AccountData.Limit} {
			if l != nil && *l < 0 {
				t.Fatalf("negative limit accepted: %s", raw)
			}
		}
		out, err := json.Marshal(flt)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if !reflect.DeepEqual(normalize(flt), normalize(again)) {
			t.Fatalf("round trip changed the filter: %s -> %s", raw, out)
		}
		// Evaluating the filter is bounded too (see FuzzGlob).
		flt.Room.Timeline.Allows("m.room.message", "@a:x", "!r:x", true)
	})
}

// normalize makes invalid UTF-8, which encoding/json replaces by U+FFFD
// on output, compare equal after a round trip.
func normalize(f *Filter) *Filter {
	raw, _ := json.Marshal(f)
	var out Filter
	_ = json.Unmarshal(raw, &out)
	return &out
}

// FuzzParseRoomEventFilter: the filter query parameter of /messages and
// /context.
func FuzzParseRoomEventFilter(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		flt, err := ParseRoomEventFilter(raw)
		if err != nil {
			return
		}
		if flt.Limit != nil && *flt.Limit < 0 {
			t.Fatalf("negative limit accepted: %s", raw)
		}
		if got := flt.LimitOr(10, 100); got < 0 || got > 100 {
			t.Fatalf("LimitOr(10, 100) = %d", got)
		}
		flt.Allows("m.room.message", "@a:x", "!r:x", false)
	})
}

// FuzzGlob: the types and not_types patterns of a filter are the
// client's; matching them agrees with a regular expression (the spec's
// "*" matches any sequence of characters) and takes time linear in the
// pattern times the type, whatever the pattern.
func FuzzGlob(f *testing.F) {
	f.Add("m.*", "m.room.message")
	f.Add("*a*a*a*a*a*a*a*a*a*a*b", strings.Repeat("a", 255))
	f.Add("**", "")
	f.Add("a\x00*", "a\x00b")
	f.Add("\xff*", "\xff\xfe")
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 1024 || len(s) > 1024 {
			return
		}
		start := time.Now()
		got := glob(p, s)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("glob(%q, %q) took %v", p, s, d)
		}
		if !utf8.ValidString(p) || !utf8.ValidString(s) {
			return
		}
		var re strings.Builder
		re.WriteString(`^(?s)`)
		for i, part := range strings.Split(p, "*") {
			if i > 0 {
				re.WriteString(`.*`)
			}
			re.WriteString(regexp.QuoteMeta(part))
		}
		re.WriteString(`$`)
		if want := regexp.MustCompile(re.String()).MatchString(s); want != got {
			t.Fatalf("glob(%q, %q) = %v, want %v", p, s, got, want)
		}
	})
}
