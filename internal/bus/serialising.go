package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
)

// Serialising is a Bus that passes every change through JSON before each
// listener hears it, each listener getting a copy of its own, as a bus
// between processes would deliver it. The server runs on it in tests to
// show that no listener depends on sharing memory with the publisher
// (a pointer, a field JSON drops, a value the listener mutates): such a
// listener sees a different value here and its test fails.
type Serialising struct {
	in *InProcess
}

// NewSerialising returns an empty serialising bus.
func NewSerialising() *Serialising { return &Serialising{in: New()} }

// Subscribe implements Bus.
func (b *Serialising) Subscribe(name string, l Listener, topics ...string) {
	b.in.Subscribe(name, l, topics...)
}

// Publish implements Bus. A change that cannot make the trip is a
// programming error, and panics: it could not be published between
// processes either.
func (b *Serialising) Publish(ctx context.Context, c Change) {
	raw, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("bus: %s change %T does not serialise: %v", c.Topic(), c, err))
	}
	t := reflect.TypeOf(c)
	for _, s := range (*b.in.subs.Load())[c.Topic()] {
		copy := reflect.New(t)
		if err := json.Unmarshal(raw, copy.Interface()); err != nil {
			panic(fmt.Sprintf("bus: %s change %T does not deserialise: %v", c.Topic(), c, err))
		}
		s.l(ctx, copy.Elem().Interface().(Change))
	}
}

// Listeners lists the names subscribed to a topic, in order.
func (b *Serialising) Listeners(topic string) []string { return b.in.Listeners(topic) }
