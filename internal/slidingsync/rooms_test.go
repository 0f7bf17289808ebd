package slidingsync

import (
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

func TestRequiredMatch(t *testing.T) {
	me := "@me:x"
	cases := []struct {
		required [][]string
		key      roommodel.StateKey
		want     bool
	}{
		{[][]string{{"m.room.name", ""}}, roommodel.StateKey{Type: "m.room.name"}, true},
		{[][]string{{"m.room.name", ""}}, roommodel.StateKey{Type: "m.room.topic"}, false},
		{[][]string{{"m.room.member", "$ME"}}, roommodel.StateKey{Type: "m.room.member", StateKey: me}, true},
		{[][]string{{"m.room.member", "$ME"}}, roommodel.StateKey{Type: "m.room.member", StateKey: "@you:x"}, false},
		{[][]string{{"m.room.member", "$LAZY"}}, roommodel.StateKey{Type: "m.room.member", StateKey: me}, false},
		{[][]string{{"m.space.child", "*"}}, roommodel.StateKey{Type: "m.space.child", StateKey: "!a:x"}, true},
		{[][]string{{"*", "*"}}, roommodel.StateKey{Type: "anything", StateKey: "k"}, true},
		{[][]string{{"*", ""}}, roommodel.StateKey{Type: "anything", StateKey: "k"}, false},
	}
	for _, c := range cases {
		if got := requiredMatch(c.required, c.key, me); got != c.want {
			t.Errorf("requiredMatch(%v, %v) = %v, want %v", c.required, c.key, got, c.want)
		}
	}
}

// Several lists naming the same keys in another order ask for the same
// state: the room must not be sent again as if the request changed.
func TestRequiredKey(t *testing.T) {
	a := requiredKey([][]string{{"m.room.name", ""}, {"m.room.member", "$LAZY"}, {"m.room.name", ""}})
	b := requiredKey([][]string{{"m.room.member", "$LAZY"}, {"m.room.name", ""}})
	if a != b {
		t.Fatalf("%q != %q", a, b)
	}
	if c := requiredKey([][]string{{"m.room.member", "$LAZY"}}); c == b {
		t.Fatal("different required_state, same key")
	}
}
