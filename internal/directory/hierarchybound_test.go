package directory

import (
	"encoding/json"
	"fmt"
	"testing"
)

// FuzzRemoteHierarchyAnswer: another server's /hierarchy answer, parsed
// as the federation client parses it and cut by boundAnswer, keeps at
// most maxChildrenPerRoom valid child events per entry, as many child
// entries, each named by the room's kept child events, and only
// inaccessible children it names; it never panics.
func FuzzRemoteHierarchyAnswer(f *testing.F) {
	var states, children []any
	var inaccessible []string
	for i := range maxChildrenPerRoom + 30 {
		id := fmt.Sprintf("!c%d:hs2.test", i)
		states = append(states, map[string]any{"type": "m.space.child", "state_key": id, "content": map[string]any{"via": []string{"hs2.test"}}})
		children = append(children, map[string]any{"room_id": id, "children_state": states})
		inaccessible = append(inaccessible, id, id)
	}
	seed, _ := json.Marshal(map[string]any{"room": map[string]any{"room_id": "!s:hs2.test", "children_state": states},
		"children": children, "inaccessible_children": inaccessible})
	f.Add(seed)
	f.Add([]byte(`{"room":{"room_id":"!s:hs2.test","children_state":[{"type":"m.space.child","state_key":"!a:b","content":{"via":[]}}]},"children":[{"room_id":"!a:b"}],"inaccessible_children":["!a:b","!x:y"]}`))
	f.Add([]byte(`{"room":null,"children":null,"inaccessible_children":[1]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp RemoteHierarchy
		if json.Unmarshal(data, &resp) != nil {
			return
		}
		out := boundAnswer(&resp)
		check := func(e HierarchyRoom) {
			if len(e.ChildrenState) > maxChildrenPerRoom {
				t.Fatalf("%d child events kept", len(e.ChildrenState))
			}
			if refs := childRefs(e.ChildrenState, false); len(refs) != len(e.ChildrenState) {
				t.Fatalf("%d child events kept, %d followed", len(e.ChildrenState), len(refs))
			}
		}
		check(out.Room)
		named := map[string]bool{}
		for _, ch := range out.Room.ChildrenState {
			named[ch.StateKey] = true
		}
		if len(out.Children) > maxChildrenPerRoom || len(out.InaccessibleChildren) > maxChildrenPerRoom {
			t.Fatalf("%d children, %d inaccessible kept", len(out.Children), len(out.InaccessibleChildren))
		}
		for _, ch := range out.Children {
			check(ch)
			if !named[ch.RoomID] {
				t.Fatalf("child %q kept, not named by the room", ch.RoomID)
			}
		}
		for _, id := range out.InaccessibleChildren {
			if !named[id] {
				t.Fatalf("inaccessible %q kept, not named by the room", id)
			}
		}
	})
}
