package keys

import (
	"context"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
)

// inboxStore answers to-device reads with nothing, running during each
// read whatever the test wants to happen meanwhile.
type inboxStore struct {
	Store
	duringRead func()
}

func (s *inboxStore) ToDeviceMessages(context.Context, string, string, int64, int) ([]store.ToDeviceMessage, error) {
	if s.duringRead != nil {
		s.duringRead()
	}
	return nil, nil
}

// The inbox states stay within maxInbox however many devices sync, and
// forgetting them never hides a message: a read that began before the
// inbox states were forgotten does not mark an inbox empty.
func TestInboxStateIsBounded(t *testing.T) {
	st := &inboxStore{}
	s := New(Options{Store: st})
	for i := 0; i < maxInbox+10; i++ {
		s.messageArrived("@u:hs1.test", fmt.Sprint("D", i))
		if n := len(s.inbox); n > maxInbox {
			t.Fatalf("after %d devices: %d inbox states, limit %d", i+1, n, maxInbox)
		}
	}

	ctx := context.Background()
	st.duringRead = func() {
		// A message arrives for the device being read, then so many other
		// devices get one that every inbox state is forgotten.
		s.messageArrived("@a:hs1.test", "A")
		for i := 0; i < maxInbox; i++ {
			s.messageArrived("@u:hs1.test", fmt.Sprint("E", i))
		}
	}
	if _, _, err := s.ToDeviceMessages(ctx, "@a:hs1.test", "A", 0, 10); err != nil {
		t.Fatal(err)
	}
	st.duringRead = nil
	s.inboxMu.Lock()
	empty := s.inbox["@a:hs1.test|A"].emptyKnown
	s.inboxMu.Unlock()
	if empty {
		t.Fatal("a read that missed a message marked the inbox empty")
	}
}
