package rooms

// TopicEvent is the topic under which the engine publishes a
// Notification, once an event is persisted and has its stream position:
// /sync waiters, push, the search indexer, the guest enforcer and
// federation's presence-on-join listen to it.
const TopicEvent = "rooms.event"

// Topic implements bus.Change.
func (Notification) Topic() string { return TopicEvent }
