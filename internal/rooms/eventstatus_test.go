package rooms_test

import (
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// TestEventStatus: the status questions the handler packages ask instead
// of comparing store constants (federation serves no rejected event and
// countersigns only accepted memberships).
func TestEventStatus(t *testing.T) {
	for _, c := range []struct {
		name               string
		status             int
		accepted, rejected bool
	}{
		{"accepted", store.EventAccepted, true, false},
		{"rejected", store.EventRejected, false, true},
		{"soft-failed", store.EventSoftFailed, false, false},
	} {
		ev := &rooms.Event{Status: c.status}
		if ev.Accepted() != c.accepted || ev.Rejected() != c.rejected {
			t.Errorf("%s: Accepted %v Rejected %v, want %v %v", c.name, ev.Accepted(), ev.Rejected(), c.accepted, c.rejected)
		}
	}
}
