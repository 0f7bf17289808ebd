package clientsync

import (
	"context"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/presence"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/receipts"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/typing"
)

// listen subscribes the notifier to new events (see Publish) and to the
// changes outside the event stream that a /sync reports: a room's typing list or receipts wake
// its local members; a user's presence wakes everyone sharing a room
// with them; a room whose partial state was completed wakes its local
// members (it is sent again with its full state); account data, notification counts, to-device messages
// and device lists wake the user. Listeners run on the publisher's
// goroutine, as the wake-up path always has.
func (n *Notifier) listen(b bus.Bus) {
	b.Subscribe("sync", func(_ context.Context, c bus.Change) {
		switch c := c.(type) {
		case rooms.Notification:
			n.Publish(c)
		case typing.Changed:
			n.WakeRoom(c.RoomID)
		case receipts.Stored:
			n.WakeRoom(c.RoomID)
		case rooms.PartialStateCompleted:
			n.WakeRoom(c.RoomID)
		case presence.Changed:
			n.WakeRoommates(c.UserID)
		case accountdata.Changed:
			n.Wake(c.UserID)
		case push.CountsChanged:
			n.Wake(c.UserID)
		case keys.Changed:
			n.Wake(c.UserID)
		}
	}, rooms.TopicEvent, rooms.TopicPartialStateCompleted, typing.TopicChanged, receipts.TopicStored, presence.TopicChanged,
		accountdata.TopicChanged, push.TopicCountsChanged, keys.TopicChanged)
}
