package federation_test

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// Policy servers (MSC4284, spec v1.18): the peer holds the room, has its
// creator joined, and acts as the room's policy server once the room's
// m.room.policy names it; it signs everything but content with "spam".

// policyRoom makes a peer room with alice and bob of hs1 joined.
func policyRoom(t *testing.T, hs1 *testserver.Server, p *peer.Peer) (*peer.Room, *mautrix.Client, *mautrix.Client) {
	t.Helper()
	room := p.CreateRoom(t)
	alice := peerJoin(t, hs1, p, room, "alice")
	bob := peerJoin(t, hs1, p, room, "bob")
	return room, alice, bob
}

// setPolicy makes the peer's room name a policy server and tells hs1.
func setPolicy(t *testing.T, hs1 *testserver.Server, p *peer.Peer, room *peer.Room, content any) {
	t.Helper()
	empty := ""
	ev := room.Create(t, room.Creator, "m.room.policy", &empty, content)
	if res := p.Send(t, hs1, ev); res[ev.EventID()] != "" {
		t.Fatalf("m.room.policy refused: %q", res[ev.EventID()])
	}
}

// sendText sends a message through hs1's client API and returns the
// status and body.
func sendText(t *testing.T, hs1 *testserver.Server, c *mautrix.Client, roomID, body string) (int, map[string]any) {
	t.Helper()
	txn := fmt.Sprintf("t%d", time.Now().UnixNano())
	return hs1.Do(t, http.MethodPut, "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/"+txn, c.AccessToken,
		map[string]string{"msgtype": "m.text", "body": body})
}

// policySignatureOf fetches an event from hs1 over federation and
// reports whether it carries a valid signature of the peer's policy key.
func policySignatureOf(t *testing.T, hs1 *testserver.Server, p *peer.Peer, room *peer.Room, eventID string) bool {
	t.Helper()
	status, raw := p.Request(t, hs1, http.MethodGet, "/_matrix/federation/v1/event/"+url.PathEscape(eventID), nil)
	if status != http.StatusOK {
		t.Fatalf("GET /event/%s: %d %s", eventID, status, raw)
	}
	var txn struct {
		PDUs []json.RawMessage `json:"pdus"`
	}
	if err := json.Unmarshal(raw, &txn); err != nil || len(txn.PDUs) != 1 {
		t.Fatalf("GET /event/%s: %s", eventID, raw)
	}
	redacted, err := room.Version.RedactEventJSON(txn.PDUs[0])
	if err != nil {
		t.Fatal(err)
	}
	pub := p.PolicyKey.Public().(ed25519.PublicKey)
	return gomatrixserverlib.VerifyJSON(p.Name, peer.PolicyKeyID, pub, redacted) == nil
}

// timelineBodies are the bodies of the messages in c's sync of a room.
func timelineBodies(t *testing.T, hs1 *testserver.Server, c *mautrix.Client, roomID string) []string {
	t.Helper()
	_, joined := syncRoom(t, hs1, c, "", `{"room":{"timeline":{"limit":50}}}`, roomID)
	if joined == nil {
		t.Fatal("room missing from the sync")
	}
	var out []string
	for _, ev := range joined.Timeline.Events {
		if body, ok := ev.Content.Raw["body"].(string); ok {
			out = append(out, body)
		}
	}
	return out
}

func peerText(t *testing.T, room *peer.Room, body string, add bool) gomatrixserverlib.PDU {
	t.Helper()
	content := map[string]string{"msgtype": "m.text", "body": body}
	if add {
		return room.Create(t, room.Creator, "m.room.message", nil, content)
	}
	return room.Build(t, room.Extremities(), room.Creator, "m.room.message", nil, content)
}

// TestPolicyServer: in a room whose policy server is joined, a local
// user's event carries its signature; an event it refuses is refused to
// the client with its error; a received event without its signature is
// asked for one and soft-failed (hidden from sync) when refused, one
// with a valid signature is accepted without asking. A room without
// m.room.policy, or naming a server with no member, asks nobody. With
// the policy server unreachable (the default, fail-closed, as Synapse)
// local events are refused and received unsigned ones soft-failed.
func TestPolicyServer(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room, alice, bob := policyRoom(t, hs1, p)

		// Myelin is no policy server: neither its discovery document nor
		// /sign is served.
		status, body := hs1.Do(t, http.MethodGet, "/.well-known/matrix/policy_server", "", nil)
		testserver.WantError(t, "policy_server well-known", status, body, http.StatusNotFound, "M_UNRECOGNIZED")
		code, raw := p.Request(t, hs1, http.MethodPost, "/_matrix/policy/v1/sign", map[string]any{"room_id": room.ID})
		if code != http.StatusNotFound || !strings.Contains(string(raw), "M_UNRECOGNIZED") {
			t.Fatalf("/sign on Myelin: %d %s", code, raw)
		}

		status, body = sendText(t, hs1, alice, room.ID, "no policy: spam is fine")
		testserver.WantStatus(t, "send without m.room.policy", status, body, http.StatusOK)
		absent := p.PolicyContent()
		absent["via"] = "absent.test"
		setPolicy(t, hs1, p, room, absent)
		status, body = sendText(t, hs1, alice, room.ID, "policy server not in the room: spam is fine")
		testserver.WantStatus(t, "send with an absent policy server", status, body, http.StatusOK)
		if n := p.Hits(peer.PolicySign); n != 0 {
			t.Fatalf("policy server asked %d times in a room not using it", n)
		}

		setPolicy(t, hs1, p, room, p.PolicyContent())
		status, body = sendText(t, hs1, alice, room.ID, "hello")
		testserver.WantStatus(t, "send with a policy server", status, body, http.StatusOK)
		if !policySignatureOf(t, hs1, p, room, body["event_id"].(string)) {
			t.Fatal("local event lacks the policy server's signature")
		}
		if n := p.Hits(peer.PolicySign); n != 1 {
			t.Fatalf("policy server asked %d times, want 1", n)
		}
		// Redactions are no exception.
		status, body = sendText(t, hs1, alice, room.ID, "to redact")
		testserver.WantStatus(t, "send", status, body, http.StatusOK)
		status, body = hs1.Do(t, http.MethodPut, "/_matrix/client/v3/rooms/"+url.PathEscape(room.ID)+"/redact/"+
			url.PathEscape(body["event_id"].(string))+"/r1", alice.AccessToken, map[string]string{})
		testserver.WantStatus(t, "redact", status, body, http.StatusOK)
		if !policySignatureOf(t, hs1, p, room, body["event_id"].(string)) {
			t.Fatal("redaction lacks the policy server's signature")
		}
		status, body = sendText(t, hs1, alice, room.ID, "buy spam")
		testserver.WantError(t, "spam", status, body, http.StatusBadRequest, "M_FORBIDDEN")
		if body["error"] != peer.PolicyRefusal {
			t.Fatalf("refusal %q, want the policy server's %q", body["error"], peer.PolicyRefusal)
		}

		// Received: unsigned spam is soft-failed, unsigned fine content
		// is signed on request, a signed event needs no request.
		spam := peerText(t, room, "remote spam", false)
		unsigned := peerText(t, room, "remote unsigned", true)
		signed := room.WithPolicySignature(t, peerText(t, room, "remote signed", true))
		for _, ev := range []gomatrixserverlib.PDU{spam, unsigned} {
			if res := p.Send(t, hs1, ev); res[ev.EventID()] != "" {
				t.Fatalf("%s: %q", ev.EventID(), res[ev.EventID()])
			}
		}
		before := p.Hits(peer.PolicySign)
		if res := p.Send(t, hs1, signed); res[signed.EventID()] != "" {
			t.Fatalf("signed event: %q", res[signed.EventID()])
		}
		if n := p.Hits(peer.PolicySign); n != before {
			t.Fatalf("policy server asked about an event it had signed")
		}
		if !policySignatureOf(t, hs1, p, room, unsigned.EventID()) {
			t.Fatal("received event stored without the signature hs1 asked for")
		}
		bodies := timelineBodies(t, hs1, bob, room.ID)
		if slices.Contains(bodies, "remote spam") || slices.Contains(bodies, "buy spam") {
			t.Fatalf("refused events in bob's sync: %q", bodies)
		}
		for _, want := range []string{"hello", "remote unsigned", "remote signed"} {
			if !slices.Contains(bodies, want) {
				t.Fatalf("%q missing from bob's sync %q", want, bodies)
			}
		}

		// Unreachable policy server, fail-closed.
		p.Refuse(peer.PolicySign, http.StatusServiceUnavailable)
		status, body = sendText(t, hs1, alice, room.ID, "while down")
		testserver.WantError(t, "send with the policy server down", status, body, http.StatusBadGateway, "M_UNKNOWN")
		p.Refuse(peer.PolicySign, peer.HangUp)
		status, body = sendText(t, hs1, alice, room.ID, "while unreachable")
		testserver.WantError(t, "send with the policy server unreachable", status, body, http.StatusBadGateway, "M_UNKNOWN")
		down := peerText(t, room, "remote while down", false)
		marker := room.WithPolicySignature(t, peerText(t, room, "remote marker", true))
		for _, ev := range []gomatrixserverlib.PDU{down, marker} {
			if res := p.Send(t, hs1, ev); res[ev.EventID()] != "" {
				t.Fatalf("%s: %q", ev.EventID(), res[ev.EventID()])
			}
		}
		bodies = timelineBodies(t, hs1, bob, room.ID)
		if !slices.Contains(bodies, "remote marker") || slices.Contains(bodies, "remote while down") || slices.Contains(bodies, "while down") ||
			slices.Contains(bodies, "while unreachable") {
			t.Fatalf("bob's sync with the policy server down (fail-closed): %q", bodies)
		}
	})
}

// TestPolicyServerFailOpen: with federation.policy_server_fail_open, an
// unreachable policy server lets local events out unsigned and received
// ones in; a policy server that answers and refuses is still obeyed.
func TestPolicyServerFailOpen(t *testing.T) {
	failOpen := func(_ int, c *config.Config) { c.Federation.PolicyServerFailOpen = true }
	peer.EachEngine(t, 1, failOpen, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room, alice, bob := policyRoom(t, hs1, p)
		setPolicy(t, hs1, p, room, p.PolicyContent())

		status, body := sendText(t, hs1, alice, room.ID, "buy spam")
		testserver.WantError(t, "spam with fail-open", status, body, http.StatusBadRequest, "M_FORBIDDEN")

		p.Refuse(peer.PolicySign, http.StatusServiceUnavailable)
		status, body = sendText(t, hs1, alice, room.ID, "while down")
		testserver.WantStatus(t, "send with the policy server down (fail-open)", status, body, http.StatusOK)
		if policySignatureOf(t, hs1, p, room, body["event_id"].(string)) {
			t.Fatal("event signed by a policy server that refused every request")
		}
		p.Refuse(peer.PolicySign, peer.HangUp)
		down := peerText(t, room, "remote while down", true)
		if res := p.Send(t, hs1, down); res[down.EventID()] != "" {
			t.Fatalf("%s: %q", down.EventID(), res[down.EventID()])
		}
		bodies := timelineBodies(t, hs1, bob, room.ID)
		if !slices.Contains(bodies, "while down") || !slices.Contains(bodies, "remote while down") || slices.Contains(bodies, "buy spam") {
			t.Fatalf("bob's sync with the policy server down (fail-open): %q", bodies)
		}
	})
}
