package remote

import (
	"context"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// eventFetchesInFlight bounds the /event requests this server has in
// flight to one destination. The resync of a room whose resident
// refuses /state asks for every event it lacks with /event: one after
// the other, thousands of them take as many round trips. Synapse fetches
// such events concurrently (its _get_events_from_remote_server batches
// them under a concurrency limit); a small bound keeps one resync from
// looking like a flood to the destination and from holding many
// connections.
const eventFetchesInFlight = 8

// eventFetchTimeout bounds each /event request.
const eventFetchTimeout = 30 * time.Second

// EventProvider fetches, from server, auth events missing from an
// answer (send_join, a state lookup while filling a gap), and the events
// a resync lacks when the server refuses /state. The events come back in
// the order of ids, whatever order their requests finish in, so the
// checks that follow see what a sequential fetch gave them; a failure
// fails the whole fetch, as before, and stops the requests not yet sent.
func (f *Service) EventProvider(server string) gomatrixserverlib.EventProvider {
	return func(v gomatrixserverlib.RoomVersion, ids []string) ([]gomatrixserverlib.PDU, error) {
		impl, err := gomatrixserverlib.GetRoomVersion(v)
		if err != nil {
			return nil, err
		}
		slots := f.eventSlots(server)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		results := make([][]gomatrixserverlib.PDU, len(ids))
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
		)
		for i, id := range ids {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				pdus, err := f.fetchEvent(ctx, impl, server, id)
				if err != nil {
					// The first failure is the cause; those after it
					// are mostly the cancellation it brings.
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				results[i] = pdus
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return nil, firstErr
		}
		var out []gomatrixserverlib.PDU
		for _, pdus := range results {
			out = append(out, pdus...)
		}
		return out, nil
	}
}

// eventSlots is server's semaphore of /event requests, shared by every
// fetch to it.
func (f *Service) eventSlots(server string) chan struct{} {
	if s, ok := f.fetchSlots.Load(server); ok {
		return s.(chan struct{})
	}
	s, _ := f.fetchSlots.LoadOrStore(server, make(chan struct{}, eventFetchesInFlight))
	return s.(chan struct{})
}

func (f *Service) fetchEvent(ctx context.Context, impl gomatrixserverlib.IRoomVersion, server, id string) ([]gomatrixserverlib.PDU, error) {
	ctx, cancel := context.WithTimeout(ctx, eventFetchTimeout)
	defer cancel()
	txn, err := f.d.Client.GetEvent(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(server), id)
	if err != nil {
		return nil, err
	}
	out := make([]gomatrixserverlib.PDU, 0, len(txn.PDUs))
	for _, raw := range txn.PDUs {
		pdu, err := rooms.ParsePDU(impl, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, pdu)
	}
	return out, nil
}
