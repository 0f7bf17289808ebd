package federation

import "bytes"

// rawAnswer writes a federation answer by hand around event lists that
// are stored JSON already, so that tens of thousands of events are
// copied once rather than parsed and encoded again (send_join, /state).
type rawAnswer struct{ bytes.Buffer }

// newRawAnswer sizes the buffer for extra bytes besides the lists' events.
func newRawAnswer[T any](extra int, event func(T) []byte, lists ...[]T) *rawAnswer {
	size := extra
	for _, list := range lists {
		for _, ev := range list {
			size += len(event(ev)) + 1
		}
	}
	a := &rawAnswer{}
	a.Grow(size)
	return a
}

// writeList writes evs as a JSON array of their stored JSON.
func writeList[T any](a *rawAnswer, evs []T, event func(T) []byte) {
	a.WriteByte('[')
	for i, ev := range evs {
		if i > 0 {
			a.WriteByte(',')
		}
		a.Write(event(ev))
	}
	a.WriteByte(']')
}
