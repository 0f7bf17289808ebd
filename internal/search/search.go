package search

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
	"unicode"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Ordering of results (the spec's order_by).
const (
	OrderRank   = "rank"
	OrderRecent = "recent"
)

// The spec's search keys, all searched by default; indexedKeys says which
// event type each is read from.
const (
	KeyBody  = "content.body"
	KeyName  = "content.name"
	KeyTopic = "content.topic"
)

// Limits on results per page: the filter's limit, 10 by default as in
// Synapse, capped so that one page stays cheap.
const (
	defaultLimit = 10
	maxLimit     = 100
	// indexWait bounds how long a search waits for the indexer to reach
	// the events sent before it.
	indexWait = 5 * time.Second
)

// Service runs searches.
type Service struct {
	store Store
	rooms *rooms.Engine
	ix    *Indexer
}

// New makes the search service over the indexer's index.
func New(s Store, engine *rooms.Engine, ix *Indexer) *Service {
	return &Service{store: s, rooms: engine, ix: ix}
}

// Request is a room_events search.
type Request struct {
	Term      string
	Keys      []string
	Filter    *filter.RoomEventFilter
	OrderBy   string
	NextBatch string
}

// Hit is one result, in result order.
type Hit struct {
	Event *rooms.Event
	Rank  float64
}

// Result is a page of results.
type Result struct {
	// Count is the number of events matching in the user's rooms, before
	// history visibility and the filter's type and sender conditions are
	// applied (an estimate, which the spec allows).
	Count      int64
	Highlights []string
	Hits       []Hit
	// NextBatch continues the search; "" on the last page.
	NextBatch string
}

// batch is a next_batch token: an offset into the ranked results, or
// the stream position below which the recent ones continue.
type batch struct {
	Order  string `json:"o"`
	Offset int    `json:"n,omitempty"`
	Before int64  `json:"b,omitempty"`
}

func (b batch) String() string {
	raw, _ := json.Marshal(b)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func parseBatch(s, order string) (batch, error) {
	b := batch{Order: order}
	if s == "" {
		return b, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(raw, &b) != nil || b.Order != order || b.Offset < 0 {
		return b, mxerr.InvalidParam("Invalid next_batch")
	}
	return b, nil
}

// Words splits a search term into the words searched for: runs of
// letters and digits, lower-cased, as the index tokenises text.
func Words(term string) []string {
	return strings.FieldsFunc(strings.ToLower(term), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// Search finds the events of rooms the user is or was joined to that
// match the request and that history visibility lets the user see.
func (s *Service) Search(ctx context.Context, userID string, req Request) (*Result, error) {
	if req.OrderBy == "" {
		req.OrderBy = OrderRank
	}
	if req.OrderBy != OrderRank && req.OrderBy != OrderRecent {
		return nil, mxerr.InvalidParam("order_by must be rank or recent")
	}
	for _, k := range req.Keys {
		if !isKey(k) {
			return nil, mxerr.InvalidParam("Unknown search key %q", k)
		}
	}
	rf := req.Filter
	if rf == nil {
		rf = &filter.RoomEventFilter{}
	}
	b, err := parseBatch(req.NextBatch, req.OrderBy)
	if err != nil {
		return nil, err
	}
	roomIDs, err := s.userRooms(ctx, userID, rf)
	if err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, indexWait)
	s.ix.WaitFor(waitCtx, s.rooms.Stream().Current())
	cancel()
	q := store.SearchQuery{Words: Words(req.Term), Rooms: roomIDs, Keys: req.Keys, Recent: req.OrderBy == OrderRecent}
	res := &Result{Highlights: q.Words}
	if res.Highlights == nil {
		res.Highlights = []string{}
	}
	if res.Count, err = s.store.CountSearch(ctx, q); err != nil {
		return nil, err
	}
	res.Hits, res.NextBatch, err = s.page(ctx, userID, q, rf, b)
	return res, err
}

// userRooms are the rooms the user is or was joined to that the filter
// allows; the ones they left stay searchable up to their leave, which
// history visibility decides event by event.
func (s *Service) userRooms(ctx context.Context, userID string, rf *filter.RoomEventFilter) ([]string, error) {
	ms, err := s.store.MembershipsOf(ctx, userID, spec.Join, spec.Leave, spec.Ban)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if filter.AllowsRoom(rf.Rooms, rf.NotRooms, m.RoomID) {
			out = append(out, m.RoomID)
		}
	}
	return out, nil
}

// page reads the index from the batch on until it has a page of events
// that the filter and history visibility allow, or the index runs out.
func (s *Service) page(ctx context.Context, userID string, q store.SearchQuery, rf *filter.RoomEventFilter, b batch) ([]Hit, string, error) {
	limit := rf.LimitOr(defaultLimit, maxLimit)
	if limit == 0 {
		// A page of nothing would never move on: 0 is the default here.
		limit = min(defaultLimit, maxLimit)
	}
	vis := s.rooms.VisibilityFor(userID)
	var out []Hit
	q.Offset, q.Before = b.Offset, b.Before
	for {
		q.Limit = max(2*(limit-len(out)), 20)
		hits, err := s.store.SearchEvents(ctx, q)
		if err != nil {
			return nil, "", err
		}
		evs, err := s.eventsOf(ctx, hits)
		if err != nil {
			return nil, "", err
		}
		for i, h := range hits {
			if q.Recent {
				q.Before = h.StreamPos
			} else {
				q.Offset++
			}
			ev := evs[h.EventNID]
			if ev == nil || !rf.Allows(ev.Type(), ev.Sender(), ev.RoomID().String(), ev.HasURL) {
				continue
			}
			if ok, err := vis.CanSee(ctx, ev); err != nil {
				return nil, "", err
			} else if !ok {
				continue
			}
			out = append(out, Hit{Event: ev, Rank: h.Rank})
			if len(out) == limit {
				if i == len(hits)-1 && len(hits) < q.Limit {
					return out, "", nil
				}
				return out, batch{Order: b.Order, Offset: q.Offset, Before: q.Before}.String(), nil
			}
		}
		if len(hits) < q.Limit {
			return out, "", nil
		}
	}
}

func (s *Service) eventsOf(ctx context.Context, hits []store.SearchHit) (map[int64]*rooms.Event, error) {
	evs, err := rooms.EventsFor(ctx, s.rooms, hits, func(h store.SearchHit) int64 { return h.EventNID })
	if err != nil {
		return nil, err
	}
	out := make(map[int64]*rooms.Event, len(evs))
	for _, ev := range evs {
		out[ev.NID] = ev
	}
	return out, nil
}
