package directory

import "slices"

// Other servers' /hierarchy answers are bounded twice: the federation
// client reads at most 1 MiB of one (a longer answer is a server that
// could not be reached), and what is kept of it, in the walk and in the
// answer cache, is what a walk can use: the room's first
// maxChildrenPerRoom valid m.space.child events (as childRefs follows
// them, Synapse's MAX_ROOMS_PER_SPACE), as many child entries, and the
// inaccessible children among those. A cache of remoteCacheSize answers
// then holds kilobytes per answer, not megabytes.

// boundAnswer is a remote answer cut to what a walk uses.
func boundAnswer(resp *RemoteHierarchy) *RemoteHierarchy {
	out := &RemoteHierarchy{Room: boundEntry(resp.Room)}
	named := map[string]bool{}
	for _, ch := range out.Room.ChildrenState {
		named[ch.StateKey] = true
	}
	for _, ch := range resp.Children {
		if len(out.Children) >= maxChildrenPerRoom {
			break
		}
		if named[ch.RoomID] {
			out.Children = append(out.Children, boundEntry(ch))
		}
	}
	for _, id := range resp.InaccessibleChildren {
		if named[id] && !slices.Contains(out.InaccessibleChildren, id) {
			out.InaccessibleChildren = append(out.InaccessibleChildren, id)
		}
	}
	return out
}

// boundEntry keeps the m.space.child events of an entry that childRefs
// would follow.
func boundEntry(e HierarchyRoom) HierarchyRoom {
	var kept []ChildState
	for _, ch := range e.ChildrenState {
		if len(kept) >= maxChildrenPerRoom {
			break
		}
		if ch.Type != "m.space.child" || ch.StateKey == "" {
			continue
		}
		if _, _, ok := parseChild(ch.Content, ch.OriginServerTS, ch.StateKey, false); ok {
			kept = append(kept, ch)
		}
	}
	e.ChildrenState = kept
	return e
}
