package testserver

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// Room is a room creator makes with req, which members then join in
// order, through the creator's server (members of other servers need it
// named; for the creator's own it changes nothing).
func Room(t testing.TB, creator *mautrix.Client, req *mautrix.ReqCreateRoom, members ...*mautrix.Client) id.RoomID {
	t.Helper()
	ctx := context.Background()
	created, err := creator.CreateRoom(ctx, req)
	if err != nil {
		t.Fatalf("%s creates a room: %v", creator.UserID, err)
	}
	via := &mautrix.ReqJoinRoom{Via: []string{creator.UserID.Homeserver()}}
	for _, c := range members {
		if _, err := c.JoinRoom(ctx, created.RoomID.String(), via); err != nil {
			t.Fatalf("%s joins: %v", c.UserID, err)
		}
	}
	return created.RoomID
}
