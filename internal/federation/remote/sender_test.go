package remote

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
)

// destStore is the destination state and EDU queue of a SenderStore;
// anything else panics (the embedded interface is nil).
type destStore struct {
	SenderStore
	mu     sync.Mutex
	states map[string]store.DestinationState
	reads  int
	queued map[string][]string // destination -> EDU types
}

func (d *destStore) Destination(_ context.Context, dest string) (store.DestinationState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reads++
	return d.states[dest], nil
}

func (d *destStore) SetDestination(_ context.Context, dest string, s store.DestinationState) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.states[dest] = s
	return nil
}

func (d *destStore) DropQueuedEDUs(_ context.Context, dest, eduType string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queued[dest] = slices.DeleteFunc(d.queued[dest], func(t string) bool { return t == eduType })
	return nil
}

func (d *destStore) QueueEDU(_ context.Context, dests []string, eduType, _ string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dest := range dests {
		d.queued[dest] = append(d.queued[dest], eduType)
	}
	return nil
}

// TestSenderBackoffAndTyping: typing is not queued for a destination in
// back-off; a destination that reaches us leaves back-off (and typing
// goes to it again); a failed delivery puts it back.
func TestSenderBackoffAndTyping(t *testing.T) {
	ctx := context.Background()
	st := &destStore{states: map[string]store.DestinationState{"down.test": {Failures: 3, RetryAfterTS: 1 << 50}},
		queued: map[string][]string{}}
	s := NewSender(SenderOptions{ServerName: "hs1.test", Store: st})

	typing := map[string]any{"room_id": "!r:hs1.test", "user_id": "@a:hs1.test", "typing": true}
	if err := s.QueueEDU(ctx, []string{"down.test", "up.test"}, "m.typing", typing); err != nil {
		t.Fatal(err)
	}
	if err := s.QueueEDU(ctx, []string{"down.test"}, "m.receipt", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if got := st.queued["down.test"]; !slices.Equal(got, []string{"m.receipt"}) {
		t.Fatalf("queued for the destination in back-off: %v, want only the receipt", got)
	}
	if got := st.queued["up.test"]; !slices.Equal(got, []string{"m.typing"}) {
		t.Fatalf("queued for the healthy destination: %v", got)
	}

	// Typing queued before the destination was known to be down.
	st.queued["down.test"] = append(st.queued["down.test"], "m.typing")
	s.RemoteUp(ctx, "down.test")
	if got := st.states["down.test"]; got != (store.DestinationState{}) {
		t.Fatalf("back-off after the destination reached us: %+v", got)
	}
	if got := st.queued["down.test"]; !slices.Equal(got, []string{"m.receipt"}) {
		t.Fatalf("queue once the destination reached us: %v, want the stale typing gone", got)
	}
	if err := s.QueueEDU(ctx, []string{"down.test"}, "m.typing", typing); err != nil {
		t.Fatal(err)
	}
	if got := st.queued["down.test"]; !slices.Equal(got, []string{"m.receipt", "m.typing"}) {
		t.Fatalf("queued once up again: %v", got)
	}
	// Known to be up: a server that keeps talking costs no query.
	reads := st.reads
	s.RemoteUp(ctx, "down.test")
	if st.reads != reads {
		t.Fatal("RemoteUp read the state of a destination known to be up")
	}

	if err := s.failed(ctx, "down.test", store.DestinationState{}, errors.New("connection refused")); err != nil {
		t.Fatal(err)
	}
	if got := st.states["down.test"]; got.Failures != 1 || got.RetryAfterTS == 0 {
		t.Fatalf("after a failure: %+v", got)
	}
	if err := s.QueueEDU(ctx, []string{"down.test"}, "m.typing", typing); err != nil {
		t.Fatal(err)
	}
	if got := st.queued["down.test"]; len(got) != 2 {
		t.Fatalf("typing queued after a failure: %v", got)
	}
}
