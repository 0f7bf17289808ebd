package slidingsync

import (
	"context"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
)

// noConns is a ConnStore holding nothing.
type noConns struct{}

func (noConns) SlidingConnection(context.Context, string, string, string) (store.SlidingConn, map[string]string, error) {
	return store.SlidingConn{}, nil, store.ErrNotFound
}
func (noConns) WriteSlidingConnections(context.Context, []store.SlidingConnWrite) error { return nil }
func (noConns) ExpireSlidingConnections(context.Context, int64) error                   { return nil }

// TestForgetDevice: a deleted device's connections leave memory (their
// pos is unknown), an answer still being computed for one of them is
// not persisted, and a drop of each is queued after the writes already
// queued, which would otherwise store them again; another device's
// connection is untouched.
func TestForgetDevice(t *testing.T) {
	ctx, now := context.Background(), time.Now()
	cs := newConnections(noConns{})
	open := func(k connKey) (*conn, string) {
		t.Helper()
		c, _, ok, err := cs.lookup(ctx, k, "", now)
		if err != nil || !ok {
			t.Fatalf("new connection %v: %v %v", k, ok, err)
		}
		return c, cs.store(k, c, nil, &snapshot{counts: map[string]int{}, rooms: map[string]*sentRoom{}}, now)
	}
	phone, list := connKey{"@u:x", "PHONE", "room-list"}, connKey{"@u:x", "LAPTOP", "room-list"}
	c, pos := open(phone)
	_, other := open(list)
	cs.forgetDevice("@u:x", "PHONE")
	if _, _, ok, err := cs.lookup(ctx, phone, pos, now); ok || err != nil {
		t.Fatalf("pos of a deleted device: ok %v, %v", ok, err)
	}
	if _, _, ok, err := cs.lookup(ctx, list, other, now); !ok || err != nil {
		t.Fatalf("pos of another device: ok %v, %v", ok, err)
	}
	cs.store(phone, c, nil, &snapshot{counts: map[string]int{}, rooms: map[string]*sentRoom{}}, now)
	jobs := cs.w.q.Take(cs.w.q.Len())
	if len(jobs) != 3 || jobs[0].key != phone || jobs[0].drop || jobs[1].key != list || jobs[1].drop || jobs[2].key != phone || !jobs[2].drop {
		t.Fatalf("queued writes: %+v", jobs)
	}
}
