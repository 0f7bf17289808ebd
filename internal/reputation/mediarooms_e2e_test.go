package reputation_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestReputationRoomMediaOverFederation: hs2 subscribes to hs1's feed;
// a room of hs3 that hs2's bob is in gets media posted by carol of hs3
// (an image with a thumbnail, fetched and cached by hs2) and by bob
// (hs2's own media). Once the feed lists the room, hs2 serves none of
// that media (404, as for quarantined media), while media of hs3 posted
// in another room, and bob's media posted nowhere, are still served;
// removing the rule serves it all again.
func TestReputationRoomMediaOverFederation(t *testing.T) {
	f := enfFederated(t)
	ctx := context.Background()
	admins, hs2, feed, bob, carol := f.admins, f.hs2, f.feed, f.bob, f.carol
	newRoom := func() id.RoomID {
		created, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs3.test"}}); err != nil {
			t.Fatal(err)
		}
		return created.RoomID
	}
	listedRoom, otherRoom := newRoom(), newRoom()
	upload := func(c *mautrix.Client, text string) id.ContentURI {
		resp, err := c.UploadBytes(ctx, []byte(text), "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		return resp.ContentURI
	}
	post := func(c *mautrix.Client, room id.RoomID, content map[string]any) {
		if _, err := c.SendMessageEvent(ctx, room, event.EventMessage, content); err != nil {
			t.Fatal(err)
		}
	}
	image, thumb := upload(carol, "carol's image"), upload(carol, "its thumbnail")
	post(carol, listedRoom, map[string]any{"msgtype": "m.image", "body": "img", "url": image.CUString(),
		"info": map[string]any{"thumbnail_url": thumb.CUString()}})
	bobs := upload(bob, "bob's file")
	post(bob, listedRoom, map[string]any{"msgtype": "m.file", "body": "file", "url": bobs.CUString()})
	elsewhere := upload(carol, "posted in another room")
	post(carol, otherRoom, map[string]any{"msgtype": "m.file", "body": "file", "url": elsewhere.CUString()})
	unposted := upload(bob, "posted nowhere")

	download := func(uri id.ContentURI) int {
		return testserver.Send(t, nil, http.MethodGet, hs2.URL+"/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+uri.FileID, bob.AccessToken, nil).Status
	}
	all := []id.ContentURI{image, thumb, bobs, elsewhere, unposted}
	served := func(want map[id.ContentURI]int) func() bool {
		return func() bool {
			for _, uri := range all {
				if st := download(uri); st != want[uri] {
					t.Logf("%s: status %d, want %d", uri, st, want[uri])
					return false
				}
			}
			return true
		}
	}
	ok := map[id.ContentURI]int{image: 200, thumb: 200, bobs: 200, elsewhere: 200, unposted: 200}
	eventually(t, "every media served before any rule (hs2 caches hs3's)", served(ok))

	enfRule(t, admins[0], feed, "room", "r1", listedRoom.String(), "m.ban", "illegal media")
	enfWaitListed(t, hs2, admins[1], "media", "room", listedRoom.String(), true)
	eventually(t, "the listed room's media taken down, the rest served", served(map[id.ContentURI]int{
		image: 404, thumb: 404, bobs: 404, elsewhere: 200, unposted: 200}))
	enfWaitDecision(t, hs2, admins[1], "media", listedRoom.String(), image.String())
	enfWaitDecision(t, hs2, admins[1], "media", listedRoom.String(), bobs.String())

	enfRule(t, admins[0], feed, "room", "r1", "", "", "")
	enfWaitListed(t, hs2, admins[1], "media", "room", listedRoom.String(), false)
	eventually(t, "every media served again once the rule is removed", served(ok))
}

// TestReputationJoinStateMediaOverFederation: the avatar of a room of
// hs3, set before hs2 joined it, reaches hs2 in the join's state, not as
// a new event; once hs1's feed lists the room, hs2 serves it no more, and
// serves it again when the rule goes.
func TestReputationJoinStateMediaOverFederation(t *testing.T) {
	f := enfFederated(t)
	ctx := context.Background()
	admins, hs2, feed, bob, carol := f.admins, f.hs2, f.feed, f.bob, f.carol
	avatar, err := carol.UploadBytes(ctx, []byte("the room's avatar"), "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	created, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
		Type: event.StateRoomAvatar, Content: event.Content{Raw: map[string]any{"url": avatar.ContentURI.CUString()}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs3.test"}}); err != nil {
		t.Fatal(err)
	}
	uri := avatar.ContentURI
	served := func(want int) func() bool {
		return func() bool {
			return testserver.Send(t, nil, http.MethodGet, hs2.URL+"/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+uri.FileID, bob.AccessToken, nil).Status == want
		}
	}
	eventually(t, "the avatar served before any rule", served(http.StatusOK))
	enfRule(t, admins[0], feed, "room", "r1", created.RoomID.String(), "m.ban", "illegal media")
	enfWaitListed(t, hs2, admins[1], "media", "room", created.RoomID.String(), true)
	eventually(t, "the listed room's avatar taken down", served(http.StatusNotFound))
	enfRule(t, admins[0], feed, "room", "r1", "", "", "")
	enfWaitListed(t, hs2, admins[1], "media", "room", created.RoomID.String(), false)
	eventually(t, "the avatar served again once the rule is removed", served(http.StatusOK))
}
