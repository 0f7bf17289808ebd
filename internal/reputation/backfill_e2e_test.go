package reputation_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestReputationBackfillTakedown: history hs2 backfills from hs3 after
// joining leaves out the messages of a user the feed takes down (never
// stored, as live ones), and keeps the rest of the history, whose media
// is indexed with its room: once the feed lists the room, an image
// posted there before bob joined is not served.
func TestReputationBackfillTakedown(t *testing.T) {
	f := enfFederated(t)
	ctx := context.Background()
	admins, hs2, feed, bob, carol := f.admins, f.hs2, f.feed, f.bob, f.carol
	cathy := f.net.Servers[2].Register("cathy", "password1234")
	room := testserver.Room(t, carol, &mautrix.ReqCreateRoom{Preset: "public_chat"}, cathy)
	image, err := cathy.UploadBytes(ctx, []byte("an image from before the join"), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cathy.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.image", "body": "img",
		"url": image.ContentURI.CUString()}); err != nil {
		t.Fatal(err)
	}
	carolsID := enfSend(t, carol, room, "carol's old message")
	cathysID := enfSend(t, cathy, room, "cathy's old message")
	for i := range 3 {
		enfSend(t, cathy, room, "filler "+string(rune('a'+i)))
	}

	enfRule(t, admins[0], feed, "user", "carol", carol.UserID.String(), "m.takedown", "abuse")
	enfWaitListed(t, hs2, admins[1], "events", "user", carol.UserID.String(), true)
	if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs3.test"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "hs2 backfills cathy's old message", func() bool {
		return slices.Contains(enfTexts(t, hs2, bob, room), "cathy's old message")
	})
	if _, err := hs2.Engine().Event(ctx, cathysID.String()); err != nil {
		t.Fatalf("cathy's backfilled message is not stored: %v", err)
	}
	if _, err := hs2.Engine().Event(ctx, carolsID.String()); err == nil {
		t.Error("a taken-down user's message was stored by backfill")
	}
	enfWaitDecision(t, hs2, admins[1], "events", carol.UserID.String(), carolsID.String())

	download := func() int {
		uri := image.ContentURI
		return testserver.Send(t, nil, http.MethodGet, hs2.URL+"/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+uri.FileID, bob.AccessToken, nil).Status
	}
	if st := download(); st != http.StatusOK {
		t.Fatalf("the image before any room rule: status %d", st)
	}
	enfRule(t, admins[0], feed, "room", "r1", room.String(), "m.ban", "illegal media")
	enfWaitListed(t, hs2, admins[1], "media", "room", room.String(), true)
	eventually(t, "the backfilled image of a listed room is not served", func() bool { return download() == http.StatusNotFound })
}
