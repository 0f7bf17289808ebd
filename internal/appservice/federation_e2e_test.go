package appservice_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	mas "maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// creatingQueries answers Myelin's queries as a bridge that knows
// @puppet_known*: it registers them; and #bridged_made*: it creates the
// room with that alias, as a bridge does for a channel of its network.
type creatingQueries struct{ b *bridge }

func (q creatingQueries) QueryUser(userID id.UserID) bool {
	q.b.queried <- string(userID)
	if !strings.HasPrefix(userID.Localpart(), "puppet_known") {
		return false
	}
	return q.b.as.Intent(userID).EnsureRegistered(context.Background()) == nil
}

func (q creatingQueries) QueryAlias(alias id.RoomAlias) bool {
	q.b.queried <- string(alias)
	local := strings.TrimPrefix(strings.SplitN(string(alias), ":", 2)[0], "#")
	if !strings.HasPrefix(local, "bridged_made") {
		return false
	}
	_, err := q.b.as.BotIntent().CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: local})
	return err == nil
}

// queried waits for the bridge to be asked about what.
func (b *bridge) wasQueried(what string) {
	b.t.Helper()
	for {
		select {
		case q := <-b.queried:
			if q == what {
				return
			}
		default:
			b.t.Fatalf("the bridge was never asked about %s", what)
		}
	}
}

// TestAppServiceFederationQueries: another server's profile and alias
// queries about a service's users and aliases that do not exist yet ask
// the service, as this server's own clients' do; an invite from another
// server to a puppet the bridge has not registered yet is taken and
// reaches the bridge, which registers the puppet and joins; invites to
// unknown users outside every namespace stay refused; and a service
// network's directory is listed to another server's users.
func TestAppServiceFederationQueries(t *testing.T) {
	for _, engine := range testdb.Engines() {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			b := newBridge(t, "hs1.test")
			b.as.QueryHandler = creatingQueries{b}
			net := testserver.StartNetwork(t, engine, 2, func(i int, c *config.Config) {
				if i == 0 {
					c.AppServices.Files = []string{b.path}
				}
			})
			hs1, hs2 := net.Servers[0], net.Servers[1]
			b.start(hs1.URL)
			bob := hs2.Register("bob", "password")

			// Profiles: hs2 asks hs1 (signed /query/profile).
			query := func(path string) (int, map[string]any) {
				t.Helper()
				return net.SignedRequest(t, hs2, hs1, http.MethodGet, "/_matrix/federation/v1"+path, nil)
			}
			status, body := query("/query/profile?user_id=" + url.QueryEscape("@puppet_known_1:hs1.test"))
			testserver.WantStatus(t, "profile of a puppet the bridge creates on the query", status, body, http.StatusOK)
			b.wasQueried("@puppet_known_1:hs1.test")
			status, body = query("/query/profile?user_id=" + url.QueryEscape("@puppet_nobody:hs1.test"))
			testserver.WantError(t, "profile of a puppet the bridge does not know", status, body, http.StatusNotFound, "M_NOT_FOUND")
			b.wasQueried("@puppet_nobody:hs1.test")
			status, body = query("/query/profile?user_id=" + url.QueryEscape("@stranger:hs1.test"))
			testserver.WantError(t, "profile outside the namespaces", status, body, http.StatusNotFound, "M_NOT_FOUND")
			// The same through bob's client, as a client on hs2 sees it.
			if _, err := bob.GetProfile(ctx, id.UserID("@puppet_known_2:hs1.test")); err != nil {
				t.Fatalf("bob reading a puppet's profile: %v", err)
			}

			// Aliases: hs2's client resolves one the bridge creates on
			// the query.
			resolved, err := bob.ResolveAlias(ctx, id.RoomAlias("#bridged_made_1:hs1.test"))
			if err != nil {
				t.Fatalf("resolving a bridged alias from hs2: %v", err)
			}
			b.wasQueried("#bridged_made_1:hs1.test")
			if resolved.RoomID == "" || len(resolved.Servers) == 0 || resolved.Servers[0] != "hs1.test" {
				t.Fatalf("resolved to %+v", resolved)
			}
			status, body = query("/query/directory?room_alias=" + url.QueryEscape("#bridged_none:hs1.test"))
			testserver.WantError(t, "an alias the bridge does not create", status, body, http.StatusNotFound, "M_NOT_FOUND")

			// An invite from hs2 to a puppet that does not exist yet.
			room, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
			if err != nil {
				t.Fatal(err)
			}
			newPuppet := id.UserID("@puppet_new:hs1.test")
			if _, err := bob.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: newPuppet}); err != nil {
				t.Fatalf("inviting an unregistered puppet from hs2: %v", err)
			}
			b.next("the invite of an unregistered puppet", func(e *event.Event) bool {
				return e.RoomID == room.RoomID && e.Type == event.StateMember && e.GetStateKey() == string(newPuppet) &&
					e.Content.AsMember().Membership == event.MembershipInvite
			})
			puppet := b.as.Intent(newPuppet)
			if err := puppet.EnsureJoined(ctx, room.RoomID, mas.EnsureJoinedParams{Via: []string{"hs2.test"}}); err != nil {
				t.Fatalf("the new puppet accepting the remote invite: %v", err)
			}
			testserver.SyncUntil(t, bob, "", "the puppet's join on hs2", func(resp *mautrix.RespSync) bool {
				joined := resp.Rooms.Join[room.RoomID]
				if joined == nil {
					return false
				}
				for _, e := range joined.Timeline.Events {
					if e.Type == event.StateMember && e.GetStateKey() == string(newPuppet) && e.Content.Raw["membership"] == "join" {
						return true
					}
				}
				return false
			})
			if _, err := bob.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: "@stranger:hs1.test"}); err == nil {
				t.Fatal("an invite to an unknown user outside every namespace was taken")
			}

			// The bridge's network directory, seen from hs2.
			status, body = hs1.Do(t, http.MethodPut, "/_matrix/client/v3/directory/list/appservice/net1/"+url.PathEscape(string(resolved.RoomID)),
				b.as.Registration.AppToken, map[string]string{"visibility": "public"})
			testserver.WantStatus(t, "publishing in the network's directory", status, body, http.StatusOK)
			for _, c := range []struct {
				instance string
				want     int
			}{{"testbridge|net1", 1}, {"", 0}, {"testbridge|net2", 0}} {
				resp, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "hs1.test", ThirdPartyInstanceID: c.instance})
				if err != nil {
					t.Fatalf("hs1's directory %q from hs2: %v", c.instance, err)
				}
				if len(resp.Chunk) != c.want || (c.want == 1 && resp.Chunk[0].RoomID != resolved.RoomID) {
					t.Fatalf("hs1's directory %q from hs2: %+v, want %d room(s)", c.instance, resp.Chunk, c.want)
				}
			}
		})
	}
}

// TestAppServiceInterestFollowsMembership: the sender remembers across
// transactions which rooms interest the service; a puppet joining a room
// the service had no interest in makes its next messages reach the
// service, and the puppet leaving stops them.
func TestAppServiceInterestFollowsMembership(t *testing.T) {
	eachEngine(t, func(t *testing.T, s *testserver.Server, b *bridge) {
		ctx := context.Background()
		alice := s.Register("alice", "password")
		quiet, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		marker, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		puppet := b.as.Intent(id.UserID(s.UserID("puppet_watch")))
		if err := puppet.EnsureJoined(ctx, marker.RoomID); err != nil {
			t.Fatal(err)
		}
		send := func(room id.RoomID, body string) {
			t.Helper()
			if _, err := alice.SendText(ctx, room, body); err != nil {
				t.Fatal(err)
			}
		}
		// Before the puppet joins: the quiet room's message is not sent
		// (the marker room's, after it, shows the service is up to date).
		send(quiet.RoomID, "unseen")
		send(marker.RoomID, "marker 1")
		got := b.next("marker 1", func(e *event.Event) bool {
			return e.Type == event.EventMessage && (e.RoomID == quiet.RoomID || e.Content.AsMessage().Body == "marker 1")
		})
		if got.RoomID == quiet.RoomID {
			t.Fatal("the service got a message of a room it has no interest in")
		}
		if err := puppet.EnsureJoined(ctx, quiet.RoomID); err != nil {
			t.Fatal(err)
		}
		send(quiet.RoomID, "seen")
		if got := b.messages(quiet.RoomID, 1); got[0] != "seen" {
			t.Fatalf("after the join: %q", got)
		}
		if _, err := puppet.LeaveRoom(ctx, quiet.RoomID); err != nil {
			t.Fatal(err)
		}
		send(quiet.RoomID, "gone")
		send(marker.RoomID, "marker 2")
		got = b.next("marker 2", func(e *event.Event) bool {
			return e.Type == event.EventMessage && (e.RoomID == quiet.RoomID || e.Content.AsMessage().Body == "marker 2")
		})
		if got.RoomID == quiet.RoomID {
			t.Fatalf("after the leave the service still got %q", got.Content.AsMessage().Body)
		}
	})
}
