package rooms

import (
	"context"
	"fmt"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// snapshotKey is one key of one snapshot's state.
type snapshotKey struct {
	snapshot int64
	key      roommodel.StateKey
}

// stateKeysCacheBytes bounds the cache of single snapshot keys: some
// 100 bytes an entry, a few per message that woken /syncs check.
const stateKeysCacheBytes = 2 << 20

// stateKeyAt is the event NID of one key in a snapshot's state, 0 when
// the state does not hold it: snapshotState's answer for that key,
// without building the whole state when it is not cached. The history
// visibility check needs two keys (the visibility, the viewer's
// membership) of the state before each event a /sync shows; at 10,000
// users the state cache no longer held the snapshots of rooms of 5,000
// members, and building them again (the root of their chains holds
// every member) was 8-9 % of the server's CPU. Each link of the chain
// is asked for the key alone (an index lookup), newest first, until one
// holds it, or a full state or the key's answer is cached; the answer is
// cached for every link walked, as every woken member asks for the same
// snapshot's history visibility, and the room's next snapshots are
// deltas over it. (One recursive query over the chain instead was far
// slower on SQLite: 8 s for an initial sync of 100 rooms.)
func (e *Engine) stateKeyAt(ctx context.Context, snapshot int64, k roommodel.StateKey) (int64, error) {
	if snapshot == 0 {
		return 0, nil
	}
	if s, ok := e.snapshots.Get(snapshot); ok {
		return s[k], nil
	}
	gen := e.stateKeysGen.Load()
	var nid int64
	// The links walked take the answer too: a later snapshot of the room
	// is a delta over them, and its walk stops at the first one held.
	var walked []int64
	for cur := snapshot; cur != 0; {
		if s, ok := e.snapshots.Get(cur); ok {
			nid = s[k]
			break
		}
		if n, ok := e.stateKeys.Get(snapshotKey{cur, k}); ok {
			nid = n
			break
		}
		walked = append(walked, cur)
		parent, n, found, err := e.store.SnapshotEntry(ctx, cur, k)
		if err != nil {
			return 0, fmt.Errorf("rooms: snapshot %d: %w", cur, err)
		}
		if found {
			nid = n // 0: the delta removes the key
			break
		}
		cur = parent
	}
	// Not kept if snapshots were changed meanwhile (forgetSnapshots): the
	// walk may have read some of them before.
	e.stateKeysMu.Lock()
	if e.stateKeysGen.Load() == gen {
		for _, id := range walked {
			e.stateKeys.PutCost(snapshotKey{id, k}, nid, 64+len(k.Type)+len(k.StateKey))
		}
	}
	e.stateKeysMu.Unlock()
	return nid, nil
}

// forgetSnapshots drops snapshots changed in place (a partial-state
// room completed) or purged from both state caches.
func (e *Engine) forgetSnapshots(ids []int64) {
	if len(ids) == 0 {
		return
	}
	gone := make(map[int64]bool, len(ids))
	for _, id := range ids {
		e.snapshots.Remove(id)
		gone[id] = true
	}
	e.stateKeysMu.Lock()
	defer e.stateKeysMu.Unlock()
	e.stateKeysGen.Add(1)
	e.stateKeys.RemoveIf(func(k snapshotKey, _ int64) bool { return gone[k.snapshot] })
}

// stateEventAt loads one piece of state of a snapshot; nil if absent.
func (e *Engine) stateEventAt(ctx context.Context, snapshot int64, typ, stateKey string) (*Event, error) {
	k := roommodel.StateKey{Type: typ, StateKey: stateKey}
	n, err := e.stateKeyAt(ctx, snapshot, k)
	if err != nil || n == 0 {
		return nil, err
	}
	evs, err := e.EventsByNID(ctx, []int64{n})
	if err != nil || len(evs) == 0 || evs[0].Key() != k {
		return nil, err
	}
	return evs[0], nil
}

// membershipAt is userID's membership in a snapshot's state ("" if none).
func (e *Engine) membershipAt(ctx context.Context, snapshot int64, userID string) (string, error) {
	ev, err := e.stateEventAt(ctx, snapshot, "m.room.member", userID)
	if err != nil || ev == nil {
		return "", err
	}
	return ev.Membership()
}

// StateKeysAt is the part of a snapshot's state under the given keys:
// StateAt's entries for them (absent keys left out), each read as
// stateKeyAt reads it, without building the whole state when it is not
// cached. An incremental /sync with lazy-loaded members needs the
// memberships of its timeline's senders in the state before the
// timeline; building that state whole for a room of 5,000 members, for
// every woken /sync, was 6 % of the server's CPU at 10,000 users.
func (e *Engine) StateKeysAt(ctx context.Context, snapshot int64, keys []roommodel.StateKey) (StateMap, error) {
	out := make(StateMap, len(keys))
	for _, k := range keys {
		nid, err := e.stateKeyAt(ctx, snapshot, k)
		if err != nil {
			return nil, err
		}
		if nid != 0 {
			out[k] = nid
		}
	}
	return out, nil
}
