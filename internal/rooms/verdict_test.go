package rooms

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// flakyStore fails one chosen read: the first EventsByNID or EventsByID
// call that trip matches after arm. It either returns an error (the
// database failed) or cancels the caller's context first (the remote
// server gave up on its request) and reads with it.
type flakyStore struct {
	*store.DB
	mu     sync.Mutex
	trip   func(method string, ids []string, nids []int64) bool
	cancel context.CancelFunc // when set, the failure is this cancellation
	fired  int
}

var errFlaky = errors.New("database connection lost")

func (s *flakyStore) arm(trip func(method string, ids []string, nids []int64) bool, cancel context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trip, s.cancel = trip, cancel
}

func (s *flakyStore) fail(ctx context.Context, method string, ids []string, nids []int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trip == nil || !s.trip(method, ids, nids) {
		return nil
	}
	s.trip = nil
	s.fired++
	if s.cancel != nil {
		s.cancel()
		return nil // the read goes ahead with the cancelled context
	}
	return errFlaky
}

func (s *flakyStore) EventsByNID(ctx context.Context, nids []int64) ([]store.EventRow, error) {
	if err := s.fail(ctx, "EventsByNID", nil, nids); err != nil {
		return nil, err
	}
	return s.DB.EventsByNID(ctx, nids)
}

func (s *flakyStore) EventsByID(ctx context.Context, ids []string) ([]store.EventRow, error) {
	if err := s.fail(ctx, "EventsByID", ids, nil); err != nil {
		return nil, err
	}
	return s.DB.EventsByID(ctx, ids)
}

// TestTransientFailureIsNoVerdict: a database error or a cancelled
// context while an event received over federation is checked (the state
// before it, or v12's create event looked up by room ID) leaves the
// event unstored, with an error that is no decision; received again, it
// is accepted. Before, it was stored as rejected for good.
func TestTransientFailureIsNoVerdict(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		db, err := store.Open(context.Background(), dbURL, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		flaky := &flakyStore{DB: db}
		stream, err := OpenStream(context.Background(), db, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, priv, _ := ed25519.GenerateKey(nil)
		// A one-event cache sends the checks' reads to the store.
		e := New(flaky, stream, bus.New(), Options{ServerName: "a.test", KeyID: "ed25519:a", PrivateKey: priv,
			DefaultVersion: "10", EventCacheBytes: 1})
		keys := map[string]ed25519.PrivateKey{"a.test": priv}
		_, keys["b.test"], _ = ed25519.GenerateKey(nil)

		for _, ver := range []int{10, 12} {
			v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(strconv.Itoa(ver)))
			if err != nil {
				t.Fatal(err)
			}
			env := &authEnv{e: e, db: db, ver: ver, v: v, keys: keys}
			// Which read of the checks fails: the state before the event
			// (its auth state, some events by NID: the one-event cache
			// holds at most one of them), or the v12 create event.
			trips := map[string]func(*authRoom, gomatrixserverlib.PDU) func(string, []string, []int64) bool{
				"state before": func(r *authRoom, pdu gomatrixserverlib.PDU) func(string, []string, []int64) bool {
					ids := pdu.AuthEventIDs()
					if ver >= 12 {
						ids = append(ids, "$"+r.id[1:])
					}
					evs, err := e.EventsByID(context.Background(), ids)
					if err != nil {
						t.Fatal(err)
					}
					auth := map[int64]bool{}
					for _, ev := range evs {
						auth[ev.NID] = true
					}
					return func(m string, _ []string, nids []int64) bool {
						return m == "EventsByNID" && len(nids) >= 2 && !slices.ContainsFunc(nids, func(n int64) bool { return !auth[n] })
					}
				},
			}
			if ver >= 12 {
				trips["create event"] = func(r *authRoom, _ gomatrixserverlib.PDU) func(string, []string, []int64) bool {
					create := "$" + r.id[1:]
					return func(m string, ids []string, _ []int64) bool {
						return m == "EventsByID" && slices.Equal(ids, []string{create})
					}
				}
			}
			// How the event comes: on the room's head, or after a prev
			// event this server lacks, with the origin's state at it.
			paths := map[string]func(r *authRoom) (gomatrixserverlib.PDU, func(context.Context) (*Event, error)){
				"Receive": func(r *authRoom) (gomatrixserverlib.PDU, func(context.Context) (*Event, error)) {
					prevs, depth := r.head()
					content := textMsg("hello")
					pdu := r.build(userRob, "m.room.message", nil, content, prevs, r.authFor(userRob, "m.room.message", nil, content), depth+1)
					return pdu, func(ctx context.Context) (*Event, error) { return e.Receive(ctx, pdu) }
				},
				"ReceiveWithState": func(r *authRoom) (gomatrixserverlib.PDU, func(context.Context) (*Event, error)) {
					prevs, depth := r.head()
					missing := "$missingprevmissingprevmissingprevmissingpr"
					content := textMsg("after a gap")
					pdu := r.build(userRob, "m.room.message", nil, content, append(prevs, missing), r.authFor(userRob, "m.room.message", nil, content), depth+1)
					st, err := e.CurrentState(context.Background(), r.id)
					if err != nil {
						t.Fatal(err)
					}
					evs, err := e.StateEvents(context.Background(), st)
					if err != nil {
						t.Fatal(err)
					}
					var state []gomatrixserverlib.PDU
					for _, ev := range evs {
						state = append(state, ev.PDU)
					}
					return pdu, func(ctx context.Context) (*Event, error) {
						return e.ReceiveWithState(ctx, pdu, map[string][]gomatrixserverlib.PDU{missing: state}, state)
					}
				},
			}
			for pathName, path := range paths {
				for name, trip := range trips {
					if pathName == "ReceiveWithState" && name == "create event" {
						// The origin's state holds the create event, which
						// may then be cached: its lookup is Receive's.
						continue
					}
					for _, how := range []string{"database error", "cancelled context"} {
						t.Run("v"+strconv.Itoa(ver)+"/"+pathName+"/"+name+"/"+how, func(t *testing.T) {
							r := env.room(t, roomSpec{remote: []string{userRob}})
							pdu, receive := path(r)

							ctx, cancel := context.WithCancel(context.Background())
							defer cancel()
							var cancelFn context.CancelFunc
							if how == "cancelled context" {
								cancelFn = cancel
							}
							flaky.arm(trip(r, pdu), cancelFn)
							before := flaky.fired
							ev, err := receive(ctx)
							flaky.arm(nil, nil)
							if flaky.fired != before+1 {
								t.Fatalf("the injected failure did not happen (receive: %+v, %v)", ev, err)
							}
							if err == nil || Decided(err) {
								t.Fatalf("receive with a failing check: %+v, %v; want an error that is no decision", ev, err)
							}
							if stored, err := e.EventsByID(context.Background(), []string{pdu.EventID()}); err != nil || len(stored) != 0 {
								t.Fatalf("the event was stored after a failed check: %+v %v", stored, err)
							}
							ev, err = receive(context.Background())
							if err != nil || ev.Status != roommodel.Accepted {
								t.Fatalf("received again: %+v, %v; want accepted", ev, err)
							}
							if heads, _ := r.head(); !slices.Equal(heads, []string{pdu.EventID()}) {
								t.Fatalf("room head %v, want the event", heads)
							}
						})
					}
				}
			}
		}
	})
}

// TestDecided: what Decided calls a decision.
func TestDecided(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, true},
		{&AuthError{Err: errors.New("no")}, true},
		{refused("unknown room"), true},
		{&ErrMissingEvents{Prev: []string{"$x"}}, true},
		{errFlaky, false},
		{context.Canceled, false},
		{errors.Join(&AuthError{Err: errors.New("no")}, context.DeadlineExceeded), false},
	} {
		if got := Decided(c.err); got != c.want {
			t.Errorf("Decided(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
