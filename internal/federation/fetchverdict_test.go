package federation

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/federation/remote"
)

// TestFetchVerdict: what the origin failed to supply refuses the PDU;
// this server's own failure (its database) or a cancelled request leaves
// it undecided, so that the transaction is retried rather than the event
// refused for good.
func TestFetchVerdict(t *testing.T) {
	for _, c := range []struct {
		name    string
		err     error
		decided bool
	}{
		{"bad answer", &remote.BadAnswer{Err: errors.New("state_ids: 404")}, true},
		{"database", fmt.Errorf("loading events: %w", errors.New("connection lost")), false},
		{"cancelled while fetching", &remote.BadAnswer{Err: fmt.Errorf("event: %w", context.Canceled)}, false},
	} {
		if got := decided(fetchVerdict(c.err)); got != c.decided {
			t.Errorf("%s: decided %v, want %v", c.name, got, c.decided)
		}
	}
}
