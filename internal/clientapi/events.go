package clientapi

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

func (a *API) registerRoomEvents(rt *httpapi.Router) {
	// Guests may read a room's state, events and members and send any
	// event, state included (spec "Guest Access", client behaviour); not
	// redact, nor list joined members.
	noGuest := map[string]bool{"/rooms/{roomId}/redact/{eventId}/{txnId}": true, "/rooms/{roomId}/joined_members": true}
	auth := func(method, path string, h httpapi.Handler, limit string) {
		legacy(rt, httpapi.Route{Method: method, Path: path, Auth: httpapi.AuthRequired, AllowGuest: !noGuest[path], RateLimit: limit, Handler: h})
	}
	auth(http.MethodPut, "/rooms/{roomId}/send/{eventType}/{txnId}", a.send, LimitMessage)
	// A suspended account sends no state (spec "Account suspension");
	// /send decides by event type, /redact by target.
	for _, p := range []string{"/rooms/{roomId}/state/{eventType}", "/rooms/{roomId}/state/{eventType}/{stateKey...}"} {
		legacy(rt, httpapi.Route{Method: http.MethodPut, Path: p, Auth: httpapi.AuthRequired, AllowGuest: true, RefuseSuspended: true, RateLimit: LimitMessage, Handler: a.putState})
	}
	auth(http.MethodGet, "/rooms/{roomId}/state/{eventType}", a.getStateEvent, "")
	auth(http.MethodGet, "/rooms/{roomId}/state/{eventType}/{stateKey...}", a.getStateEvent, "")
	auth(http.MethodGet, "/rooms/{roomId}/state", a.getState, "")
	auth(http.MethodGet, "/rooms/{roomId}/event/{eventId}", a.getEvent, "")
	auth(http.MethodPut, "/rooms/{roomId}/redact/{eventId}/{txnId}", a.redact, LimitMessage)
	auth(http.MethodGet, "/rooms/{roomId}/members", a.members, "")
	auth(http.MethodGet, "/rooms/{roomId}/joined_members", a.joinedMembers, "")
	a.registerUserRedaction(rt)
}

func (a *API) viewer(c *httpapi.Caller) clientevent.Viewer {
	return clientevent.Viewer{Localpart: c.Localpart, DeviceID: c.DeviceID}
}

func (a *API) send(r *http.Request, c *httpapi.Caller) (any, error) {
	// The body is checked to be a JSON object and used as it is: decoding
	// and re-encoding it would only cost time on the busiest endpoint.
	var content json.RawMessage
	if err := httpapi.ReadJSON(r, &content); err != nil {
		return nil, err
	}
	roomID, typ := r.PathValue("roomId"), r.PathValue("eventType")
	if d, ok, err := a.delayOf(r); err != nil || ok {
		if err != nil {
			return nil, err
		}
		return a.sendDelayed(r, c, roomID, typ, nil, content, d)
	}
	ts, err := bridgedTS(r, c)
	if err != nil {
		return nil, err
	}
	txn := &rooms.Txn{Localpart: c.Localpart, Device: c.DeviceID, Scope: "send/" + typ, ID: r.PathValue("txnId")}
	var ev *rooms.Event
	if typ == spec.MRoomRedaction {
		// Spec v1.18 (MSC4169): a redaction sent here names its target in
		// content.redacts and is checked as /redact checks it; its
		// transaction IDs stay those of /send.
		var target struct {
			Redacts *string `json:"redacts"`
		}
		if json.Unmarshal(content, &target) != nil || target.Redacts == nil {
			return nil, mxerr.BadJSON("content.redacts must be the ID of the event to redact")
		}
		ev, err = a.rooms.Redact(r.Context(), rooms.RedactRequest{RoomID: roomID, Sender: c.UserID, SenderSuspended: c.Suspended,
			Target: *target.Redacts, Content: content, Txn: txn})
	} else if c.Suspended {
		// Spec "Account suspension": no messages; redactions are
		// decided above.
		return nil, mxerr.UserSuspended()
	} else if c.ShadowBanned {
		return shadowBanned(), nil
	} else {
		ev, err = a.rooms.Send(r.Context(), rooms.SendRequest{RoomID: roomID, Sender: c.UserID, Type: typ, Content: content, Txn: txn, OriginTS: ts})
	}
	if err != nil {
		return nil, err
	}
	if a.presence != nil && typ == "m.room.message" {
		// Sending a message counts as activity (spec "Last active ago");
		// other event types (reactions, bots' custom events) do not,
		// as in Synapse (message.py bumps only for m.room.message): each
		// bump of an offline user wakes the long-polls of their roommates.
		// Presence is best effort and never fails a send.
		_ = a.presence.Activity(r.Context(), c.UserID)
	}
	return map[string]string{"event_id": ev.EventID()}, nil
}

func (a *API) putState(r *http.Request, c *httpapi.Caller) (any, error) {
	var content map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &content); err != nil {
		return nil, err
	}
	roomID, typ, key := r.PathValue("roomId"), r.PathValue("eventType"), r.PathValue("stateKey")
	ts, err := bridgedTS(r, c)
	if err != nil {
		return nil, err
	}
	if c.ShadowBanned {
		return shadowBanned(), nil
	}
	if typ == "m.room.canonical_alias" {
		if err := a.aliases.CheckCanonical(r.Context(), roomID, content); err != nil {
			return nil, err
		}
	}
	if typ == spec.MRoomMember {
		// An invite sent as state meets the invitee's invite permission
		// as /invite does (spec v1.18 "Invite permission").
		var m string
		if json.Unmarshal(content["membership"], &m) == nil && m == spec.Invite {
			if err := a.membership.CheckInvite(r.Context(), c.UserID, key); err != nil {
				return nil, err
			}
		}
	}
	raw, _ := json.Marshal(content)
	if d, ok, err := a.delayOf(r); err != nil || ok {
		if err != nil {
			return nil, err
		}
		return a.sendDelayed(r, c, roomID, typ, &key, raw, d)
	}
	ev, err := a.rooms.SetStateAt(r.Context(), roomID, c.UserID, typ, key, raw, ts)
	if err != nil {
		return nil, err
	}
	return map[string]string{"event_id": ev.EventID()}, nil
}

func (a *API) getStateEvent(r *http.Request, c *httpapi.Caller) (any, error) {
	// A partial state would answer "not found" for a member this server
	// has not heard of yet: wait for the full state, as Synapse's
	// get_room_data does (its state reads await the full state).
	a.awaitFullState(r, r.PathValue("roomId"))
	ra, err := a.rooms.ReadAccess(r.Context(), r.PathValue("roomId"), c.UserID)
	if err != nil {
		return nil, err
	}
	state := ra.State
	ev, err := a.rooms.StateEvent(r.Context(), state, r.PathValue("eventType"), r.PathValue("stateKey"))
	if err != nil {
		return nil, err
	}
	if ev == nil {
		return nil, mxerr.NotFound("Event not found")
	}
	if r.URL.Query().Get("format") == "event" {
		out, err := a.render.Render(r.Context(), []*rooms.Event{ev}, a.viewer(c), c.UserID, false)
		if err != nil {
			return nil, err
		}
		return out[0], nil
	}
	return json.RawMessage(ev.Content()), nil
}

func (a *API) getState(r *http.Request, c *httpapi.Caller) (any, error) {
	// The whole state, not the few members a partial state knows (see
	// getStateEvent).
	a.awaitFullState(r, r.PathValue("roomId"))
	ra, err := a.rooms.ReadAccess(r.Context(), r.PathValue("roomId"), c.UserID)
	if err != nil {
		return nil, err
	}
	state := ra.State
	evs, err := a.stateList(r.Context(), state, func(roommodel.StateKey) bool { return true })
	if err != nil {
		return nil, err
	}
	return a.render.RenderState(r.Context(), evs, a.viewer(c), c.UserID, false)
}

// stateList loads the events of the keys of state that keep accepts, in
// a stable order.
func (a *API) stateList(ctx context.Context, state rooms.StateMap, keep func(roommodel.StateKey) bool) ([]*rooms.Event, error) {
	var keys []roommodel.StateKey
	for k := range state {
		if keep(k) {
			keys = append(keys, k)
		}
	}
	m, err := a.rooms.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	evs := make([]*rooms.Event, 0, len(m))
	for _, ev := range m {
		evs = append(evs, ev)
	}
	sortByStream(evs)
	return evs, nil
}

func (a *API) getEvent(r *http.Request, c *httpapi.Caller) (any, error) {
	ev, err := a.rooms.VisibleEvent(r.Context(), r.PathValue("roomId"), r.PathValue("eventId"), c.UserID)
	if err != nil {
		return nil, err
	}
	out, err := a.render.Render(r.Context(), []*rooms.Event{ev}, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

func (a *API) redact(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		Reason string `json:"reason,omitempty"`
	}
	if err := httpapi.ReadOptionalJSON(r, &body); err != nil {
		return nil, err
	}
	content := map[string]any{}
	if body.Reason != "" {
		content["reason"] = body.Reason
	}
	ev, err := a.rooms.Redact(r.Context(), rooms.RedactRequest{
		RoomID: r.PathValue("roomId"), Sender: c.UserID, SenderSuspended: c.Suspended, Target: r.PathValue("eventId"), Content: content,
		Txn: &rooms.Txn{Localpart: c.Localpart, Device: c.DeviceID, Scope: "redact/" + r.PathValue("eventId"), ID: r.PathValue("txnId")},
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"event_id": ev.EventID()}, nil
}

func (a *API) members(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID := r.PathValue("roomId")
	a.awaitFullState(r, roomID)
	ra, err := a.rooms.ReadAccess(r.Context(), roomID, c.UserID)
	if err != nil {
		return nil, err
	}
	state, current := ra.State, ra.Current
	q := r.URL.Query()
	if at := q.Get("at"); at != "" {
		tok, err := clientsync.ParseToken(at)
		if err != nil {
			return nil, err
		}
		// Never show more than the user may read: the earlier of the
		// token's position and the readable state (a former member's
		// state ends with their leave).
		pos := tok.Events
		if !current {
			own, err := a.rooms.StateEvent(r.Context(), state, spec.MRoomMember, c.UserID)
			if err != nil {
				return nil, err
			}
			if own != nil {
				pos = min(pos, own.StreamPos)
			}
		}
		at, ok, err := a.rooms.StateAtPos(r.Context(), roomID, pos)
		if err != nil {
			return nil, err
		}
		if ok {
			state = at
		}
	}
	want, notWant := q.Get("membership"), q.Get("not_membership")
	evs, err := a.stateList(r.Context(), state, func(k roommodel.StateKey) bool { return k.Type == spec.MRoomMember })
	if err != nil {
		return nil, err
	}
	kept := evs[:0]
	for _, ev := range evs {
		m, _ := ev.Membership()
		if (want == "" || m == want) && (notWant == "" || m != notWant) {
			kept = append(kept, ev)
		}
	}
	chunk, err := a.render.RenderState(r.Context(), kept, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{"chunk": chunk}, nil
}

func (a *API) joinedMembers(r *http.Request, c *httpapi.Caller) (any, error) {
	a.awaitFullState(r, r.PathValue("roomId"))
	ra, err := a.rooms.ReadAccess(r.Context(), r.PathValue("roomId"), c.UserID)
	if err != nil {
		return nil, err
	}
	state, current := ra.State, ra.Current
	if !current {
		return nil, mxerr.Forbidden("You are not in this room")
	}
	evs, err := a.stateList(r.Context(), state, func(k roommodel.StateKey) bool { return k.Type == spec.MRoomMember })
	if err != nil {
		return nil, err
	}
	joined := map[string]any{}
	for _, ev := range evs {
		if m, _ := ev.Membership(); m != spec.Join {
			continue
		}
		var p struct {
			DisplayName *string `json:"displayname"`
			AvatarURL   *string `json:"avatar_url"`
		}
		_ = json.Unmarshal(ev.Content(), &p)
		joined[*ev.StateKey()] = map[string]*string{"display_name": p.DisplayName, "avatar_url": p.AvatarURL}
	}
	return map[string]any{"joined": joined}, nil
}

// fullStateWait bounds how long a state read (member lists, /state)
// waits for a partial-state
// room's full state before answering with the members known.
const fullStateWait = time.Minute

// awaitFullState holds a state read until the room's state is complete
// (rooms.AwaitFullState), at most fullStateWait: a resync that keeps
// failing leaves the client with what is known rather than no answer.
func (a *API) awaitFullState(r *http.Request, roomID string) {
	ctx, cancel := context.WithTimeout(r.Context(), fullStateWait)
	defer cancel()
	_ = a.rooms.AwaitFullState(ctx, roomID)
}

// sortByStream orders events as they were stored.
func sortByStream(evs []*rooms.Event) {
	sort.Slice(evs, func(i, j int) bool { return evs[i].NID < evs[j].NID })
}
