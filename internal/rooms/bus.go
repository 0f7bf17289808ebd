package rooms

// Fanout is a Bus that hands every notification to several listeners, in
// the order they subscribed, so that /sync, push and later others all
// hear of every event. Subscribe before the engine starts publishing.
type Fanout struct {
	listeners []Bus
}

// Subscribe adds a listener.
func (f *Fanout) Subscribe(b Bus) { f.listeners = append(f.listeners, b) }

// Publish implements Bus.
func (f *Fanout) Publish(n Notification) {
	for _, b := range f.listeners {
		b.Publish(n)
	}
}
