package filter

import "testing"

func TestRoomEventFilterAllows(t *testing.T) {
	f, err := ParseRoomEventFilter([]byte(`{"types":["m.room.*","org.example"],"not_types":["m.room.member"],
		"not_senders":["@spam:x"],"contains_url":true,"not_rooms":["!no:x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		typ, sender, room string
		url, want         bool
	}{
		{"m.room.message", "@a:x", "!r:x", true, true},
		{"org.example", "@a:x", "!r:x", true, true},
		{"m.room.message", "@a:x", "!r:x", false, false}, // contains_url
		{"m.room.member", "@a:x", "!r:x", true, false},   // not_types beats types
		{"m.reaction", "@a:x", "!r:x", true, false},      // not in types
		{"m.room.message", "@spam:x", "!r:x", true, false},
		{"m.room.message", "@a:x", "!no:x", true, false},
	}
	for _, c := range cases {
		if got := f.Allows(c.typ, c.sender, c.room, c.url); got != c.want {
			t.Errorf("Allows(%s, %s, %s, %v) = %v, want %v", c.typ, c.sender, c.room, c.url, got, c.want)
		}
	}
}

func TestParseRejectsBadFilters(t *testing.T) {
	for _, raw := range []string{`[]`, `{"event_format":"xml"}`, `{"room":{"timeline":{"limit":-1}}}`, `{"presence":{"types":"x"}}`} {
		if _, err := Parse([]byte(raw)); err == nil {
			t.Errorf("Parse(%s) accepted", raw)
		}
	}
	f, err := Parse([]byte(`{"room":{"timeline":{"limit":5},"include_leave":true}}`))
	if err != nil || f.Room.Timeline.LimitOr(10, 100) != 5 || !f.Room.IncludeLeave {
		t.Fatalf("parse: %+v %v", f, err)
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{{"m.*", "m.room.message", true}, {"*", "", true}, {"m.*.message", "m.room.message", true}, {"m.*", "org.m", false}, {"a/*", "a/b/c", true}, {"abc", "ab", false}} {
		if got := glob(c.p, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

func TestExcludesType(t *testing.T) {
	none, some := []string{}, []string{"@a:hs.test"}
	for _, c := range []struct {
		f    EventFilter
		want bool
	}{
		{EventFilter{}, false},
		{EventFilter{NotTypes: []string{"m.presence"}}, true},
		{EventFilter{NotTypes: []string{"m.*"}}, true},
		{EventFilter{NotTypes: []string{"m.typing"}}, false},
		{EventFilter{Types: &none}, true},
		{EventFilter{Types: &[]string{"m.pres*"}}, false},
		{EventFilter{Types: &[]string{"m.typing"}}, true},
		{EventFilter{Senders: &none}, true},
		{EventFilter{Senders: &some}, false},
		{EventFilter{NotSenders: some}, false},
	} {
		if got := c.f.ExcludesType("m.presence"); got != c.want {
			t.Errorf("%+v: ExcludesType = %v, want %v", c.f, got, c.want)
		}
	}
}
