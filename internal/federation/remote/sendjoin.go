package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/tidwall/gjson"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// The make_join/send_join handshake, done here rather than with
// gomatrixserverlib's PerformJoin (issue 14 item 12): PerformJoin and the
// CheckSendJoinResponse it calls parse every returned event three times
// (and this package a fourth, to refuse what is not of the room) and
// check signatures one event after the other. A room with tens of
// thousands of state events then takes tens of seconds to join. Here
// each event is parsed once (its ID computed once), signatures are
// checked on every core and the auth checks of events whose auth events
// are all in the answer too; what is checked is what CheckSendJoinResponse
// checks, in the same order of consequences:
//   - the auth chain holds a create event of a known room version;
//   - every event has a state key, and no two state events share a key;
//   - events whose signatures fail are left out, then those not allowed
//     by their auth events (looked up in the answer, else fetched from
//     the resident server);
//   - the join is allowed by its auth events and by the returned state.

// joinAnswer is a checked send_join answer.
type joinAnswer struct {
	join         gomatrixserverlib.PDU
	state, chain []gomatrixserverlib.PDU
	// partial is what the answer says about partial state (nil: full
	// state was asked for).
	partial *partialAnswer
}

// performJoin joins userID to roomID through server: make_join, the
// join event built and signed, send_join (with omit_members when
// partial), and the answer checked.
func (f *Service) performJoin(ctx context.Context, server string, uid *spec.UserID, rid *spec.RoomID, content map[string]any, partial bool) (*joinAnswer, error) {
	origin, dest := uid.Domain(), spec.ServerName(server)
	mj, err := f.d.Client.MakeJoin(ctx, origin, dest, rid.String(), uid.String())
	if err != nil {
		return nil, fmt.Errorf("make_join: %w", err)
	}
	version := mj.RoomVersion
	if version == "" {
		// "If not provided, the room version is assumed to be either
		// "1" or "2"" (make_join), told apart as PerformJoin does: from
		// v3 on auth_events are IDs, not [ID, hashes] pairs.
		version = gomatrixserverlib.RoomVersionV1
		if list, ok := mj.JoinEvent.AuthEvents.([]any); ok && len(list) > 0 {
			if _, ok := list[0].(string); ok {
				version = gomatrixserverlib.RoomVersionV4
			}
		}
	}
	v, err := supportedVersion(version)
	if err != nil {
		return nil, err
	}
	if version == gomatrixserverlib.RoomVersionPseudoIDs {
		return nil, fmt.Errorf("room version %q is not supported", version)
	}
	proto := mj.JoinEvent
	sender := uid.String()
	proto.Type, proto.RoomID, proto.Redacts, proto.SenderID, proto.StateKey = spec.MRoomMember, rid.String(), "", sender, &sender
	// The template's content (join_authorised_via_users_server for a
	// restricted room) wins over the client's, membership over both.
	merged := maps.Clone(content)
	if merged == nil {
		merged = map[string]any{}
	}
	_ = json.Unmarshal(proto.Content, &merged)
	merged["membership"] = spec.Join
	eb := v.NewEventBuilderFromProtoEvent(&proto)
	if err := eb.SetContent(merged); err != nil {
		return nil, fmt.Errorf("join content: %w", err)
	}
	if err := eb.SetUnsigned(struct{}{}); err != nil {
		return nil, err
	}
	join, err := eb.Build(time.Now(), origin, gomatrixserverlib.KeyID(f.d.Key.ID), f.d.Key.Private)
	if err != nil {
		return nil, fmt.Errorf("building the join: %w", err)
	}

	send := f.d.Client.SendJoin
	if partial {
		send = f.d.Client.SendJoinPartialState
	}
	// As PerformJoin: once the resident server has the join, the answer
	// is processed even if the client stops waiting.
	r, err := send(context.WithoutCancel(ctx), origin, dest, join)
	if err != nil {
		return nil, fmt.Errorf("send_join: %w", err)
	}
	out := &joinAnswer{join: join}
	if partial {
		out.partial = &partialAnswer{}
		out.partial.record(r)
	}
	out.state, out.chain, err = f.checkSendJoin(ctx, server, v, rid.String(), sender, out, r)
	return out, err
}

// checkSendJoin parses and checks a send_join answer; it may replace
// a.join with the resident server's copy (which may carry its
// signature, as a restricted join's must).
func (f *Service) checkSendJoin(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, roomID, sender string, a *joinAnswer, r fclient.RespSendJoin) (state, chain []gomatrixserverlib.PDU, err error) {
	// What does not parse or is not an event of the room is left out,
	// as gomatrixserverlib leaves out what does not parse: the checks
	// below then fail without it if it mattered (a missing create event
	// fails the join).
	raws := r.StateEvents
	if a.partial != nil && a.partial.omitted {
		raws = deferNonSpecState(raws)
	}
	state = parseAll(v, roomID, raws)
	chain = parseAll(v, roomID, r.AuthEvents)
	if len(r.Event) > 0 {
		if remote, err := rooms.ParsePDU(v, r.Event); err == nil && remote.RoomID().String() == roomID &&
			remote.StateKeyEquals(sender) {
			if m, err := remote.Membership(); err == nil && m == spec.Join {
				a.join = remote
			}
		}
	}
	if a.partial != nil && a.partial.omitted {
		// With omit_members the resident server may leave out of
		// auth_chain what state holds (spec, send_join v2).
		chain = withCreatePDU(chain, state)
	}
	if err := createOfKnownVersion(chain); err != nil {
		return nil, nil, err
	}
	seen := make(map[gomatrixserverlib.StateKeyTuple]bool, len(state))
	for _, ev := range append(chain, state...) {
		if ev.StateKey() == nil {
			return nil, nil, fmt.Errorf("event %q does not have a state key", ev.EventID())
		}
	}
	for _, ev := range state {
		k := gomatrixserverlib.StateKeyTuple{EventType: ev.Type(), StateKey: *ev.StateKey()}
		if seen[k] {
			return nil, nil, fmt.Errorf("duplicate state key tuple (%q, %q)", k.EventType, k.StateKey)
		}
		seen[k] = true
	}

	// The auth chain and the state overlap (the create event, power
	// levels...): each event is checked once.
	all := make([]gomatrixserverlib.PDU, 0, len(chain)+len(state))
	inAll := make(map[string]bool, len(chain)+len(state))
	for _, ev := range append(chain[:len(chain):len(chain)], state...) {
		if !inAll[ev.EventID()] {
			inAll[ev.EventID()] = true
			all = append(all, ev)
		}
	}
	failed := f.verifySignatures(ctx, all)
	byID := make(map[string]gomatrixserverlib.PDU, len(all))
	for i, ev := range all {
		if failed[i] == nil {
			byID[ev.EventID()] = ev
		}
	}
	missing := f.EventProvider(server)
	authFailed := checkAuthAll(all, byID, missing)
	bad := map[string]bool{}
	for i, ev := range all {
		if failed[i] != nil || authFailed[i] != nil {
			f.d.Log.Info("send_join answer: event left out", "room_id", roomID, "event_id", ev.EventID(),
				"err", errors.Join(failed[i], authFailed[i]))
			bad[ev.EventID()] = true
		}
	}
	if len(bad) > 0 {
		keep := func(list []gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
			out := list[:0:0]
			for _, ev := range list {
				if !bad[ev.EventID()] {
					out = append(out, ev)
				}
			}
			return out
		}
		chain, state = keep(chain), keep(state)
	}

	// The join against its auth events, then against the returned state
	// (not former auth events), as CheckSendJoinResponse does; byID
	// holds what failed too, as there.
	for _, ev := range all {
		byID[ev.EventID()] = ev
	}
	if err := allowedByAuthEvents(a.join, byID, missing); err != nil {
		return nil, nil, err
	}
	current, _ := gomatrixserverlib.NewAuthEvents(nil)
	for _, ev := range state {
		if err := current.AddEvent(ev); err != nil {
			return nil, nil, err
		}
	}
	if err := gomatrixserverlib.Allowed(a.join, current, UserIDForSender); err != nil {
		return nil, nil, fmt.Errorf("event with ID %q is not allowed by the current room state: %w", a.join.EventID(), err)
	}
	return state, chain, nil
}

// deferNonSpecState leaves out of a partial-state join's answer the
// state events outside the spec's m. namespace (custom state: widgets,
// bots' and clients' own records), as the resident server left out the
// memberships. Like those, they are not needed to join: no auth rule
// reads them, and what the server itself acts on (ACLs, encryption,
// policy servers, history visibility...) is m. state and kept. The
// partial-state resync then fetches them with the members and checks
// them in full before storing them; until then clients' state reads wait
// for the full state (awaitFullState) and /sync sends it once complete.
// Nothing unchecked is stored: a room with tens of thousands of such
// events is joined in the time its few m. state events take to check
// (issue 14 item 12). Only the type is read here (gjson), not the event.
func deferNonSpecState(raws gomatrixserverlib.EventJSONs) gomatrixserverlib.EventJSONs {
	out := make(gomatrixserverlib.EventJSONs, 0, len(raws))
	for _, raw := range raws {
		if strings.HasPrefix(gjson.GetBytes(raw, "type").Str, "m.") {
			out = append(out, raw)
		}
	}
	return out
}

// checkStateAnswer is gomatrixserverlib.CheckStateResponse done on every
// core, each event parsed once: a /state answer's events with their
// state keys, no two state events with one key, and those whose
// signatures fail or that their auth events (in the answer, else from
// missing) do not allow left out. It returns the auth chain and the
// state, in that order as CheckStateResponse does.
func (f *Service) checkStateAnswer(ctx context.Context, v gomatrixserverlib.IRoomVersion, roomID string, resp *fclient.RespState, missing gomatrixserverlib.EventProvider) (chain, state []gomatrixserverlib.PDU, err error) {
	chain = parseAll(v, roomID, resp.AuthEvents)
	state = parseAll(v, roomID, resp.StateEvents)
	seen := make(map[gomatrixserverlib.StateKeyTuple]bool, len(state))
	for _, ev := range chain {
		if ev.StateKey() == nil {
			return nil, nil, fmt.Errorf("event %q does not have a state key", ev.EventID())
		}
	}
	for _, ev := range state {
		if ev.StateKey() == nil {
			return nil, nil, fmt.Errorf("event %q does not have a state key", ev.EventID())
		}
		k := gomatrixserverlib.StateKeyTuple{EventType: ev.Type(), StateKey: *ev.StateKey()}
		if seen[k] {
			return nil, nil, fmt.Errorf("duplicate state key tuple (%q, %q)", k.EventType, k.StateKey)
		}
		seen[k] = true
	}
	all := append(chain[:len(chain):len(chain)], state...)
	failed := f.verifySignatures(ctx, all)
	byID := make(map[string]gomatrixserverlib.PDU, len(all))
	for i, ev := range all {
		if failed[i] == nil {
			byID[ev.EventID()] = ev
		}
	}
	authFailed := checkAuthAll(all, byID, missing)
	bad := map[string]bool{}
	for i, ev := range all {
		if failed[i] != nil || authFailed[i] != nil {
			f.d.Log.Info("state answer: event left out", "room_id", roomID, "event_id", ev.EventID(),
				"err", errors.Join(failed[i], authFailed[i]))
			bad[ev.EventID()] = true
		}
	}
	keep := func(list []gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
		out := list[:0:0]
		for _, ev := range list {
			if !bad[ev.EventID()] {
				out = append(out, ev)
			}
		}
		return out
	}
	return keep(chain), keep(state), nil
}

// parseAll parses events on every core; events that do not parse or
// belong to another room are left out, the order kept.
func parseAll(v gomatrixserverlib.IRoomVersion, roomID string, raws gomatrixserverlib.EventJSONs) []gomatrixserverlib.PDU {
	pdus := make([]gomatrixserverlib.PDU, len(raws))
	eachInParallel(len(raws), func(i int) {
		if pdu, err := rooms.ParsePDU(v, raws[i]); err == nil && pdu.RoomID().String() == roomID {
			pdus[i] = pdu
		}
	})
	out := pdus[:0]
	for _, p := range pdus {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// verifySignatures checks every event's signatures on every core and
// returns each one's error (nil: good). One event of each signing server
// is checked first, alone, so that a key not yet known is fetched once
// rather than by every worker at the same time.
func (f *Service) verifySignatures(ctx context.Context, evs []gomatrixserverlib.PDU) []error {
	errs := make([]error, len(evs))
	done := make([]bool, len(evs))
	first := map[string]bool{}
	for i, ev := range evs {
		srv := ServerOf(string(ev.SenderID()))
		if first[srv] {
			continue
		}
		first[srv] = true
		errs[i], done[i] = gomatrixserverlib.VerifyEventSignatures(ctx, ev, f.d.KeyRing, UserIDForSender), true
	}
	eachInParallel(len(evs), func(i int) {
		if !done[i] {
			errs[i] = gomatrixserverlib.VerifyEventSignatures(ctx, evs[i], f.d.KeyRing, UserIDForSender)
		}
	})
	return errs
}

// checkAuthAll checks every event against its auth events (byID, which
// holds the events whose signatures passed), on every core. The auth
// events none of them holds are asked of missing first, all in one
// request, then those still missing one by one (as gomatrixserverlib
// does; a nil entry records a failed fetch): in a resync the auth events
// are mostly this server's own (create, power levels), which localFirst
// reads in one query.
func checkAuthAll(all []gomatrixserverlib.PDU, byID map[string]gomatrixserverlib.PDU, missing gomatrixserverlib.EventProvider) []error {
	if missing != nil && len(all) > 0 {
		var want []string
		asked := map[string]bool{}
		for _, ev := range all {
			for _, id := range ev.AuthEventIDs() {
				if _, ok := byID[id]; !ok && !asked[id] {
					asked[id] = true
					want = append(want, id)
				}
			}
		}
		if len(want) > 0 {
			if fetched, err := missing(all[0].Version(), want); err == nil {
				for _, e := range fetched {
					byID[e.EventID()] = e
				}
			}
			for _, id := range want {
				if _, ok := byID[id]; !ok {
					fetched, err := missing(all[0].Version(), []string{id})
					byID[id] = nil
					if err == nil {
						for _, e := range fetched {
							byID[e.EventID()] = e
						}
					}
				}
			}
		}
	}
	errs := make([]error, len(all))
	eachInParallel(len(all), func(i int) {
		errs[i] = allowedByAuthEvents(all[i], byID, nil)
	})
	return errs
}

// allowedByAuthEvents is gomatrixserverlib's checkAllowedByAuthEvents:
// an event against the auth events it names, those not in byID asked of
// missing (when set) once each, a nil entry recording a failed fetch.
// Without missing, byID is only read.
func allowedByAuthEvents(ev gomatrixserverlib.PDU, byID map[string]gomatrixserverlib.PDU, missing gomatrixserverlib.EventProvider) error {
	auth, _ := gomatrixserverlib.NewAuthEvents(nil)
	for _, id := range ev.AuthEventIDs() {
		a, ok := byID[id]
		if !ok && missing != nil {
			fetched, err := missing(ev.Version(), []string{id})
			byID[id] = nil
			if err == nil {
				for _, e := range fetched {
					byID[e.EventID()] = e
				}
			}
			a = byID[id]
		}
		if a != nil {
			if err := auth.AddEvent(a); err != nil {
				return err
			}
		}
	}
	if err := gomatrixserverlib.Allowed(ev, auth, UserIDForSender); err != nil {
		return fmt.Errorf("event with ID %q is not allowed by its auth_events: %w", ev.EventID(), err)
	}
	return nil
}

// createOfKnownVersion is PerformJoin's sanity check of the auth chain:
// it holds a create event naming a room version this library knows.
func createOfKnownVersion(chain []gomatrixserverlib.PDU) error {
	for _, ev := range chain {
		if ev.Type() == spec.MRoomCreate && ev.StateKeyEquals("") {
			var c struct {
				Version string `json:"room_version"`
			}
			if err := json.Unmarshal(ev.Content(), &c); err != nil {
				return fmt.Errorf("create event: %w", err)
			}
			if c.Version == "" {
				c.Version = "1"
			}
			if _, ok := gomatrixserverlib.RoomVersions()[gomatrixserverlib.RoomVersion(c.Version)]; !ok {
				return fmt.Errorf("m.room.create event has an unknown room version: %s", c.Version)
			}
			return nil
		}
	}
	return errors.New("the answer's auth chain has no m.room.create event")
}

// withCreatePDU adds the create event of state to an auth chain that
// lacks it (withCreateEvent for parsed events).
func withCreatePDU(chain, state []gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	isCreate := func(ev gomatrixserverlib.PDU) bool {
		return ev.Type() == spec.MRoomCreate && ev.StateKeyEquals("")
	}
	for _, ev := range chain {
		if isCreate(ev) {
			return chain
		}
	}
	for _, ev := range state {
		if isCreate(ev) {
			return append(chain[:len(chain):len(chain)], ev)
		}
	}
	return chain
}

// eachInParallel calls fn(0..n-1) over runtime.NumCPU() goroutines.
func eachInParallel(n int, fn func(i int)) {
	workers := min(runtime.NumCPU(), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	const batch = 64
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				lo := next
				next += batch
				mu.Unlock()
				if lo >= n {
					return
				}
				for i := lo; i < min(lo+batch, n); i++ {
					fn(i)
				}
			}
		})
	}
	wg.Wait()
}
