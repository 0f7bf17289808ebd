package appservice

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

const (
	// batch is how many stream events are read at a time; a transaction
	// carries the interesting ones among them.
	batch = 100
	// tick re-reads the stream in case a wake-up was missed.
	tick = 30 * time.Second
	// firstRetry is the back-off after a failed transaction; it doubles
	// up to SenderOptions.MaxRetry.
	firstRetry = 500 * time.Millisecond
)

// SenderStore is what the sender reads and records.
type SenderStore interface {
	AppServicePosition(ctx context.Context, asID string) (int64, bool, error)
	SetAppServicePosition(ctx context.Context, asID string, position int64) error
	EventsAfter(ctx context.Context, after, upto int64, limit int) ([]store.EventRow, error)
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
	RoomAliases(ctx context.Context, roomID string) ([]string, error)
}

// SenderOptions configure the sender.
type SenderOptions struct {
	Registry *Registry
	Rooms    *rooms.Engine
	Store    SenderStore
	Client   *Client
	Bus      bus.Bus
	Log      *slog.Logger
	// MaxRetry caps the back-off between attempts (default one minute).
	MaxRetry time.Duration
}

// Sender pushes transactions to every registered service with a URL.
// The event stream is the queue: each service's position is stored once
// its transaction is acknowledged, so a service that is down, or a
// restart, delays events but loses none, and they arrive in stream
// order (at least once: a crash between the answer and the write
// repeats the transaction, with the same ID, which the spec lets the
// service recognise). One goroutine per service, owned by Run, so a
// slow service holds up no other and never the room engine.
type Sender struct {
	o        SenderOptions
	moved    <-chan struct{}
	interest interestCaches
	// firstPos is where a service seen for the first time starts: the
	// stream's end when the server was built, before it served anyone,
	// not when the service's goroutine first ran, which on a loaded
	// machine came after the first requests (and lost their events).
	firstPos int64
}

// NewSender makes the sender; it does nothing until Run.
func NewSender(o SenderOptions) *Sender {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxRetry <= 0 {
		o.MaxRetry = time.Minute
	}
	s := &Sender{o: o}
	if o.Rooms != nil {
		s.firstPos = o.Rooms.Stream().Current()
	}
	if o.Bus != nil && len(o.Registry.All()) > 0 {
		s.moved = rooms.Advances(o.Bus, "appservice-sender")
	}
	return s
}

// Run delivers until ctx ends, returning once every service's worker
// has stopped.
func (s *Sender) Run(ctx context.Context) error {
	var wakes []chan struct{}
	var wg sync.WaitGroup
	for _, reg := range s.o.Registry.All() {
		if reg.URL == "" {
			continue
		}
		w := make(chan struct{}, 1)
		wakes = append(wakes, w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serve(ctx, reg, w)
		}()
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.moved:
			for _, w := range wakes {
				select {
				case w <- struct{}{}:
				default:
				}
			}
		}
	}
}

// serve is one service's worker.
func (s *Sender) serve(ctx context.Context, reg *Registration, wake <-chan struct{}) {
	log := s.o.Log.With("appservice", reg.ID)
	t := time.NewTicker(tick)
	defer t.Stop()
	pos, ok := int64(0), false
	for ctx.Err() == nil {
		if !ok {
			pos, ok = s.start(ctx, reg, log)
		}
		if ok {
			var more bool
			pos, more = s.deliverNext(ctx, reg, pos, log)
			if more {
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-t.C:
		}
	}
}

// start loads the position; a service seen for the first time starts at
// the stream's end (firstPos), as Synapse's appservice stream does:
// history predates its registration.
func (s *Sender) start(ctx context.Context, reg *Registration, log *slog.Logger) (int64, bool) {
	pos, found, err := s.o.Store.AppServicePosition(ctx, reg.ID)
	if err == nil && !found {
		pos = s.firstPos
		err = s.o.Store.SetAppServicePosition(ctx, reg.ID, pos)
	}
	if err != nil {
		log.Error("appservice sender: loading the position", "err", err)
		return 0, false
	}
	return pos, true
}

// deliverNext sends the interesting events of the next batch after pos,
// retrying until the service takes them, and returns the new position
// and whether more events may follow.
func (s *Sender) deliverNext(ctx context.Context, reg *Registration, pos int64, log *slog.Logger) (int64, bool) {
	cur := s.o.Rooms.Stream().Current()
	if pos >= cur {
		return pos, false
	}
	rows, err := s.o.Store.EventsAfter(ctx, pos, cur, batch)
	if err != nil || len(rows) == 0 {
		if err != nil {
			log.Error("appservice sender: reading the stream", "err", err)
		}
		return pos, false
	}
	last := rows[len(rows)-1].StreamPos
	events, err := s.pick(ctx, reg, rows)
	if err != nil {
		log.Error("appservice sender: selecting events", "err", err)
		return pos, false
	}
	if len(events) > 0 {
		// The transaction ID is the batch's last stream position: the
		// same events get the same ID when retried or after a restart.
		txnID := strconv.FormatInt(last, 10)
		backoff := firstRetry
		for {
			err := s.o.Client.SendTransaction(ctx, reg, txnID, Transaction{Events: events})
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return pos, false
			}
			log.Warn("appservice sender: transaction failed, retrying", "txn_id", txnID, "retry_in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return pos, false
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, s.o.MaxRetry)
		}
	}
	if err := s.o.Store.SetAppServicePosition(ctx, reg.ID, last); err != nil {
		log.Error("appservice sender: recording the position", "err", err)
		// The events are delivered; moving on in memory only repeats
		// them after a restart, which the transaction ID covers.
	}
	return last, true
}

// pick selects the events of rows the service's namespaces select (spec
// "Application Service API", Synapse's is_interested_in_event): a
// namespaced sender, a membership of a namespaced user (invites
// included), a room in its room namespaces, with one of its aliases, or
// with a namespaced member; rendered as client events.
func (s *Sender) pick(ctx context.Context, reg *Registration, rows []store.EventRow) ([]json.RawMessage, error) {
	roomInterest := s.interest.forBatch(reg.ID, rows)
	var nids []int64
	for _, r := range rows {
		ok, err := s.interested(ctx, reg, r, roomInterest)
		if err != nil {
			return nil, err
		}
		if ok {
			nids = append(nids, r.NID)
		}
	}
	if len(nids) == 0 {
		return nil, nil
	}
	evs, err := s.o.Rooms.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, 0, len(evs))
	for _, ev := range evs {
		b, err := json.Marshal(clientevent.Format(ev, clientevent.Options{}))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (s *Sender) interested(ctx context.Context, reg *Registration, r store.EventRow, rooms map[string]bool) (bool, error) {
	server := s.o.Registry.ServerName
	if reg.OwnsUser(r.Sender, server) || reg.InRooms(r.RoomID) {
		return true, nil
	}
	if r.Type == spec.MRoomMember && r.StateKey != nil && reg.OwnsUser(*r.StateKey, server) {
		return true, nil
	}
	if v, ok := rooms[r.RoomID]; ok {
		return v, nil
	}
	v, err := s.roomInterest(ctx, reg, r.RoomID)
	if err != nil {
		return false, err
	}
	rooms[r.RoomID] = v
	return v, nil
}

func (s *Sender) roomInterest(ctx context.Context, reg *Registration, roomID string) (bool, error) {
	return roomInterest(ctx, s.o.Store, s.o.Registry, reg, roomID)
}
