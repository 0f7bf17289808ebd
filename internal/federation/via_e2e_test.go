package federation_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestJoinAndKnockServerName: the servers to join or knock through come
// from via (v1.12; the other membership tests use it through mautrix)
// and, for clients older than v1.12, from the deprecated server_name;
// the join's reason reaches the resident server in the event's content.
func TestJoinAndKnockServerName(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		carol := hs2.Register("carol", "password1234")
		public, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		knockable, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat",
			InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Parsed: &event.JoinRulesEventContent{JoinRule: event.JoinRuleKnock}}}}})
		if err != nil {
			t.Fatal(err)
		}
		st, body := hs2.Do(t, http.MethodPost, "/_matrix/client/v3/join/"+url.PathEscape(public.RoomID.String())+"?server_name=hs1.test",
			bob.AccessToken, map[string]any{"reason": "hello from hs2"})
		testserver.WantStatus(t, "join with server_name", st, body, http.StatusOK)
		var m event.MemberEventContent
		if err := alice.StateEvent(ctx, public.RoomID, event.StateMember, bob.UserID.String(), &m); err != nil || m.Membership != event.MembershipJoin || m.Reason != "hello from hs2" {
			t.Fatalf("bob's join as hs1 sees it: %+v, %v", m, err)
		}
		st, body = hs2.Do(t, http.MethodPost, "/_matrix/client/v3/knock/"+url.PathEscape(knockable.RoomID.String())+"?server_name=hs1.test",
			carol.AccessToken, map[string]any{"reason": "let me in"})
		testserver.WantStatus(t, "knock with server_name", st, body, http.StatusOK)
		if err := alice.StateEvent(ctx, knockable.RoomID, event.StateMember, carol.UserID.String(), &m); err != nil || m.Membership != event.MembershipKnock || m.Reason != "let me in" {
			t.Fatalf("carol's knock as hs1 sees it: %+v, %v", m, err)
		}
	})
}
