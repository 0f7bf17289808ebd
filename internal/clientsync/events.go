package clientsync

import (
	"context"
	"slices"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// The legacy event stream, GET /events: deprecated since r0 but still
// what clients poll to peek into a room they have not joined (matrix-js-
// sdk's peekPoll, after a room /initialSync). It is served as Synapse's
// EventStreamRestServlet serves it: events after a token, in one room
// (room_id) or every joined room, waiting up to a timeout for one.

// EventsRequest is a parsed GET /events request.
type EventsRequest struct {
	UserID string
	// RoomID restricts the stream to one room, which the user may read
	// (joined, or world-readable: peeking); "" streams every joined room.
	RoomID string
	// From is the token to stream from; nil means now.
	From    *Token
	Timeout time.Duration
	Limit   int
}

// EventsPage is the answer: the events after Start, up to End, the token
// to poll from next.
type EventsPage struct {
	Events     []*rooms.Event
	Start, End Token
}

// Events answers a GET /events poll, long-polling up to req.Timeout while
// nothing new is readable.
func (s *Service) Events(ctx context.Context, req EventsRequest) (*EventsPage, error) {
	from := s.engine.Stream().Current()
	if req.From != nil {
		from = min(req.From.Events, from)
	}
	// A peeker is no member to be woken as one: it waits on the room.
	key := req.UserID
	if req.RoomID != "" {
		key = req.RoomID
	}
	deadline := time.NewTimer(req.Timeout)
	defer deadline.Stop()
	for {
		w := s.notifier.Register(key)
		page, err := s.eventsAfter(ctx, req, from)
		if err != nil || len(page.Events) > 0 || req.Timeout <= 0 {
			s.notifier.Unregister(w)
			return page, err
		}
		select {
		case <-w.C:
			s.notifier.Unregister(w)
		case <-deadline.C:
			s.notifier.Unregister(w)
			return page, nil
		case <-ctx.Done():
			s.notifier.Unregister(w)
			return page, nil
		}
	}
}

// eventsAfter reads one page of the stream after from.
// As every read path, the timeline's visibility check leaves out an
// ignored user's events (rooms.Visibility).
func (s *Service) eventsAfter(ctx context.Context, req EventsRequest, from int64) (*EventsPage, error) {
	current := s.engine.Stream().Current()
	roomIDs := []string{req.RoomID}
	if req.RoomID == "" {
		ms, err := s.membershipsOf(ctx, req.UserID, nil)
		if err != nil {
			return nil, err
		}
		roomIDs = roomIDs[:0]
		for _, m := range ms {
			if m.Membership == spec.Join {
				roomIDs = append(roomIDs, m.RoomID)
			}
		}
	}
	var evs []*rooms.Event
	end := current
	for _, roomID := range roomIDs {
		// Members read the room; others only a world-readable one, and
		// a former member up to their leave (as /messages).
		ra, err := s.engine.ReadAccess(ctx, roomID, req.UserID)
		if err != nil {
			if req.RoomID == "" {
				continue // left since the memberships were read
			}
			return nil, err
		}
		page, next, more, err := s.engine.Timeline(ctx, roomID, req.UserID, from, rooms.NoBound, ra.UpTo(current), req.Limit, false, nil)
		if err != nil {
			return nil, err
		}
		evs = append(evs, page...)
		if more {
			// The rest of this room comes in the next poll: end before it.
			end = min(end, next)
		}
	}
	slices.SortFunc(evs, func(a, b *rooms.Event) int { return compareInt(a.StreamPos, b.StreamPos) })
	if len(evs) > req.Limit {
		evs = evs[:req.Limit]
		end = min(end, evs[len(evs)-1].StreamPos)
	}
	// A stream position is readable once every one before it is: events
	// of rooms not cut short all lie at or before end.
	evs = slices.DeleteFunc(evs, func(ev *rooms.Event) bool { return ev.StreamPos > end })
	return &EventsPage{Events: evs, Start: Token{Events: from}, End: Token{Events: end}}, nil
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
