package clientsync

import (
	"context"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// acrossGap reports whether an event of the timeline was received across
// a gap this server did not fill: some prev event of it is not stored
// with its state (another server's state at the gap stood in for it, or
// it is the first event after this server's join). Events were then
// skipped, and the timeline is limited, so that the client pages back
// and takes the state section, which carries what changed in the gap,
// instead of taking the timeline for the whole story.
func (s *Service) acrossGap(ctx context.Context, tl []*rooms.Event) (bool, error) {
	inTimeline := make(map[string]bool, len(tl))
	for _, ev := range tl {
		inTimeline[ev.EventID()] = true
	}
	var prevs []string
	for _, ev := range tl {
		for _, p := range ev.PrevEventIDs() {
			if !inTimeline[p] {
				prevs = append(prevs, p)
			}
		}
	}
	if len(prevs) == 0 {
		return false, nil
	}
	known, err := s.engine.EventsByID(ctx, prevs)
	if err != nil {
		return false, err
	}
	withState := map[string]bool{}
	for _, ev := range known {
		if ev.HasState() {
			withState[ev.EventID()] = true
		}
	}
	for _, p := range prevs {
		if !withState[p] {
			return true, nil
		}
	}
	return false, nil
}
