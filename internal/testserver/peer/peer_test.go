package peer_test

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// TestPeerJoinProtocol drives one peer's make_join and send_join from
// another, the full-state join and the partial-state one (omit_members:
// other members left out but the heroes, members_omitted and
// servers_in_room set), and checks that the peer checks signatures.
func TestPeerJoinProtocol(t *testing.T) {
	net := testserver.NewNetwork(t)
	host := peer.New(t, net, "host.test")
	guest := peer.New(t, net, "guest.test")
	room := host.CreateRoom(t)
	for _, name := range []string{"m1", "m2", "m3", "m4", "m5", "m6"} {
		user := host.UserID(name)
		room.Create(t, user, spec.MRoomMember, &user, map[string]string{"membership": spec.Join})
	}
	join := func(localpart string, omit bool) map[string]json.RawMessage {
		t.Helper()
		user := guest.UserID(localpart)
		status, raw := guest.RequestTo(t, host.Name, http.MethodGet,
			"/_matrix/federation/v1/make_join/"+url.PathEscape(room.ID)+"/"+url.PathEscape(user)+"?ver=10", nil)
		if status != http.StatusOK {
			t.Fatalf("make_join: %d %s", status, raw)
		}
		var tmpl struct {
			Event gomatrixserverlib.ProtoEvent `json:"event"`
		}
		if err := json.Unmarshal(raw, &tmpl); err != nil {
			t.Fatal(err)
		}
		pdu, err := room.Version.NewEventBuilderFromProtoEvent(&tmpl.Event).Build(time.Now(), spec.ServerName(guest.Name), guest.KeyID, guest.Key)
		if err != nil {
			t.Fatal(err)
		}
		path := "/_matrix/federation/v2/send_join/" + url.PathEscape(room.ID) + "/" + url.PathEscape(pdu.EventID())
		if omit {
			path += "?omit_members=true"
		}
		status, raw = guest.RequestTo(t, host.Name, http.MethodPut, path, json.RawMessage(pdu.JSON()))
		if status != http.StatusOK {
			t.Fatalf("send_join: %d %s", status, raw)
		}
		var resp map[string]json.RawMessage
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatal(err)
		}
		if room.Event(pdu.EventID()) == nil {
			t.Fatal("the join is not in the host's room")
		}
		return resp
	}
	members := func(resp map[string]json.RawMessage) int {
		t.Helper()
		var state []json.RawMessage
		if err := json.Unmarshal(resp["state"], &state); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, raw := range state {
			ev, err := room.Version.NewEventFromUntrustedJSON(raw)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type() == spec.MRoomMember {
				n++
			}
		}
		return n
	}

	full := join("full", false)
	if n := members(full); n != 7 || string(full["members_omitted"]) != "false" {
		t.Fatalf("full join: %d members, members_omitted %s", n, full["members_omitted"])
	}
	partial := join("partial", true)
	if n := members(partial); n != 5 || string(partial["members_omitted"]) != "true" {
		t.Fatalf("partial join: %d members, members_omitted %s", n, partial["members_omitted"])
	}
	var servers []string
	if err := json.Unmarshal(partial["servers_in_room"], &servers); err != nil || len(servers) != 2 {
		t.Fatalf("servers_in_room: %s", partial["servers_in_room"])
	}

	// A request signed with a key the guest does not publish is refused.
	_, forged, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	req := fclient.NewFederationRequest(http.MethodGet, spec.ServerName(guest.Name), spec.ServerName(host.Name),
		"/_matrix/federation/v1/make_join/"+url.PathEscape(room.ID)+"/"+url.PathEscape(guest.UserID("x"))+"?ver=10")
	if err := req.Sign(spec.ServerName(guest.Name), guest.KeyID, forged); err != nil {
		t.Fatal(err)
	}
	hreq, err := req.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	hreq.URL.Scheme = "https"
	resp, err := net.HTTPClient().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged request: %d", resp.StatusCode)
	}
}
