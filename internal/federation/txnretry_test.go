package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// flakyRoomStore fails the room engine's reads of several events by NID
// (the state an auth check loads) while failing is set.
type flakyRoomStore struct {
	*store.DB
	mu      sync.Mutex
	failing bool
	fired   int
}

func (s *flakyRoomStore) setFailing(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = on
}

func (s *flakyRoomStore) EventsByNID(ctx context.Context, nids []int64) ([]store.EventRow, error) {
	s.mu.Lock()
	fail := s.failing && len(nids) >= 2
	if fail {
		s.fired++
	}
	s.mu.Unlock()
	if fail {
		return nil, errors.New("database connection lost")
	}
	return s.DB.EventsByNID(ctx, nids)
}

// fixedKeys is a key database that knows one server's key.
type fixedKeys struct {
	server spec.ServerName
	key    ed25519.PublicKey
}

func (k fixedKeys) FetcherName() string { return "fixed" }

func (k fixedKeys) FetchKeys(_ context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	for req := range reqs {
		if req.ServerName == k.server && req.KeyID == "ed25519:r" {
			out[req] = gomatrixserverlib.PublicKeyLookupResult{VerifyKey: gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(k.key)},
				ExpiredTS: gomatrixserverlib.PublicKeyNotExpired, ValidUntilTS: spec.AsTimestamp(time.Now().Add(time.Hour))}
		}
	}
	return out, nil
}

func (k fixedKeys) StoreKeys(context.Context, map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) error {
	return nil
}

// TestTransactionRetriedAfterTransientFailure: when a PDU of an incoming
// transaction cannot be checked (here the database fails while its auth
// state loads), /send answers 500 and does not record the transaction,
// so that the origin retries; the retry accepts the event. A failure
// that repeats on every attempt is answered, after maxTxnAttempts, with
// the PDU's error, so that one event never stalls the origin.
func TestTransactionRetriedAfterTransientFailure(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dbURL, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		flaky := &flakyRoomStore{DB: db}
		stream, err := rooms.OpenStream(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, localKey, _ := ed25519.GenerateKey(nil)
		remotePub, remoteKey, _ := ed25519.GenerateKey(nil)
		// A one-event cache sends the auth checks' reads to the store.
		engine := rooms.New(flaky, stream, bus.New(), rooms.Options{ServerName: "a.test", KeyID: "ed25519:a",
			PrivateKey: localKey, DefaultVersion: "10", EventCacheBytes: 1})
		keys := fixedKeys{server: "b.test", key: remotePub}
		a := New(Deps{ServerName: "a.test", Rooms: engine, Store: db, KeyRing: &gomatrixserverlib.KeyRing{KeyDatabase: keys},
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})

		roomID, err := engine.CreateRoom(ctx, rooms.CreateRequest{Creator: "@alice:a.test", Version: "10", Preset: rooms.PresetPublicChat})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := gomatrixserverlib.GetRoomVersion("10")
		// build makes an event as b.test would, on the room's head.
		build := func(typ string, stateKey *string, content any, authKeys ...[2]string) gomatrixserverlib.PDU {
			t.Helper()
			prevs, depth, err := engine.Extremities(ctx, roomID)
			if err != nil {
				t.Fatal(err)
			}
			st, err := engine.CurrentState(ctx, roomID)
			if err != nil {
				t.Fatal(err)
			}
			var auth []string
			for _, k := range authKeys {
				ev, err := engine.StateEvent(ctx, st, k[0], k[1])
				if err != nil || ev == nil {
					t.Fatalf("auth event %v: %v", k, err)
				}
				auth = append(auth, ev.EventID())
			}
			raw, _ := json.Marshal(content)
			pdu, err := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{SenderID: "@rob:b.test", RoomID: roomID,
				Type: typ, StateKey: stateKey, Content: raw, PrevEvents: prevs, AuthEvents: auth, Depth: depth + 1,
			}).Build(time.Now(), "b.test", "ed25519:r", remoteKey)
			if err != nil {
				t.Fatal(err)
			}
			return pdu
		}
		rob := "@rob:b.test"
		join := build(spec.MRoomMember, &rob, map[string]any{"membership": spec.Join},
			[2]string{spec.MRoomCreate, ""}, [2]string{spec.MRoomPowerLevels, ""}, [2]string{spec.MRoomJoinRules, ""})
		if ev, err := engine.Receive(ctx, join); err != nil || ev.Status != roommodel.Accepted {
			t.Fatalf("rob's join: %+v %v", ev, err)
		}
		authKeys := [][2]string{{spec.MRoomCreate, ""}, {spec.MRoomPowerLevels, ""}, {spec.MRoomMember, rob}}

		send := func(txnID string, pdus ...gomatrixserverlib.PDU) (map[string]fclient.PDUResult, error) {
			t.Helper()
			body := txnBody{}
			for _, p := range pdus {
				body.PDUs = append(body.PDUs, p.JSON())
			}
			raw, _ := json.Marshal(body)
			hr := httptest.NewRequest(http.MethodPut, "/_matrix/federation/v1/send/"+txnID, nil)
			hr.SetPathValue("txnId", txnID)
			out, err := a.sendTransaction(&Request{Request: hr, Origin: "b.test", Content: raw})
			if err != nil {
				return nil, err
			}
			var resp fclient.RespSend
			if err := json.Unmarshal(out.(json.RawMessage), &resp); err != nil {
				t.Fatal(err)
			}
			return resp.PDUs, nil
		}
		want500 := func(what string, err error) {
			t.Helper()
			if me, ok := mxerr.As(err); !ok || me.Status != http.StatusInternalServerError {
				t.Fatalf("%s: %v, want a 500 the origin retries", what, err)
			}
		}
		stored := func(id string) *rooms.Event {
			t.Helper()
			evs, err := engine.EventsByID(ctx, []string{id})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				return nil
			}
			return evs[0]
		}

		// One failure: 500, nothing recorded; the retry accepts the event.
		msg := build("m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "hi"}, authKeys...)
		flaky.setFailing(true)
		_, err = send("t1", msg)
		flaky.setFailing(false)
		if flaky.fired == 0 {
			t.Fatal("the injected failure did not happen")
		}
		want500("transaction with a failing check", err)
		if ev := stored(msg.EventID()); ev != nil {
			t.Fatalf("the event was stored (status %d) although it could not be checked", ev.Status)
		}
		if _, found, err := db.InboundTxn(ctx, "b.test", "t1"); err != nil || found {
			t.Fatalf("the failed transaction was recorded: %v %v", found, err)
		}
		results, err := send("t1", msg)
		if err != nil || results[msg.EventID()].Error != "" {
			t.Fatalf("retried transaction: %v %+v", err, results)
		}
		if ev := stored(msg.EventID()); ev == nil || ev.Status != roommodel.Accepted {
			t.Fatalf("after the retry the event is %+v, want accepted", ev)
		}

		// A failure on every attempt: 500 until the budget is spent, then
		// the PDU's error and the transaction recorded.
		msg2 := build("m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "again"}, authKeys...)
		flaky.setFailing(true)
		defer flaky.setFailing(false)
		for i := 1; i < maxTxnAttempts; i++ {
			_, err := send("t2", msg2)
			want500("attempt "+strconv.Itoa(i), err)
		}
		results, err = send("t2", msg2)
		if err != nil || results[msg2.EventID()].Error == "" {
			t.Fatalf("attempt %d: %v %+v, want the PDU's error", maxTxnAttempts, err, results)
		}
		if _, found, err := db.InboundTxn(ctx, "b.test", "t2"); err != nil || !found {
			t.Fatalf("the transaction was not recorded after %d attempts: %v %v", maxTxnAttempts, found, err)
		}
		if ev := stored(msg2.EventID()); ev != nil {
			t.Fatalf("an event that could not be checked was stored (status %d)", ev.Status)
		}
	})
}

// TestDecided: which PDU errors are decisions.
func TestDecidedPDUErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&refusedPDU{errors.New("bad signature")}, true},
		{mxerr.Forbidden("denied by the server ACL"), true},
		{&rooms.AuthError{Err: errors.New("not allowed")}, true},
		{errors.New("database connection lost"), false},
		{&refusedPDU{context.Canceled}, false},
	} {
		if got := decided(c.err); got != c.want {
			t.Errorf("decided(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
