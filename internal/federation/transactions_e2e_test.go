package federation_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

const sendPath = "/_matrix/federation/v1/send/"

// sendResult is the per-PDU answer for an event in a /send response:
// ok is false when the event is absent from the answer.
func sendResult(t *testing.T, body map[string]any, eventID string) (errText string, ok bool) {
	t.Helper()
	pdus, _ := body["pdus"].(map[string]any)
	r, ok := pdus[eventID].(map[string]any)
	if !ok {
		return "", false
	}
	s, _ := r["error"].(string)
	return s, true
}

// TestSendTransactionChecks drives PUT /send as hs2 into hs1's room:
// idempotency per transaction ID, the per-PDU checks (signatures, content
// hash, server ACL), and the size limit.
func TestSendTransactionChecks(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice, bob, roomID := sendRoom(t, net)
		room, bobID := roomID.String(), bob.UserID.String()
		v, err := hs1.Engine().RoomVersion(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		message := func(body string) gomatrixserverlib.PDU {
			return sendBuild(t, hs1, hs2, room, bobID, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": body})
		}
		stored := func(id string) bool {
			evs, err := hs1.Engine().EventsByID(ctx, []string{id})
			if err != nil {
				t.Fatal(err)
			}
			return len(evs) == 1
		}

		t.Run("idempotent per transaction ID", func(t *testing.T) {
			first, second := message("first"), message("second")
			status, body := net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"idem-1", sendTxn(hs2, first.JSON()))
			testserver.WantStatus(t, "first send", status, body, http.StatusOK)
			if e, ok := sendResult(t, body, first.EventID()); !ok || e != "" {
				t.Fatalf("first send: %v", body)
			}
			// The same ID with another body is answered from the first
			// attempt and not processed.
			status, body = net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"idem-1", sendTxn(hs2, second.JSON()))
			testserver.WantStatus(t, "repeated send", status, body, http.StatusOK)
			if _, ok := sendResult(t, body, first.EventID()); !ok {
				t.Fatalf("repeat did not return the first answer: %v", body)
			}
			if _, ok := sendResult(t, body, second.EventID()); ok || stored(second.EventID()) {
				t.Fatalf("repeat was processed: %v", body)
			}
			if !stored(first.EventID()) {
				t.Fatal("first event not stored")
			}
		})

		t.Run("forged signature", func(t *testing.T) {
			// origin_server_ts survives redaction, so the signature covers it.
			forged := sendMutate(t, message("forged").JSON(), "origin_server_ts", 12345)
			pdu, err := v.NewEventFromUntrustedJSON(forged)
			if err != nil {
				t.Fatal(err)
			}
			status, body := net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"forged-1", sendTxn(hs2, forged))
			testserver.WantStatus(t, "send", status, body, http.StatusOK)
			if e, ok := sendResult(t, body, pdu.EventID()); !ok || e == "" {
				t.Fatalf("forged event not refused: %v", body)
			}
			if stored(pdu.EventID()) {
				t.Fatal("forged event stored")
			}
		})

		t.Run("content hash mismatch redacts", func(t *testing.T) {
			// The content is outside what the signature covers; the content
			// hash catches the change and the spec has the event redacted.
			orig := message("original")
			tampered := sendMutate(t, orig.JSON(), "content.body", "tampered")
			status, body := net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"hash-1", sendTxn(hs2, tampered))
			testserver.WantStatus(t, "send", status, body, http.StatusOK)
			if e, ok := sendResult(t, body, orig.EventID()); !ok || e != "" {
				t.Fatalf("tampered event: %v", body)
			}
			ev, err := hs1.Engine().Event(ctx, orig.EventID())
			if err != nil {
				t.Fatal(err)
			}
			if string(ev.Content()) != "{}" {
				t.Fatalf("stored content %s, want it redacted", ev.Content())
			}
		})

		t.Run("too many PDUs", func(t *testing.T) {
			var pdus [][]byte
			for range 51 {
				pdus = append(pdus, message("one of many").JSON())
			}
			status, body := net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"big-1", sendTxn(hs2, pdus...))
			testserver.WantError(t, "51 PDUs", status, body, http.StatusBadRequest, "M_BAD_JSON")
		})

		t.Run("unknown room", func(t *testing.T) {
			pdu := message("elsewhere")
			other := sendMutate(t, pdu.JSON(), "room_id", "!unknown:hs2.test")
			status, body := net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"unknown-1", sendTxn(hs2, other))
			testserver.WantStatus(t, "send", status, body, http.StatusOK)
			if p, _ := body["pdus"].(map[string]any); len(p) != 0 {
				// A v3+ event of an unknown room has no ID to answer for.
				for _, r := range p {
					if r.(map[string]any)["error"] == nil {
						t.Fatalf("unknown room accepted: %v", body)
					}
				}
			}
		})

		t.Run("server ACL", func(t *testing.T) {
			if _, err := alice.SendStateEvent(ctx, roomID, event.StateServerACL, "",
				map[string]any{"allow": []string{"*"}, "deny": []string{"hs2.test"}}); err != nil {
				t.Fatal(err)
			}
			denied := message("denied")
			status, body := net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"acl-1", sendTxn(hs2, denied.JSON()))
			testserver.WantStatus(t, "send", status, body, http.StatusOK)
			if e, ok := sendResult(t, body, denied.EventID()); !ok || e == "" {
				t.Fatalf("event from a denied server accepted: %v", body)
			}
			if stored(denied.EventID()) {
				t.Fatal("event from a denied server stored")
			}
		})
	})
}

// TestSendFillsGaps: an event whose prev_events hs1 lacks makes hs1
// fetch them from the origin with /get_missing_events. The gap is made of
// events of carol (hs3) that only hs2 holds: hs2's sender does not pass
// on other servers' events, and hs3 does not hold the room at all.
func TestSendFillsGaps(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2, hs3 := net.Servers[0], net.Servers[1], net.Servers[2]
		_, _, roomID := sendRoom(t, net)
		room, carol := roomID.String(), hs3.UserID("carol")
		join := sendBuild(t, hs1, hs3, room, carol, spec.MRoomMember, &carol, map[string]string{"membership": spec.Join})
		for _, s := range []*testserver.Server{hs1, hs2} {
			if _, err := s.Engine().Receive(ctx, join); err != nil {
				t.Fatal(err)
			}
		}
		var gap []gomatrixserverlib.PDU
		for range 3 {
			pdu := sendBuild(t, hs2, hs3, room, carol, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "gap"})
			if _, err := hs2.Engine().Receive(ctx, pdu); err != nil {
				t.Fatal(err)
			}
			gap = append(gap, pdu)
		}
		last := sendBuild(t, hs2, hs3, room, carol, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "after the gap"})
		// The origin holds what it sends, as a server relaying an event does.
		if _, err := hs2.Engine().Receive(ctx, last); err != nil {
			t.Fatal(err)
		}
		status, body := net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"gap-1", sendTxn(hs2, last.JSON()))
		testserver.WantStatus(t, "send", status, body, http.StatusOK)
		if e, ok := sendResult(t, body, last.EventID()); !ok || e != "" {
			t.Fatalf("event after a gap: %v", body)
		}
		for _, p := range append(gap, last) {
			if _, err := hs1.Engine().Event(ctx, p.EventID()); err != nil {
				t.Fatalf("%s not on hs1: %v", p.EventID(), err)
			}
		}
	})
}

// TestSendReportsUnfilledGap: without /get_missing_events answering,
// an event whose prev_events are unknown is refused with a per-PDU error
// and the rest of the transaction is processed.
func TestSendReportsUnfilledGap(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		_, bob, roomID := sendRoom(t, net)
		room, bobID := roomID.String(), bob.UserID.String()
		content := map[string]string{"msgtype": "m.text", "body": "x"}
		// Nobody holds the gap event, not even the origin.
		lost := sendBuild(t, hs1, hs2, room, bobID, "m.room.message", nil, content)
		orphan := sendBuildAfter(t, hs1, hs2, []gomatrixserverlib.PDU{lost}, room, bobID, "m.room.message", nil, content)
		fine := sendBuild(t, hs1, hs2, room, bobID, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "fine"})
		status, body := net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"orphan-1", sendTxn(hs2, orphan.JSON(), fine.JSON()))
		testserver.WantStatus(t, "send", status, body, http.StatusOK)
		if e, ok := sendResult(t, body, orphan.EventID()); !ok || e == "" {
			t.Fatalf("event after an unfilled gap: %v", body)
		}
		if e, ok := sendResult(t, body, fine.EventID()); !ok || e != "" {
			t.Fatalf("the rest of the transaction: %v", body)
		}
		if _, err := hs1.Engine().Event(ctx, fine.EventID()); err != nil {
			t.Fatal(err)
		}
	})
}
