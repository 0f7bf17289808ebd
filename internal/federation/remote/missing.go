package remote

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

const (
	// missingLimit is the limit asked of /get_missing_events per request.
	missingLimit = 20
	// missingRounds bounds the requests made for one event: a gap up to
	// missingLimit*missingRounds events (a destination catching up after
	// an outage) is filled this way.
	missingRounds  = 5
	missingTimeout = time.Minute
)

// MissingEvents asks server for the events between the room's forward
// extremities here and pdu (/get_missing_events, in rounds while some
// fetched event still lacks prev events), passes each through check (as
// if it had come in a transaction: parse, signatures, the caller's
// rules; an event check refuses is dropped and the rest kept) and
// returns them oldest (lowest depth) first.
func (f *Service) MissingEvents(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU, check func(json.RawMessage) (gomatrixserverlib.PDU, error)) ([]gomatrixserverlib.PDU, error) {
	ctx, cancel := context.WithTimeout(ctx, missingTimeout)
	defer cancel()
	roomID := pdu.RoomID().String()
	extremities, _, err := f.d.Rooms.Extremities(ctx, roomID)
	if err != nil {
		return nil, err
	}
	minDepth, err := f.minDepth(ctx, extremities)
	if err != nil {
		return nil, err
	}
	fetched := map[string]gomatrixserverlib.PDU{}
	latest := []string{pdu.EventID()}
	for round := 0; round < missingRounds && len(latest) > 0; round++ {
		// What this server has, fetched events included, bounds the walk;
		// the events it starts from must not be among them, or the other
		// side skips them.
		earliest := slices.Clone(extremities)
		for id := range fetched {
			if !slices.Contains(latest, id) {
				earliest = append(earliest, id)
			}
		}
		resp, err := f.d.Client.LookupMissingEvents(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(server), roomID,
			fclient.MissingEvents{Limit: missingLimit, MinDepth: int(minDepth), EarliestEvents: earliest, LatestEvents: latest}, v.Version())
		if err != nil {
			return sortedByDepth(fetched), fmt.Errorf("get_missing_events from %s: %w", server, err)
		}
		added := 0
		for _, raw := range resp.Events {
			ev, err := check(json.RawMessage(raw))
			if err != nil || ev.RoomID().String() != roomID {
				f.d.Log.Info("federation: dropping a fetched missing event", "server", server, "err", err)
				continue
			}
			if _, ok := fetched[ev.EventID()]; !ok {
				fetched[ev.EventID()] = ev
				added++
			}
		}
		if added == 0 {
			break
		}
		if latest, err = f.stillMissing(ctx, pdu, fetched); err != nil {
			return nil, err
		}
	}
	return sortedByDepth(fetched), nil
}

// stillMissing lists the events (pdu and those fetched) whose prev
// events are neither stored nor fetched: where the next request starts.
func (f *Service) stillMissing(ctx context.Context, pdu gomatrixserverlib.PDU, fetched map[string]gomatrixserverlib.PDU) ([]string, error) {
	var out []string
	check := append([]gomatrixserverlib.PDU{pdu}, sortedByDepth(fetched)...)
	for _, ev := range check {
		var unknown []string
		for _, p := range ev.PrevEventIDs() {
			if _, ok := fetched[p]; !ok {
				unknown = append(unknown, p)
			}
		}
		if len(unknown) == 0 {
			continue
		}
		known, err := f.d.Rooms.EventsByID(ctx, unknown)
		if err != nil {
			return nil, err
		}
		if len(known) < len(unknown) {
			out = append(out, ev.EventID())
		}
	}
	return out, nil
}

// minDepth is the lowest depth of the given events, below which the
// other server need not walk.
func (f *Service) minDepth(ctx context.Context, ids []string) (int64, error) {
	evs, err := f.d.Rooms.EventsByID(ctx, ids)
	if err != nil {
		return 0, err
	}
	var d int64
	for i, ev := range evs {
		if i == 0 || ev.Depth() < d {
			d = ev.Depth()
		}
	}
	return d, nil
}

// sortedByDepth lists events oldest (lowest depth) first, ties broken by
// event ID so that the order is the same every time.
func sortedByDepth(m map[string]gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	evs := make([]gomatrixserverlib.PDU, 0, len(m))
	for _, v := range m {
		evs = append(evs, v)
	}
	slices.SortFunc(evs, func(x, y gomatrixserverlib.PDU) int {
		if c := cmp.Compare(x.Depth(), y.Depth()); c != 0 {
			return c
		}
		return strings.Compare(x.EventID(), y.EventID())
	})
	return evs
}
