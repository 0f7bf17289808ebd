package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// The membership handshakes other servers start: make_join/send_join,
// make_leave/send_leave, make_knock/send_knock and invite (server-server
// spec "Joining Rooms", "Leaving Rooms", "Knocking", "Inviting").

func (a *API) registerMembership(rt *httpapi.Router) {
	for _, m := range []struct{ make, send, membership string }{
		{"/_matrix/federation/v1/make_join/{roomId}/{userId}", "/_matrix/federation/v2/send_join/{roomId}/{eventId}", spec.Join},
		{"/_matrix/federation/v1/make_leave/{roomId}/{userId}", "/_matrix/federation/v2/send_leave/{roomId}/{eventId}", spec.Leave},
		{"/_matrix/federation/v1/make_knock/{roomId}/{userId}", "/_matrix/federation/v1/send_knock/{roomId}/{eventId}", spec.Knock},
	} {
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: m.make, Handler: a.signed(a.makeMembership(m.membership))})
		rt.Add(httpapi.Route{Method: http.MethodPut, Path: m.send, Handler: a.signed(a.sendMembership(m.membership, false))})
	}
	// The v1 forms answer [200, body]; old servers still use them.
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: "/_matrix/federation/v1/send_join/{roomId}/{eventId}", Handler: a.signed(a.sendMembership(spec.Join, true))})
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: "/_matrix/federation/v1/send_leave/{roomId}/{eventId}", Handler: a.signed(a.sendMembership(spec.Leave, true))})
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: "/_matrix/federation/v2/invite/{roomId}/{eventId}", Handler: a.signed(a.invite)})
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: "/_matrix/federation/v1/invite/{roomId}/{eventId}", Handler: a.signed(a.inviteV1)})
}

// residentRoom checks that this server can speak for a room to origin:
// the room is known, this server is in it with its full state, and its
// ACL admits origin.
func (a *API) residentRoom(ctx context.Context, roomID, origin string) (gomatrixserverlib.IRoomVersion, error) {
	v, err := a.roomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if in, err := a.d.Rooms.ServerInRoom(ctx, roomID, a.d.ServerName); err != nil {
		return nil, err
	} else if !in {
		return nil, mxerr.NotFound("This server is not in room %s", roomID)
	}
	// A room joined with partial state has no full state to check a
	// membership against or to hand a joining server: Synapse refuses
	// the same way ("this server is not fully joined"), and the asking
	// server tries another.
	if partial, _, err := a.d.Rooms.PartialState(ctx, roomID); err != nil {
		return nil, err
	} else if partial {
		return nil, mxerr.NotFound("This server is not fully joined to room %s yet", roomID)
	}
	return v, a.checkACL(ctx, roomID, origin)
}

// makeMembership answers make_join, make_leave and make_knock with the
// event template the user's server signs.
func (a *API) makeMembership(membership string) func(r *Request) (any, error) {
	return func(r *Request) (any, error) {
		roomID, userID := r.PathValue("roomId"), r.PathValue("userId")
		uid, err := spec.NewUserID(userID, true)
		if err != nil || string(uid.Domain()) != r.Origin {
			return nil, mxerr.Forbidden("User %s does not belong to server %s", userID, r.Origin)
		}
		v, err := a.residentRoom(r.Context(), roomID, r.Origin)
		if err != nil {
			return nil, err
		}
		if membership != spec.Leave {
			// The joining server lists the versions it supports; without a
			// list it is taken to know only version 1 (spec).
			vers := r.URL.Query()["ver"]
			if len(vers) == 0 {
				vers = []string{"1"}
			}
			if !slices.Contains(vers, string(v.Version())) {
				return nil, (&mxerr.Error{Status: http.StatusBadRequest, Code: "M_INCOMPATIBLE_ROOM_VERSION",
					Message: "Your server does not support this room's version"}).With("room_version", string(v.Version()))
			}
		}
		t, err := a.d.Rooms.MembershipTemplate(r.Context(), roomID, userID, membership)
		if err != nil {
			return nil, err
		}
		return map[string]any{"room_version": t.Version, "event": t.Event}, nil
	}
}

// sendMembership accepts the signed join, leave or knock and answers
// with what the joining server needs: the room state and auth chain for
// a join, the stripped state for a knock.
func (a *API) sendMembership(kind string, v1 bool) func(r *Request) (any, error) {
	return func(r *Request) (any, error) {
		ctx := r.Context()
		roomID := r.PathValue("roomId")
		v, err := a.residentRoom(ctx, roomID, r.Origin)
		if err != nil {
			return nil, err
		}
		pdu, err := a.membershipEvent(ctx, v, r, kind)
		if err != nil {
			return nil, err
		}
		if kind == spec.Join {
			if err := a.d.Rooms.CheckRestrictedJoin(ctx, pdu); err != nil {
				return nil, err
			}
			pdu = a.countersignJoin(pdu)
		}
		if err := a.verifySignatures(ctx, pdu); err != nil {
			return nil, err
		}
		// The other servers in the room hear of the membership from us.
		ev, err := a.d.Rooms.ReceiveOnBehalf(ctx, pdu, r.Origin)
		var missing *rooms.ErrMissingEvents
		if errors.As(err, &missing) {
			return nil, mxerr.BadJSON("The event refers to events this server does not have")
		}
		if err != nil {
			return nil, err
		}
		if ev.Status != roommodel.Accepted {
			return nil, mxerr.Forbidden("The %s is not allowed by the room's state", kind)
		}
		var body any = map[string]any{}
		switch kind {
		case spec.Join:
			omit := r.URL.Query().Get("omit_members") == "true"
			if body, err = a.sendJoinResponse(ctx, ev, omit); err != nil {
				return nil, err
			}
		case spec.Knock:
			state, err := a.d.Rooms.StateBefore(ctx, ev)
			if err != nil {
				return nil, err
			}
			stripped, err := membership.FederationStrippedState(ctx, a.d.Rooms, state, "")
			if err != nil {
				return nil, err
			}
			body = map[string]any{"knock_room_state": stripped}
		}
		if v1 {
			return []any{http.StatusOK, body}, nil
		}
		return body, nil
	}
}

// membershipEvent parses and checks a membership event sent by origin:
// it is the event the path names, the membership asked for, about its
// own sender, who belongs to origin.
func (a *API) membershipEvent(ctx context.Context, v gomatrixserverlib.IRoomVersion, r *Request, membership string) (gomatrixserverlib.PDU, error) {
	pdu, err := rooms.ParsePDU(v, r.Content)
	if err != nil {
		return nil, mxerr.BadJSON("Invalid event: %v", err)
	}
	if pdu.EventID() != r.PathValue("eventId") || pdu.RoomID().String() != r.PathValue("roomId") {
		return nil, mxerr.BadJSON("The event ID or room ID does not match the path")
	}
	m, _ := pdu.Membership()
	if pdu.Type() != spec.MRoomMember || m != membership || pdu.StateKey() == nil || *pdu.StateKey() != string(pdu.SenderID()) {
		return nil, mxerr.BadJSON("Not a %s event of its sender", membership)
	}
	sender, err := spec.NewUserID(string(pdu.SenderID()), true)
	if err != nil || string(sender.Domain()) != r.Origin {
		return nil, mxerr.Forbidden("The sender does not belong to server %s", r.Origin)
	}
	return pdu, nil
}

// verifySignatures checks an event's signatures: its sender's server's
// and, for invites and restricted joins, this server's own, added first.
func (a *API) verifySignatures(ctx context.Context, pdu gomatrixserverlib.PDU) error {
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, pdu, a.d.KeyRing, remote.UserIDForSender); err != nil {
		return mxerr.Forbidden("Invalid event signature: %v", err)
	}
	return nil
}

// maxInviteRoomState bounds the entries of a received invite_room_state
// checked one by one (each may need another server's keys); a room's
// prejoin state is a handful of events.
const maxInviteRoomState = 50

// checkInviteRoomState applies the server-server spec's validation of an
// invite's stripped state (v1.16, MSC4311), which servers SHOULD apply
// from room version 12 (whose room IDs name no server, so the create
// event is the only way to tell where a room comes from): the create
// event is there, and every entry is an event of the room's version, of
// this room, correctly signed; otherwise 400 M_INVALID_PARAM, the code
// the spec suggests.
func (a *API) checkInviteRoomState(ctx context.Context, v gomatrixserverlib.IRoomVersion, roomID string, state []json.RawMessage) error {
	if len(state) > maxInviteRoomState {
		return mxerr.InvalidParam("invite_room_state has more than %d events", maxInviteRoomState)
	}
	sawCreate := false
	for _, raw := range state {
		ev, err := rooms.ParsePDU(v, raw)
		if err != nil {
			return mxerr.InvalidParam("invite_room_state holds an entry that is not an event of room version %s", v.Version())
		}
		if ev.RoomID().String() != roomID {
			return mxerr.InvalidParam("invite_room_state holds an event of another room")
		}
		if err := a.verifySignatures(ctx, ev); err != nil {
			return mxerr.InvalidParam("invite_room_state holds an event with an invalid signature")
		}
		if ev.Type() == spec.MRoomCreate && ev.StateKeyEquals("") {
			sawCreate = true
		}
	}
	if !sawCreate {
		return mxerr.InvalidParam("invite_room_state lacks the room's m.room.create event")
	}
	return nil
}

// countersignJoin adds this server's signature to a restricted join one
// of its users authorised (join_authorised_via_users_server), which the
// auth rules of versions 8 and later require.
func (a *API) countersignJoin(pdu gomatrixserverlib.PDU) gomatrixserverlib.PDU {
	var c struct {
		Via string `json:"join_authorised_via_users_server"`
	}
	if json.Unmarshal(pdu.Content(), &c) != nil || c.Via == "" {
		return pdu
	}
	if uid, err := spec.NewUserID(c.Via, true); err != nil || string(uid.Domain()) != a.d.ServerName {
		return pdu
	}
	return pdu.Sign(a.d.ServerName, gomatrixserverlib.KeyID(a.d.Key.ID), a.d.Key.Private)
}

// sendJoinResponse is the state before the join and its auth chain.
// With omit_members (MSC3706, spec v1.6 partial state) membership events
// are left out of the state but for those the joining server needs
// (keptMembers), the auth chain covers only the state returned, without
// the events the state already holds (spec: "may be omitted"), and the
// servers in the room are listed instead.
func (a *API) sendJoinResponse(ctx context.Context, join *rooms.Event, omitMembers bool) (any, error) {
	state, err := a.d.Rooms.StateBefore(ctx, join)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	if omitMembers {
		if keep, err = a.keptMembers(ctx, state, join); err != nil {
			return nil, err
		}
	}
	nids := make([]int64, 0, len(state))
	for k, n := range state {
		if !omitMembers || k.Type != spec.MRoomMember || keep[k.StateKey] {
			nids = append(nids, n)
		}
	}
	// The events are passed on as stored, not parsed (issue 14): at
	// tens of thousands of state events parsing them was most of a join.
	evs, err := a.d.Rooms.EventJSONByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	var authIDs []string
	stateJSON := make([]json.RawMessage, 0, len(evs))
	inState := make(map[string]bool, len(evs))
	for _, ev := range evs {
		stateJSON = append(stateJSON, ev.JSON)
		inState[ev.ID] = true
		authIDs = append(authIDs, ev.AuthEventIDs()...)
	}
	chain, err := a.d.Rooms.AuthChainJSON(ctx, append(authIDs, join.AuthEventIDs()...))
	if err != nil {
		return nil, err
	}
	chainJSON := make([]json.RawMessage, 0, len(chain))
	for _, ev := range chain {
		if !omitMembers || !inState[ev.ID] {
			chainJSON = append(chainJSON, ev.JSON)
		}
	}
	var servers []string
	if omitMembers {
		if servers, err = a.d.Rooms.CurrentServers(ctx, join.RoomID().String()); err != nil {
			return nil, err
		}
	}
	return sendJoinAnswer(a.d.ServerName, join.JSON(), stateJSON, chainJSON, omitMembers, servers)
}

// sendJoinAnswer encodes a send_join answer by hand: its events are the
// stored JSON, valid and compact, which encoding/json would only check
// and copy again, byte by byte (issue 14).
func sendJoinAnswer(origin string, join json.RawMessage, state, chain []json.RawMessage, omitMembers bool, servers []string) (httpapi.RawJSON, error) {
	b := newRawAnswer(len(join)+len(origin)+128, rawMessage, state, chain)
	b.WriteString(`{"auth_chain":`)
	writeList(b, chain, rawMessage)
	b.WriteString(`,"event":`)
	b.Write(join)
	if omitMembers {
		rawServers, err := json.Marshal(servers)
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"members_omitted":true,"servers_in_room":`)
		b.Write(rawServers)
	}
	rawOrigin, err := json.Marshal(origin)
	if err != nil {
		return nil, err
	}
	b.WriteString(`,"origin":`)
	b.Write(rawOrigin)
	b.WriteString(`,"state":`)
	writeList(b, state, rawMessage)
	b.WriteByte('}')
	return b.Bytes(), nil
}

func rawMessage(m json.RawMessage) []byte { return m }

// keptMembers are the users whose membership a send_join with
// omit_members still returns: the joiner's own (the state the join is
// checked against, as the joining server checks it), the user who
// authorised a restricted join (join_authorised_via_users_server: the
// auth rules of versions 8 and later need that user's membership), and,
// when the room has neither m.room.name nor m.room.canonical_alias, the
// heroes of its summary, so that the joining server can name the room
// (spec, send_join v2 omit_members).
func (a *API) keptMembers(ctx context.Context, state rooms.StateMap, join *rooms.Event) (map[string]bool, error) {
	keep := map[string]bool{string(join.SenderID()): true}
	var c struct {
		Via string `json:"join_authorised_via_users_server"`
	}
	if json.Unmarshal(join.Content(), &c) == nil && c.Via != "" {
		keep[c.Via] = true
	}
	_, named := state[roommodel.StateKey{Type: spec.MRoomName}]
	_, aliased := state[roommodel.StateKey{Type: spec.MRoomCanonicalAlias}]
	if named || aliased {
		return keep, nil
	}
	// Membership is read from the state before the join, not from the
	// current state, which the store indexes.
	members, err := a.d.Rooms.Memberships(ctx, state)
	if err != nil {
		return nil, err
	}
	for _, h := range rooms.Heroes(members, string(join.SenderID())) {
		keep[h] = true
	}
	return keep, nil
}

type inviteRequest struct {
	RoomVersion     string            `json:"room_version"`
	Event           json.RawMessage   `json:"event"`
	InviteRoomState []json.RawMessage `json:"invite_room_state"`
}

// invite countersigns an invite of one of this server's users and
// records it, so that the user sees it in /sync before anyone here is in
// the room.
func (a *API) invite(r *Request) (any, error) {
	var req inviteRequest
	if err := httpapi.DecodeObject(r.Content, &req); err != nil {
		return nil, err
	}
	return a.handleInvite(r, req)
}

// inviteV1 is the deprecated form: the body is the event, its room
// version one this server knows, the stripped state in its unsigned
// section, and the answer [200, {"event": ...}]. gomatrixserverlib's
// client falls back to it when v2 answers 404.
func (a *API) inviteV1(r *Request) (any, error) {
	var ev struct {
		RoomID   string `json:"room_id"`
		Unsigned struct {
			InviteRoomState []json.RawMessage `json:"invite_room_state"`
		} `json:"unsigned"`
	}
	if err := httpapi.DecodeObject(r.Content, &ev); err != nil {
		return nil, err
	}
	v, err := a.roomVersion(r.Context(), ev.RoomID)
	if err != nil {
		// Only versions 1 and 2 predate /v2/invite.
		v = gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV1)
	}
	resp, err := a.handleInvite(r, inviteRequest{RoomVersion: string(v.Version()), Event: r.Content, InviteRoomState: ev.Unsigned.InviteRoomState})
	if err != nil {
		return nil, err
	}
	return []any{http.StatusOK, resp}, nil
}

// InviteChecker decides whether a local user accepts an invite
// (membership.InviteRules).
type InviteChecker interface {
	Check(ctx context.Context, invitee, inviter string) error
}

func (a *API) handleInvite(r *Request, req inviteRequest) (any, error) {
	ctx := r.Context()
	// The invitee is checked before the event is parsed: a 404 from v2
	// makes the inviting server retry with v1, whose version guess would
	// otherwise turn "no such user" into a parse error.
	var target struct {
		StateKey string `json:"state_key"`
	}
	if err := json.Unmarshal(req.Event, &target); err != nil {
		return nil, mxerr.BadJSON("Invalid event")
	}
	if uid, err := spec.NewUserID(target.StateKey, true); err == nil && string(uid.Domain()) == a.d.ServerName {
		if ok, err := a.d.Store.UserExists(ctx, uid.Local()); err != nil {
			return nil, err
		} else if !ok && (a.d.AppServiceInvitees == nil || !a.d.AppServiceInvitees.InviteeKnown(ctx, uid.String())) {
			return nil, mxerr.NotFound("Unknown user %s", uid.String())
		}
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(req.RoomVersion))
	if err != nil {
		return nil, (&mxerr.Error{Status: http.StatusBadRequest, Code: "M_INCOMPATIBLE_ROOM_VERSION",
			Message: "Unsupported room version"}).With("room_version", req.RoomVersion)
	}
	pdu, err := rooms.ParsePDU(v, req.Event)
	if err != nil {
		return nil, mxerr.BadJSON("Invalid event: %v", err)
	}
	if pdu.EventID() != r.PathValue("eventId") || pdu.RoomID().String() != r.PathValue("roomId") {
		return nil, mxerr.BadJSON("The event ID or room ID does not match the path")
	}
	if m, _ := pdu.Membership(); pdu.Type() != spec.MRoomMember || m != spec.Invite || pdu.StateKey() == nil {
		return nil, mxerr.BadJSON("Not an invite")
	}
	if invitee, err := spec.NewUserID(*pdu.StateKey(), true); err != nil || string(invitee.Domain()) != a.d.ServerName {
		return nil, mxerr.BadJSON("The invitee is not a user of this server")
	}
	if _, blocked, err := a.d.Store.RoomBlocked(ctx, pdu.RoomID().String()); err != nil {
		return nil, err
	} else if blocked {
		return nil, &mxerr.Error{Status: http.StatusForbidden, Code: "M_UNKNOWN", Message: "This room has been blocked on this server"}
	}
	sender, err := spec.NewUserID(string(pdu.SenderID()), true)
	if err != nil || string(sender.Domain()) != r.Origin {
		return nil, mxerr.Forbidden("The inviter does not belong to server %s", r.Origin)
	}
	// The invitee's invite permission (spec v1.18, MSC4155): a blocked
	// invite is 403 M_INVITE_BLOCKED, an ignored one is accepted and
	// kept from the invitee's /sync.
	if a.d.Invites != nil {
		if err := a.d.Invites.Check(ctx, *pdu.StateKey(), sender.String()); err != nil {
			return nil, err
		}
	}
	signed := pdu.Sign(a.d.ServerName, gomatrixserverlib.KeyID(a.d.Key.ID), a.d.Key.Private)
	if err := a.verifySignatures(ctx, signed); err != nil {
		return nil, err
	}
	// After the signatures: only a genuine invite is recorded.
	if err := a.refuseListedInvite(ctx, pdu); err != nil {
		return nil, err
	}
	if v.DomainlessRoomIDs() {
		if err := a.checkInviteRoomState(ctx, v, pdu.RoomID().String(), req.InviteRoomState); err != nil {
			return nil, err
		}
	}
	if _, err := a.d.Rooms.RoomVersion(ctx, pdu.RoomID().String()); err == nil {
		if err := a.checkACL(ctx, pdu.RoomID().String(), r.Origin); err != nil {
			return nil, err
		}
	}
	withState, err := signed.SetUnsigned(map[string]any{"invite_room_state": req.InviteRoomState})
	if err != nil {
		return nil, err
	}
	if _, err := a.d.Rooms.ReceiveOutOfBand(ctx, withState); err != nil {
		return nil, err
	}
	return map[string]any{"event": json.RawMessage(signed.JSON())}, nil
}
