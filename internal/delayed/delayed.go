// Package delayed serves MSC4140 delayed events as Synapse does: an event
// a local user asks to be sent after a delay (Element Call's "leave the
// call when I disconnect" m.call.member state), kept in the database so
// that it fires after a restart, restarted, sent or cancelled by its
// owner, and cancelled when another user changes the same state first.
//
// One worker (Run) owns one timer for the earliest scheduled event; the
// scheduled events are mirrored in memory (a heap of send times and a
// map by delay ID) so that the timer and the state listener need no
// query. Whoever takes an event out of the map (the timer, "send" or
// "cancel", or the state listener) is the one that finalises it, so an
// event is sent at most once per process.
package delayed

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// MaxPerUser bounds a user's scheduled delayed events (Synapse's
// max_delayed_events_per_user default, 100).
const MaxPerUser = 100

// FinalisedRetention is how long a finalised delayed event stays
// listable (status=finalised) before it is pruned.
const FinalisedRetention = 7 * 24 * time.Hour

// Sender sends the delayed events: the room engine.
type Sender interface {
	Send(ctx context.Context, req rooms.SendRequest) (*rooms.Event, error)
	SetState(ctx context.Context, roomID, sender, typ, stateKey string, content json.RawMessage) (*rooms.Event, error)
}

// Options configure the service.
type Options struct {
	Store *store.DB
	Rooms Sender
	// Bus brings new state events (rooms.TopicEvent), which cancel other
	// users' delayed events for the same state.
	Bus bus.Bus
	// MaxDelay bounds a delay; 0 turns delayed events off (the delay
	// parameter is then ignored, as Synapse without
	// max_event_delay_duration does).
	MaxDelay time.Duration
	Log      *slog.Logger
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Event is a delayed event as its owner lists it.
type Event struct {
	DelayID  string
	RoomID   string
	Type     string
	StateKey *string
	Content  json.RawMessage
	DelayMS  int64
	// DelayedSinceTS is when the delay (last) started.
	DelayedSinceTS int64
	// Finalised is nil while scheduled.
	Finalised *Finalised
}

// Finalised tells how a delayed event ended: sent (EventID), failed
// (Error) or cancelled (neither).
type Finalised struct {
	TS      int64
	EventID string
	Error   string
}

type stateKey struct{ room, typ, key string }

type entry struct {
	id     string
	user   string
	sendTS int64
	state  *stateKey
}

// Service schedules, lists and fires delayed events.
type Service struct {
	o    Options
	wake chan struct{}

	mu      sync.Mutex
	byID    map[string]*entry
	due     dueHeap
	byState map[stateKey]map[string]*entry
}

// New loads the scheduled events and subscribes to new state events.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Service{o: o, wake: make(chan struct{}, 1), byID: map[string]*entry{}, byState: map[stateKey]map[string]*entry{}}
	rows, err := o.Store.ScheduledDelayedEvents(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		s.track(entryOf(r))
	}
	if o.Bus != nil {
		o.Bus.Subscribe("delayed-events", func(ctx context.Context, c bus.Change) { s.heard(ctx, c.(rooms.Notification)) }, rooms.TopicEvent)
	}
	return s, nil
}

// Enabled reports whether delayed events are served.
func (s *Service) Enabled() bool { return s.o.MaxDelay > 0 }

func entryOf(r store.DelayedEvent) *entry {
	e := &entry{id: r.DelayID, user: r.UserID, sendTS: r.SendTS}
	if r.StateKey != nil {
		e.state = &stateKey{r.RoomID, r.Type, *r.StateKey}
	}
	return e
}

// track adds a scheduled event to the mirror; s.mu held or not yet shared.
func (s *Service) track(e *entry) {
	s.byID[e.id] = e
	heap.Push(&s.due, dueItem{e.sendTS, e.id})
	if e.state != nil {
		m := s.byState[*e.state]
		if m == nil {
			m = map[string]*entry{}
			s.byState[*e.state] = m
		}
		m[e.id] = e
	}
}

// take removes a scheduled event from the mirror and reports whether it
// was there: the caller now owns its finalisation. s.mu held.
func (s *Service) take(id string) (*entry, bool) {
	e, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	delete(s.byID, id)
	if e.state != nil {
		if m := s.byState[*e.state]; m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(s.byState, *e.state)
			}
		}
	}
	// Its heap item stays and is skipped when popped.
	return e, true
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// AddRequest is an event to send later.
type AddRequest struct {
	UserID, DeviceID, RoomID, Type string
	StateKey                       *string
	Content                        json.RawMessage
	Delay                          time.Duration
	// TxnID is a delayed /send's transaction ID: a retry of the request
	// answers the delay ID of the first (as Synapse's transaction cache
	// answers its response).
	TxnID string
}

// CheckDelay refuses a delay above the maximum as Synapse does: 400
// M_INVALID_PARAM carrying the MSC's own errcode and the maximum.
func (s *Service) CheckDelay(d time.Duration) error {
	if d < 0 {
		return mxerr.InvalidParam("The delay must not be negative")
	}
	if d > s.o.MaxDelay {
		return mxerr.InvalidParam("The requested delay exceeds the allowed maximum").
			With("org.matrix.msc4140.errcode", "M_MAX_DELAY_EXCEEDED").
			With("org.matrix.msc4140.max_delay", s.o.MaxDelay.Milliseconds())
	}
	return nil
}

// Add schedules an event and returns its delay ID.
func (s *Service) Add(ctx context.Context, req AddRequest) (string, error) {
	if err := s.CheckDelay(req.Delay); err != nil {
		return "", err
	}
	if err := ident.CheckText(req.Type); err != nil {
		return "", mxerr.InvalidParam("Invalid event type")
	}
	if req.StateKey != nil {
		if err := ident.CheckText(*req.StateKey); err != nil {
			return "", mxerr.InvalidParam("Invalid state key")
		}
	}
	n, err := s.o.Store.CountScheduledDelayedEvents(ctx, req.UserID)
	if err != nil {
		return "", err
	}
	if n >= MaxPerUser {
		return "", &mxerr.Error{Status: http.StatusTooManyRequests, Code: "M_LIMIT_EXCEEDED", Message: "The maximum number of delayed events has been reached."}
	}
	row := store.DelayedEvent{
		DelayID: newDelayID(), UserID: req.UserID, DeviceID: req.DeviceID, RoomID: req.RoomID, Type: req.Type,
		StateKey: req.StateKey, Content: string(req.Content), DelayMS: req.Delay.Milliseconds(),
		SendTS: s.o.Now().UnixMilli() + req.Delay.Milliseconds(),
	}
	if req.TxnID != "" {
		if err := ident.CheckText(req.TxnID); err != nil {
			return "", mxerr.InvalidParam("Invalid transaction ID")
		}
		key, _ := json.Marshal([]string{req.DeviceID, req.Type, req.TxnID})
		row.TxnKey = string(key)
	}
	id, err := s.o.Store.AddDelayedEvent(ctx, row)
	if err != nil || id != row.DelayID {
		return id, err
	}
	s.mu.Lock()
	s.track(entryOf(row))
	s.mu.Unlock()
	s.poke()
	return row.DelayID, nil
}

// newDelayID is an opaque, unguessable ID (Synapse's "syd_" + random).
func newDelayID() string { return "syd_" + rand.Text()[:20] }

// owned loads a delayed event of userID; 404 when it is someone else's,
// as when it does not exist.
func (s *Service) owned(ctx context.Context, userID, delayID string) (store.DelayedEvent, error) {
	if ident.CheckText(delayID) != nil {
		return store.DelayedEvent{}, mxerr.NotFound("Delayed event not found")
	}
	r, err := s.o.Store.DelayedEvent(ctx, delayID)
	if errors.Is(err, store.ErrNotFound) || err == nil && r.UserID != userID {
		return store.DelayedEvent{}, mxerr.NotFound("Delayed event not found")
	}
	return r, err
}

// finalisedConflict is Synapse's answer to acting on an event that has
// already been sent or cancelled: 409.
func finalisedConflict(r store.DelayedEvent) error {
	what := "cancelled"
	if r.EventID != "" || r.Error != "" {
		what = "sent"
	}
	return &mxerr.Error{Status: http.StatusConflict, Code: "M_UNKNOWN", Message: "Delayed event has already been " + what}
}

// Restart starts the delay of a scheduled event again from now.
func (s *Service) Restart(ctx context.Context, userID, delayID string) error {
	r, err := s.owned(ctx, userID, delayID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byID[delayID]
	if !ok {
		return finalisedConflict(r)
	}
	sendTS, err := s.o.Store.RestartDelayedEvent(ctx, delayID, s.o.Now().UnixMilli())
	if err != nil {
		return err
	}
	e.sendTS = sendTS
	heap.Push(&s.due, dueItem{sendTS, delayID})
	s.poke()
	return nil
}

// Cancel finalises a scheduled event without sending it.
func (s *Service) Cancel(ctx context.Context, userID, delayID string) error {
	r, err := s.owned(ctx, userID, delayID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	_, ok := s.take(delayID)
	s.mu.Unlock()
	if !ok {
		return finalisedConflict(r)
	}
	_, err = s.o.Store.FinaliseDelayedEvent(context.WithoutCancel(ctx), delayID, s.o.Now().UnixMilli(), "", "")
	return err
}

// SendNow sends a scheduled event at once.
func (s *Service) SendNow(ctx context.Context, userID, delayID string) error {
	r, err := s.owned(ctx, userID, delayID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	_, ok := s.take(delayID)
	s.mu.Unlock()
	if !ok {
		return finalisedConflict(r)
	}
	return s.fire(context.WithoutCancel(ctx), r)
}

// List answers a user's scheduled and finalised delayed events.
func (s *Service) List(ctx context.Context, userID string, scheduled, finalised bool) (sched, fin []Event, err error) {
	conv := func(rows []store.DelayedEvent) []Event {
		out := make([]Event, 0, len(rows))
		for _, r := range rows {
			ev := Event{DelayID: r.DelayID, RoomID: r.RoomID, Type: r.Type, StateKey: r.StateKey, Content: json.RawMessage(r.Content),
				DelayMS: r.DelayMS, DelayedSinceTS: r.SendTS - r.DelayMS}
			if r.FinalisedTS != 0 {
				ev.Finalised = &Finalised{TS: r.FinalisedTS, EventID: r.EventID, Error: r.Error}
			}
			out = append(out, ev)
		}
		return out
	}
	if scheduled {
		rows, err := s.o.Store.UserDelayedEvents(ctx, userID, false)
		if err != nil {
			return nil, nil, err
		}
		sched = conv(rows)
	}
	if finalised {
		rows, err := s.o.Store.UserDelayedEvents(ctx, userID, true)
		if err != nil {
			return nil, nil, err
		}
		fin = conv(rows)
	}
	return sched, fin, nil
}

// fire sends an event taken out of the schedule and records the outcome.
// A send that fails (the user left the room, lost the power to send)
// finalises the event with the error, as Synapse does; it is not retried.
func (s *Service) fire(ctx context.Context, r store.DelayedEvent) error {
	var ev *rooms.Event
	var err error
	if r.StateKey != nil {
		ev, err = s.o.Rooms.SetState(ctx, r.RoomID, r.UserID, r.Type, *r.StateKey, json.RawMessage(r.Content))
	} else {
		ev, err = s.o.Rooms.Send(ctx, rooms.SendRequest{RoomID: r.RoomID, Sender: r.UserID, Type: r.Type, Content: json.RawMessage(r.Content)})
	}
	now := s.o.Now().UnixMilli()
	if err != nil && ctx.Err() != nil {
		// Shutting down: the event stays scheduled and fires at the
		// next start (New loads it again).
		return err
	}
	if err != nil {
		s.o.Log.Info("delayed event not sent", "delay_id", r.DelayID, "room_id", r.RoomID, "err", err)
		body := map[string]any{"errcode": "M_UNKNOWN", "error": err.Error()}
		if me, ok := mxerr.As(err); ok {
			body = me.Body()
		}
		raw, _ := json.Marshal(body)
		if _, ferr := s.o.Store.FinaliseDelayedEvent(ctx, r.DelayID, now, "", string(raw)); ferr != nil {
			return ferr
		}
		return err
	}
	_, ferr := s.o.Store.FinaliseDelayedEvent(ctx, r.DelayID, now, ev.EventID(), "")
	return ferr
}

// heard cancels the delayed state events of other users for the state a
// new event sets (Synapse's _handle_state_deltas: a delayed event must
// not overwrite what someone else set since; the owner's own changes
// leave it scheduled). It runs on the sender's goroutine, so that the
// cancellation is done when the state change is answered; the mirror
// makes the usual case (no delayed event there) a map lookup.
func (s *Service) heard(ctx context.Context, n rooms.Notification) {
	ev := n.Event
	if ev == nil || ev.StateKey() == nil {
		return
	}
	k := stateKey{ev.RoomID().String(), ev.Type(), *ev.StateKey()}
	s.mu.Lock()
	var cancelled []string
	for id, e := range s.byState[k] {
		if e.user != ev.Sender() {
			cancelled = append(cancelled, id)
		}
	}
	for _, id := range cancelled {
		s.take(id)
	}
	s.mu.Unlock()
	for _, id := range cancelled {
		if _, err := s.o.Store.FinaliseDelayedEvent(context.WithoutCancel(ctx), id, s.o.Now().UnixMilli(), "", ""); err != nil {
			s.o.Log.Warn("delayed event: cancel for new state", "delay_id", id, "err", err)
		}
	}
}

// Run fires the scheduled events when due, until ctx ends; events due
// while the server was stopped fire at once.
func (s *Service) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lastPrune := time.Time{}
	for {
		now := s.o.Now()
		if now.Sub(lastPrune) > time.Hour {
			lastPrune = now
			if err := s.o.Store.PruneFinalisedDelayedEvents(ctx, now.Add(-FinalisedRetention).UnixMilli()); err != nil && ctx.Err() == nil {
				s.o.Log.Warn("delayed events: prune", "err", err)
			}
		}
		var ready []string
		next := time.Hour
		s.mu.Lock()
		for s.due.Len() > 0 {
			top := s.due[0]
			e, ok := s.byID[top.id]
			if !ok || e.sendTS != top.sendTS {
				heap.Pop(&s.due) // cancelled, sent or restarted since
				continue
			}
			if wait := time.Duration(top.sendTS-now.UnixMilli()) * time.Millisecond; wait > 0 {
				next = min(next, wait)
				break
			}
			heap.Pop(&s.due)
			s.take(top.id)
			ready = append(ready, top.id)
		}
		s.mu.Unlock()
		for _, id := range ready {
			r, err := s.o.Store.DelayedEvent(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.o.Log.Warn("delayed event: load", "delay_id", id, "err", err)
				continue
			}
			_ = s.fire(ctx, r)
		}
		if len(ready) > 0 {
			continue
		}
		timer.Reset(next)
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
	}
}

type dueItem struct {
	sendTS int64
	id     string
}

// dueHeap orders scheduled events by send time.
type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].sendTS < h[j].sendTS }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
