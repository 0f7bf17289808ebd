package clientapi_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestTransactionIDsScopedToPath: the spec scopes a transaction ID to the
// request path and the access token ("Transaction identifiers"). The
// same txnId on another event type, another room, another redacted
// event or another device is another request and must not be answered
// with the first one's event; the same path again is a retry.
func TestTransactionIDsScopedToPath(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		alice2 := s.Login("alice", "pw")
		newRoom := func() string {
			t.Helper()
			created, err := alice.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{})
			if err != nil {
				t.Fatalf("createRoom: %v", err)
			}
			return created.RoomID.String()
		}
		room, other := newRoom(), newRoom()
		put := func(token, path string, body any) string {
			t.Helper()
			st, resp := s.Do(t, http.MethodPut, "/_matrix/client/v3"+path, token, body)
			testserver.WantStatus(t, "PUT "+path, st, resp, http.StatusOK)
			id, _ := resp["event_id"].(string)
			return id
		}
		msg := map[string]any{"msgtype": "m.text", "body": "hi"}

		first := put(tok(alice), "/rooms/"+room+"/send/m.room.message/t1", msg)
		if again := put(tok(alice), "/rooms/"+room+"/send/m.room.message/t1", msg); again != first {
			t.Fatalf("a retry of the same path sent %s, want %s", again, first)
		}
		reaction := put(tok(alice), "/rooms/"+room+"/send/m.reaction/t1", map[string]any{
			"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": first, "key": "x"}})
		elsewhere := put(tok(alice), "/rooms/"+other+"/send/m.room.message/t1", msg)
		device2 := put(tok(alice2), "/rooms/"+room+"/send/m.room.message/t1", msg)
		ids := []string{first, reaction, elsewhere, device2}
		for i := range ids {
			for j := range i {
				if ids[i] == ids[j] {
					t.Fatalf("requests on different paths or devices got the same event: %v", ids)
				}
			}
		}
		for _, id := range ids[1:] {
			r := room
			if id == elsewhere {
				r = other
			}
			st, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+r+"/event/"+id, tok(alice), nil)
			testserver.WantStatus(t, "event "+id, st, body, http.StatusOK)
		}

		// Redactions: one txnId for two events redacts both; redacting the
		// same event with it again is a retry.
		red1 := put(tok(alice), "/rooms/"+room+"/redact/"+first+"/r1", map[string]any{})
		red2 := put(tok(alice), "/rooms/"+room+"/redact/"+reaction+"/r1", map[string]any{})
		if red1 == red2 {
			t.Fatalf("two redactions with one txnId got the same event %s", red1)
		}
		if again := put(tok(alice), "/rooms/"+room+"/redact/"+first+"/r1", map[string]any{}); again != red1 {
			t.Fatalf("a retried redaction sent %s, want %s", again, red1)
		}
		// A redaction is no send: its txnId does not collide with the
		// m.room.redaction send path, and /sync gives the client back the
		// txnId it chose, not an internal key.
		st, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+room+"/event/"+red1, tok(alice), nil)
		testserver.WantStatus(t, "redaction event", st, body, http.StatusOK)
		if unsigned, _ := body["unsigned"].(map[string]any); unsigned["transaction_id"] != "r1" {
			t.Fatalf("redaction's unsigned = %v, want transaction_id r1", body["unsigned"])
		}

		// sendToDevice: the event type is part of the path.
		bob := s.Register("bob", "pw")
		since := keysSync(t, bob, "", 0).NextBatch
		toDevice := func(typ, txn string) {
			t.Helper()
			st, body := s.Do(t, http.MethodPut, "/_matrix/client/v3/sendToDevice/"+typ+"/"+txn, tok(alice), map[string]any{
				"messages": map[string]any{string(bob.UserID): map[string]any{string(bob.DeviceID): map[string]any{"n": typ}}}})
			testserver.WantStatus(t, "sendToDevice "+typ, st, body, http.StatusOK)
		}
		toDevice("m.a", "d1")
		toDevice("m.b", "d1")
		toDevice("m.a", "d1") // a retry: not delivered twice
		var got []string
		for _, ev := range keysSync(t, bob, since, 0).ToDevice.Events {
			got = append(got, ev.Type)
		}
		if !slices.Equal(got, []string{"m.a", "m.b"}) {
			t.Fatalf("to-device messages delivered: %v, want [m.a m.b]", got)
		}
	})
}
