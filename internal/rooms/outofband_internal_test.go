package rooms

import "testing"

// TestStrippedStateVersion: the room version of a room this server is
// not in comes from the create event of the stripped state an invite or
// knock was stored with; a create event without room_version means "1"
// (spec); without a create event the version is unknown.
func TestStrippedStateVersion(t *testing.T) {
	for _, c := range []struct {
		name, json, want string
	}{
		{"invite", `{"unsigned":{"invite_room_state":[{"type":"m.room.name","content":{}},{"type":"m.room.create","content":{"room_version":"10"}}]}}`, "10"},
		{"knock", `{"unsigned":{"knock_room_state":[{"type":"m.room.create","content":{"room_version":"12"}}]}}`, "12"},
		{"no room_version", `{"unsigned":{"invite_room_state":[{"type":"m.room.create","content":{}}]}}`, "1"},
		{"unknown version", `{"unsigned":{"invite_room_state":[{"type":"m.room.create","content":{"room_version":"99"}}]}}`, ""},
		{"no create event", `{"unsigned":{"invite_room_state":[{"type":"m.room.name","content":{}}]}}`, ""},
		{"malformed entries", `{"unsigned":{"invite_room_state":[1,"x",{"type":"m.room.create","content":{"room_version":7}}]}}`, ""},
		{"not JSON", `{`, ""},
	} {
		v, err := strippedStateVersion(c.json)
		got := ""
		if err == nil {
			got = string(v.Version())
		}
		if got != c.want {
			t.Errorf("%s: version %q (%v), want %q", c.name, got, err, c.want)
		}
	}
}
