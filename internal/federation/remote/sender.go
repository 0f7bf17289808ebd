package remote

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Transaction limits (server-server spec "Transactions").
const (
	MaxTxnPDUs = 50
	MaxTxnEDUs = 100
)

const (
	// senderBatch is how many stream events the sender reads at a time.
	senderBatch = 100
	// senderTick re-reads the stream and re-wakes queued destinations in
	// case a wake-up was missed or a worker stopped on a database error.
	senderTick = 30 * time.Second
	// firstRetry is the back-off after a destination's first failure; it
	// doubles with every further failure up to MaxRetryInterval.
	firstRetry = time.Second
	// storeRetry is the pause after a database error in a worker.
	storeRetry = 5 * time.Second
)

// SenderStore is the storage the sender keeps its queues and progress in.
type SenderStore interface {
	SenderPosition(ctx context.Context) (int64, bool, error)
	EventsAfter(ctx context.Context, after, upto int64, limit int) ([]store.EventRow, error)
	QueuePDUs(ctx context.Context, pdus []store.QueuedPDU, position int64) error
	PendingPDUs(ctx context.Context, destination string, limit int) ([]store.QueuedPDU, error)
	CountPendingPDUs(ctx context.Context, destination string) (int64, error)
	KeepLatestPDUs(ctx context.Context, destination string) error
	QueueEDU(ctx context.Context, destinations []string, eduType, content string) error
	PendingEDUs(ctx context.Context, destination string, limit int) ([]store.QueuedEDU, error)
	DeleteDelivered(ctx context.Context, destination string, lastPDU, lastEDU int64) error
	DropQueuedEDUs(ctx context.Context, destination, eduType string) error
	QueuedDestinations(ctx context.Context) ([]string, error)
	Destination(ctx context.Context, destination string) (store.DestinationState, error)
	SetDestination(ctx context.Context, destination string, s store.DestinationState) error
}

// SenderOptions configure the sender.
type SenderOptions struct {
	ServerName string
	Client     fclient.FederationClient
	Rooms      *rooms.Engine
	Store      SenderStore
	Log        *slog.Logger
	// MaxRetryInterval caps the back-off between delivery attempts.
	MaxRetryInterval time.Duration
	// Bus brings the stream's moves (rooms.StreamAdvanced); without it
	// the sender looks at the stream every senderTick.
	Bus bus.Bus
}

// Sender delivers this server's events and EDUs to other servers. It
// follows the event stream durably (its position is stored with the
// queue entries it makes, so a crash neither loses nor repeats events)
// and runs one worker per destination with anything queued, which sends
// transactions in queue order and backs off while the destination fails.
type Sender struct {
	o SenderOptions
	// txnPrefix makes transaction IDs unique across restarts: a receiver
	// answers a known (origin, txnId) from its cache without reading it.
	txnPrefix string
	txnSeq    atomic.Int64

	mu      sync.Mutex
	ctx     context.Context // nil unless Run is running
	workers map[string]chan struct{}
	// up are destinations last seen out of back-off, so that RemoteUp
	// costs no query for a server that talks to us all the time; bounded,
	// since any server can reach us, and one it forgot is read again.
	up *cache.LRU[string, bool]
	wg sync.WaitGroup
	// streamMoved holds a value when the stream moved since Run last
	// looked.
	streamMoved <-chan struct{}
}

// NewSender makes a sender; it does nothing until Run.
func NewSender(o SenderOptions) *Sender {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxRetryInterval < firstRetry {
		o.MaxRetryInterval = firstRetry
	}
	s := &Sender{o: o, txnPrefix: strconv.FormatInt(time.Now().UnixNano(), 36), workers: map[string]chan struct{}{}, up: cache.NewLRU[string, bool](discoveryCacheSize)}
	if o.Bus != nil {
		s.streamMoved = rooms.Advances(o.Bus, "federation-sender")
	}
	return s
}

// Run queues local events for delivery and delivers queued PDUs and
// EDUs until ctx ends; it returns once every worker has stopped.
func (s *Sender) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.ctx = nil
		s.mu.Unlock()
		s.wg.Wait()
	}()
	t := time.NewTicker(senderTick)
	defer t.Stop()
	pos, ok := int64(0), false
	for {
		if !ok {
			pos, ok = s.startPosition(ctx)
			if ok {
				s.wakeQueued(ctx)
			}
		}
		if ok {
			pos = s.queueNew(ctx, pos)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.streamMoved:
		case <-t.C:
			s.wakeQueued(ctx)
		}
	}
}

// startPosition loads the stream position to continue from. On the very
// first start it is the current position: history predates any
// destination's interest in this server's events.
func (s *Sender) startPosition(ctx context.Context) (int64, bool) {
	pos, found, err := s.o.Store.SenderPosition(ctx)
	if err == nil && !found {
		pos = s.o.Rooms.Stream().Current()
		err = s.o.Store.QueuePDUs(ctx, nil, pos)
	}
	if err != nil {
		s.o.Log.Error("federation sender: loading the stream position", "err", err)
		return 0, false
	}
	return pos, true
}

func (s *Sender) wakeQueued(ctx context.Context) {
	dests, err := s.o.Store.QueuedDestinations(ctx)
	if err != nil {
		s.o.Log.Error("federation sender: listing queued destinations", "err", err)
		return
	}
	for _, d := range dests {
		s.wake(d)
	}
}

// queueNew queues the local events after pos up to the stream's current
// position and returns the new position.
func (s *Sender) queueNew(ctx context.Context, pos int64) int64 {
	for {
		cur := s.o.Rooms.Stream().Current()
		if pos >= cur {
			return pos
		}
		rows, err := s.o.Store.EventsAfter(ctx, pos, cur, senderBatch)
		if err != nil {
			s.o.Log.Error("federation sender: reading the event stream", "err", err)
			return pos
		}
		var queue []store.QueuedPDU
		touched := map[string]bool{}
		for _, r := range rows {
			if !s.delivers(r) {
				continue
			}
			dests, err := s.destinations(ctx, r)
			if err != nil {
				s.o.Log.Error("federation sender: destinations", "event_id", r.EventID, "err", err)
				return pos
			}
			for _, d := range dests {
				queue = append(queue, store.QueuedPDU{Destination: d, RoomID: r.RoomID, EventNID: r.NID})
				touched[d] = true
			}
			forks, err := s.concurrentWithJoin(ctx, r)
			if err != nil {
				s.o.Log.Error("federation sender: events concurrent with a join", "event_id", r.EventID, "err", err)
				return pos
			}
			for _, nid := range forks {
				queue = append(queue, store.QueuedPDU{Destination: r.OnBehalfOf, RoomID: r.RoomID, EventNID: nid})
				touched[r.OnBehalfOf] = true
			}
		}
		next := cur
		if len(rows) == senderBatch {
			next = rows[len(rows)-1].StreamPos
		}
		if err := s.o.Store.QueuePDUs(ctx, queue, next); err != nil {
			s.o.Log.Error("federation sender: queueing events", "err", err)
			return pos
		}
		pos = next
		for d := range touched {
			s.wake(d)
		}
	}
}

// destinations are the servers an event goes to: those with joined
// members in the state after it, and for membership events the target's
// server (a kicked, banned, leaving or invited user's server must learn
// of it though it has no joined member any more, or not yet); never this
// server, nor the server it was forwarded for, nor servers the room's
// ACL denies (see aclFor).
func (s *Sender) destinations(ctx context.Context, r store.EventRow) ([]string, error) {
	evs, err := s.o.Rooms.EventsByNID(ctx, []int64{r.NID})
	if e, ok := mxerr.As(err); ok && e.Status == http.StatusNotFound {
		// A membership of a room this server is not in (an invite
		// rejected, a knock) travels through the make_/send_ handshake
		// that made it, not through transactions.
		return nil, nil
	}
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	servers, state, err := s.o.Rooms.ServersInRoomOrNamed(ctx, r.RoomID, func(ctx context.Context) (rooms.StateMap, error) {
		return s.o.Rooms.StateAt(ctx, evs[0].StateAfter)
	})
	if err != nil {
		return nil, err
	}
	if r.Type == spec.MRoomMember && r.StateKey != nil {
		servers = append(servers, ServerOf(*r.StateKey))
	}
	allowed, err := s.aclFor(ctx, evs[0], state)
	if err != nil {
		return nil, err
	}
	// The server that handed the event over has it already.
	seen := map[string]bool{s.o.ServerName: true, "": true, r.OnBehalfOf: true}
	var out []string
	for _, d := range servers {
		if seen[d] {
			continue
		}
		seen[d] = true
		if !allowed(d) {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// QueueEDU queues an ephemeral event for destinations (typing, receipts,
// presence, device lists, to-device messages) and wakes their workers.
// This server is left out of destinations.
func (s *Sender) QueueEDU(ctx context.Context, destinations []string, eduType string, content any) error {
	raw, err := json.Marshal(content)
	if err != nil {
		return err
	}
	var dests []string
	for _, d := range destinations {
		if d != s.o.ServerName && d != "" {
			dests = append(dests, d)
		}
	}
	if eduType == typingEDU {
		// Typing is only worth sending now: a destination in back-off
		// would get it stale (Synapse does not queue it either).
		if dests, err = s.reachable(ctx, dests); err != nil {
			return err
		}
	}
	if len(dests) == 0 {
		return nil
	}
	if err := s.o.Store.QueueEDU(ctx, dests, eduType, string(raw)); err != nil {
		return err
	}
	for _, d := range dests {
		s.wake(d)
	}
	return nil
}

// typingEDU is the one EDU type not worth delivering late.
const typingEDU = "m.typing"

// reachable keeps the destinations not in back-off.
func (s *Sender) reachable(ctx context.Context, dests []string) ([]string, error) {
	out := dests[:0:0]
	for _, d := range dests {
		if up, _ := s.up.Get(d); up {
			out = append(out, d)
			continue
		}
		st, err := s.o.Store.Destination(ctx, d)
		if err != nil {
			return nil, err
		}
		if st.Failures == 0 {
			out = append(out, d)
		}
	}
	return out, nil
}

// QueuedEDUTypes lists the types of the EDUs queued for a destination,
// in queue order (operators and tests look at a backlog with it).
func (s *Sender) QueuedEDUTypes(ctx context.Context, destination string) ([]string, error) {
	edus, err := s.o.Store.PendingEDUs(ctx, destination, 1000)
	if err != nil {
		return nil, err
	}
	types := make([]string, len(edus))
	for i, e := range edus {
		types[i] = e.Type
	}
	return types, nil
}

// Failures is how many deliveries to a destination have failed in a row
// (0: it is up).
func (s *Sender) Failures(ctx context.Context, destination string) (int, error) {
	st, err := s.o.Store.Destination(ctx, destination)
	return st.Failures, err
}

// Pending counts the PDUs queued for a destination (tests and operators
// watch it to tell a backlog from a lost event).
func (s *Sender) Pending(ctx context.Context, destination string) (int64, error) {
	return s.o.Store.CountPendingPDUs(ctx, destination)
}

// wake makes sure a worker runs for a destination and looks at its
// queue again. Before Run, or after it ended, the queue just waits.
func (s *Sender) wake(dest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.ctx.Err() != nil {
		return
	}
	if kick, ok := s.workers[dest]; ok {
		select {
		case kick <- struct{}{}:
		default:
		}
		return
	}
	kick := make(chan struct{}, 1)
	s.workers[dest] = kick
	ctx := s.ctx
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.work(ctx, dest, kick)
	}()
}

// work delivers a destination's queue until it is empty.
func (s *Sender) work(ctx context.Context, dest string, kick chan struct{}) {
	for {
		more, err := s.deliverOnce(ctx, dest, kick)
		if err != nil && ctx.Err() == nil {
			s.o.Log.Error("federation sender: delivering", "destination", dest, "err", err)
			more = sleep(ctx, storeRetry)
		}
		if ctx.Err() != nil {
			s.forget(dest)
			return
		}
		if !more && s.done(dest, kick) {
			return
		}
	}
}

// done ends a worker whose queue was empty, unless it was woken since
// (under the lock, so that a wake-up is never lost between the empty
// read and the worker's exit).
func (s *Sender) done(dest string, kick chan struct{}) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-kick:
		return false
	default:
		delete(s.workers, dest)
		return true
	}
}

func (s *Sender) forget(dest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.workers, dest)
}

// deliverOnce waits out the destination's back-off and sends one
// transaction. It reports whether there may be more to send. A kick
// ends the wait early, to look at the destination's state again
// (RemoteUp may have ended the back-off).
func (s *Sender) deliverOnce(ctx context.Context, dest string, kick chan struct{}) (bool, error) {
	st, err := s.o.Store.Destination(ctx, dest)
	if err != nil {
		return false, err
	}
	if wait := time.Until(time.UnixMilli(st.RetryAfterTS)); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false, nil
		case <-kick:
			return true, nil
		case <-t.C:
		}
	}
	pdus, err := s.o.Store.PendingPDUs(ctx, dest, MaxTxnPDUs)
	if err != nil {
		return false, err
	}
	if st.Failures > 0 && len(pdus) == MaxTxnPDUs {
		if pdus, err = s.catchUp(ctx, dest); err != nil {
			return false, err
		}
	}
	edus, err := s.o.Store.PendingEDUs(ctx, dest, MaxTxnEDUs)
	if err != nil {
		return false, err
	}
	if len(pdus) == 0 && len(edus) == 0 {
		return false, nil
	}
	send := edus
	if st.Failures > 0 {
		// Typing queued before the destination went down is stale now;
		// it is dropped with what is delivered.
		send = slices.DeleteFunc(slices.Clone(edus), func(e store.QueuedEDU) bool { return e.Type == typingEDU })
		if len(pdus) == 0 && len(send) == 0 {
			return true, s.o.Store.DeleteDelivered(ctx, dest, 0, edus[len(edus)-1].QueueID)
		}
	}
	txn, err := s.transaction(ctx, dest, pdus, send)
	if err != nil {
		return false, err
	}
	resp, err := s.o.Client.SendTransaction(ctx, txn)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		return true, s.failed(ctx, dest, st, err)
	}
	for id, r := range resp.PDUs {
		if r.Error != "" {
			// The spec leaves a refused PDU refused: it is not sent again.
			s.o.Log.Info("federation sender: destination refused an event", "destination", dest, "event_id", id, "error", r.Error)
		}
	}
	var lastPDU, lastEDU int64
	if len(pdus) > 0 {
		lastPDU = pdus[len(pdus)-1].QueueID
	}
	if len(edus) > 0 {
		lastEDU = edus[len(edus)-1].QueueID
	}
	if err := s.o.Store.DeleteDelivered(ctx, dest, lastPDU, lastEDU); err != nil {
		return false, err
	}
	if st.Failures > 0 {
		s.o.Log.Info("federation sender: destination is back", "destination", dest, "failures", st.Failures)
		if err := s.o.Store.SetDestination(ctx, dest, store.DestinationState{}); err != nil {
			return true, err
		}
	}
	s.up.Put(dest, true)
	return true, nil
}

// RemoteUp is told that a server has just reached this one (an inbound
// transaction): a destination in back-off is evidently up again, so its
// back-off ends and its queue goes now rather than at the next retry,
// up to an hour away (Synapse does the same).
func (s *Sender) RemoteUp(ctx context.Context, origin string) {
	if known, _ := s.up.Get(origin); known {
		return
	}
	st, err := s.o.Store.Destination(ctx, origin)
	if err != nil {
		return // the next retry comes anyway
	}
	if st.Failures > 0 {
		// Typing queued before the outage was noticed is stale by now.
		if err := s.o.Store.DropQueuedEDUs(ctx, origin, typingEDU); err != nil {
			return
		}
		if err := s.o.Store.SetDestination(ctx, origin, store.DestinationState{}); err != nil {
			return
		}
		s.o.Log.Info("federation sender: destination reached us, ending its back-off", "destination", origin, "failures", st.Failures)
	}
	s.up.Put(origin, true)
	if st.Failures > 0 {
		s.wake(origin)
	}
}

// catchUp shrinks the backlog of a destination that was unreachable to
// the newest queued event of each room when more than a transaction's
// worth is queued: the destination fetches the gap before each with
// /get_missing_events, which costs less than replaying the backlog
// (Synapse's "catch-up" mode does the same).
func (s *Sender) catchUp(ctx context.Context, dest string) ([]store.QueuedPDU, error) {
	n, err := s.o.Store.CountPendingPDUs(ctx, dest)
	if err != nil || n <= MaxTxnPDUs {
		return s.o.Store.PendingPDUs(ctx, dest, MaxTxnPDUs)
	}
	if err := s.o.Store.KeepLatestPDUs(ctx, dest); err != nil {
		return nil, err
	}
	s.o.Log.Info("federation sender: catching up", "destination", dest, "queued", n)
	return s.o.Store.PendingPDUs(ctx, dest, MaxTxnPDUs)
}

// failed records a failed attempt and the destination's next retry time:
// the back-off doubles from firstRetry up to MaxRetryInterval.
func (s *Sender) failed(ctx context.Context, dest string, st store.DestinationState, cause error) error {
	s.up.Remove(dest)
	st.Failures++
	now := time.Now()
	st.RetryAfterTS = now.Add(s.backoff(st.Failures)).UnixMilli()
	st.RetryLastTS = now.UnixMilli()
	if st.FailureTS == 0 {
		st.FailureTS = st.RetryLastTS
	}
	s.o.Log.Info("federation sender: delivery failed", "destination", dest, "failures", st.Failures, "err", cause)
	return s.o.Store.SetDestination(ctx, dest, st)
}

func (s *Sender) backoff(failures int) time.Duration {
	d := firstRetry
	for i := 1; i < failures && d < s.o.MaxRetryInterval; i++ {
		d *= 2
	}
	return min(d, s.o.MaxRetryInterval)
}

// transaction builds a transaction from queued entries; PDUs go as
// stored (redacted if they were redacted meanwhile), in queue order.
func (s *Sender) transaction(ctx context.Context, dest string, pdus []store.QueuedPDU, edus []store.QueuedEDU) (gomatrixserverlib.Transaction, error) {
	txn := gomatrixserverlib.Transaction{
		TransactionID:  gomatrixserverlib.TransactionID(s.txnPrefix + "." + strconv.FormatInt(s.txnSeq.Add(1), 10)),
		Origin:         spec.ServerName(s.o.ServerName),
		Destination:    spec.ServerName(dest),
		OriginServerTS: spec.AsTimestamp(time.Now()),
		PDUs:           []json.RawMessage{},
	}
	evs, err := rooms.EventsFor(ctx, s.o.Rooms, pdus, func(p store.QueuedPDU) int64 { return p.EventNID })
	if err != nil {
		return txn, err
	}
	for _, ev := range evs {
		txn.PDUs = append(txn.PDUs, ev.JSON())
	}
	for _, e := range edus {
		txn.EDUs = append(txn.EDUs, gomatrixserverlib.EDU{Type: e.Type, Origin: s.o.ServerName, Destination: dest, Content: spec.RawJSON(e.Content)})
	}
	return txn, nil
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
