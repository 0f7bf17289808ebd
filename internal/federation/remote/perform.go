package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// Membership changes local users start in rooms this server is not in,
// or with users of other servers: the client API calls these.

// Join joins a local user to a room through one of the via servers
// (make_join, send_join, then the returned state checked and stored).
func (f *Service) Join(ctx context.Context, userID, roomID string, via []string, content map[string]any) error {
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		return mxerr.InvalidParam("Invalid user ID")
	}
	rid, err := spec.NewRoomID(roomID)
	if err != nil {
		return mxerr.InvalidParam("Invalid room ID")
	}
	servers := f.candidates(ctx, roomID, userID, via)
	if len(servers) == 0 {
		return mxerr.NotFound("No known servers to join %s through", roomID)
	}
	// A room this server holds state for (a rejoin) is joined with full
	// state: its state is replaced by the answer's, which must not lack
	// the members this server knows.
	partial := f.d.PartialStateJoins
	if _, _, err := f.d.Rooms.Extremities(ctx, roomID); err == nil {
		partial = false
	}
	// Events the resident server sends once it has the join, while this
	// server still stores the answer, are held until then (joinhold.go).
	end := f.holds.begin(roomID)
	err = f.join(ctx, servers, uid, rid, content, partial)
	for _, receive := range end(err == nil) {
		// Received even if the client stops waiting, as the join is.
		receive(context.WithoutCancel(ctx))
	}
	return err
}

// join tries the servers in turn until one lets the user join, and
// stores the join.
func (f *Service) join(ctx context.Context, servers []string, uid *spec.UserID, rid *spec.RoomID, content map[string]any, partial bool) error {
	roomID := rid.String()
	var errs []error
	for _, server := range servers {
		a, err := f.performJoin(ctx, server, uid, rid, content, partial)
		if err != nil {
			f.d.Log.Info("remote join failed", "room_id", roomID, "server", server, "err", err)
			errs = append(errs, f.remoteError(ctx, server, err))
			continue
		}
		if a.partial != nil && a.partial.omitted {
			return f.importPartialJoin(ctx, server, a.join, a.state, a.chain, a.partial.servers)
		}
		f.catchUpOnRejoin(ctx, server, a.join)
		if in, err := f.d.Rooms.ServerInRoom(ctx, roomID, f.d.ServerName); err == nil && in {
			return f.receiveJoinInRoom(ctx, a.join, a.state, a.chain)
		}
		_, err = f.d.Rooms.ImportJoin(ctx, a.join, a.state, a.chain)
		return err
	}
	return firstMatrixError(errs, "Could not join %s through any of %d servers", roomID, len(servers))
}

// candidates lists the servers to try, in order: the ones the client
// named, the inviter's, and the one in the room ID (before v12 room IDs
// name the creating server). This server is never one of them.
func (f *Service) candidates(ctx context.Context, roomID, userID string, via []string) []string {
	var out []string
	add := func(s string) {
		// A malformed name (from a room ID, say) cannot be reached:
		// trying would only turn a bad request into a 502.
		if s != "" && s != f.d.ServerName && !contains(out, s) && config.ValidateServerName(s) == nil {
			out = append(out, s)
		}
	}
	for _, s := range via {
		add(s)
	}
	if inviter, err := f.inviter(ctx, roomID, userID); err == nil {
		add(ServerOf(inviter))
	}
	add(ServerOf(roomID))
	return out
}

// inviter is the sender of a user's pending invite or knock's answer.
func (f *Service) inviter(ctx context.Context, roomID, userID string) (string, error) {
	m, nid, err := f.d.Rooms.MembershipEventOf(ctx, roomID, userID)
	if err != nil || (m != spec.Invite && m != spec.Knock) || nid == 0 {
		return "", errors.Join(err, errors.New("no invite"))
	}
	evs, err := f.d.Rooms.EventsByNID(ctx, []int64{nid})
	if err != nil || len(evs) == 0 {
		return "", errors.Join(err, errors.New("no invite"))
	}
	return evs[0].Sender(), nil
}

// Leave makes a local user leave a room this server is not in (the
// rejection of an invite, the withdrawal of a knock) through the server
// that sent the invite, with make_leave and send_leave.
func (f *Service) Leave(ctx context.Context, userID, roomID, reason string) error {
	servers := f.candidates(ctx, roomID, userID, nil)
	if len(servers) == 0 {
		return mxerr.NotFound("No known servers to leave %s through", roomID)
	}
	var errs []error
	for _, server := range servers {
		resp, err := f.d.Client.MakeLeave(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(server), roomID, userID)
		if err != nil {
			errs = append(errs, f.remoteError(ctx, server, err))
			continue
		}
		pdu, err := f.signTemplate(resp.RoomVersion, resp.LeaveEvent, userID, roomID, spec.Leave, reason)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := f.d.Client.SendLeave(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(server), pdu); err != nil {
			errs = append(errs, f.remoteError(ctx, server, err))
			continue
		}
		_, err = f.d.Rooms.ReceiveOutOfBand(ctx, pdu)
		return err
	}
	return firstMatrixError(errs, "Could not leave %s through any of %d servers", roomID, len(servers))
}

// Knock knocks on a room this server is not in, with make_knock and
// send_knock; the knock is recorded so that the user's /sync shows it.
func (f *Service) Knock(ctx context.Context, userID, roomID string, via []string, reason string) error {
	servers := f.candidates(ctx, roomID, userID, via)
	if len(servers) == 0 {
		return mxerr.NotFound("No known servers to knock on %s through", roomID)
	}
	var errs []error
	for _, server := range servers {
		resp, err := f.d.Client.MakeKnock(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(server), roomID, userID,
			rooms.Versions())
		if err != nil {
			errs = append(errs, f.remoteError(ctx, server, err))
			continue
		}
		pdu, err := f.signTemplate(resp.RoomVersion, resp.KnockEvent, userID, roomID, spec.Knock, reason)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// The answer is read into our own type: fclient's RespSendKnock
		// keeps four fields of each stripped event and so drops the full
		// create event the room's server sends (MSC4311, spec v1.16).
		var knock struct {
			KnockRoomState []clientevent.Stripped `json:"knock_room_state"`
		}
		path := "/_matrix/federation/v1/send_knock/" + url.PathEscape(roomID) + "/" + url.PathEscape(pdu.EventID())
		if err := f.signedRequest(ctx, server, http.MethodPut, path, json.RawMessage(pdu.JSON()), &knock); err != nil {
			errs = append(errs, f.remoteError(ctx, server, err))
			continue
		}
		withState, err := pdu.SetUnsigned(map[string]any{"knock_room_state": knock.KnockRoomState})
		if err != nil {
			return err
		}
		_, err = f.d.Rooms.ReceiveOutOfBand(ctx, withState)
		return err
	}
	return firstMatrixError(errs, "Could not knock on %s through any of %d servers", roomID, len(servers))
}

// signTemplate completes a make_leave or make_knock template as the
// local user's event, signed by this server.
func (f *Service) signTemplate(version gomatrixserverlib.RoomVersion, proto gomatrixserverlib.ProtoEvent, userID, roomID, membership, reason string) (gomatrixserverlib.PDU, error) {
	v, err := supportedVersion(version)
	if err != nil {
		return nil, err
	}
	proto.Type, proto.RoomID, proto.SenderID, proto.StateKey, proto.Redacts = spec.MRoomMember, roomID, userID, &userID, ""
	content := map[string]any{"membership": membership}
	if reason != "" {
		content["reason"] = reason
	}
	if err := proto.SetContent(content); err != nil {
		return nil, err
	}
	proto.Unsigned = nil
	return v.NewEventBuilderFromProtoEvent(&proto).Build(time.Now(), spec.ServerName(f.d.ServerName),
		gomatrixserverlib.KeyID(f.d.Key.ID), f.d.Key.Private)
}

// InviteCountersigner returns what the room engine calls, under the
// room's lock, to have the invitee's server countersign an invite: the
// /invite request with the room's stripped state, which the membership
// service builds before the lock. The request is ours rather than
// fclient's InviteV2Request, whose InviteStrippedState keeps four fields
// of each event: the create event goes whole (MSC4311, spec v1.16), as
// Synapse sends it, so that the invitee can check the room ID against it
// and read its origin_server_ts.
func (f *Service) InviteCountersigner(ctx context.Context, roomID, invitee string, stripped []clientevent.Stripped) (func(context.Context, gomatrixserverlib.PDU) (gomatrixserverlib.PDU, error), error) {
	server := ServerOf(invitee)
	return func(ctx context.Context, pdu gomatrixserverlib.PDU) (gomatrixserverlib.PDU, error) {
		body := inviteV2Request{Event: json.RawMessage(pdu.JSON()), RoomVersion: string(pdu.Version()), InviteRoomState: stripped}
		if body.InviteRoomState == nil {
			body.InviteRoomState = []clientevent.Stripped{}
		}
		path := "/_matrix/federation/v2/invite/" + url.PathEscape(pdu.RoomID().String()) + "/" + url.PathEscape(pdu.EventID())
		var resp struct {
			Event json.RawMessage `json:"event"`
		}
		err := f.signedRequest(ctx, server, http.MethodPut, path, body, &resp)
		if he := (gomatrix.HTTPError{}); errors.As(err, &he) && he.Code == http.StatusNotFound {
			// A server without v2 takes the v1 invite (no stripped state),
			// as fclient's SendInviteV2 falls back.
			// Its answer is [200, {"event": ...}].
			var v1 []json.RawMessage
			err = f.signedRequest(ctx, server, http.MethodPut, "/_matrix/federation/v1"+strings.TrimPrefix(path, "/_matrix/federation/v2"),
				json.RawMessage(pdu.JSON()), &v1)
			if err == nil && (len(v1) != 2 || json.Unmarshal(v1[1], &resp) != nil) {
				return nil, mxerr.Unknown("The invitee's server answered the invite with %d values", len(v1))
			}
		}
		if err != nil {
			return nil, f.remoteError(ctx, server, err)
		}
		v, _ := gomatrixserverlib.GetRoomVersion(pdu.Version())
		signed, err := rooms.ParsePDU(v, resp.Event)
		if err != nil {
			return nil, mxerr.Unknown("The invitee's server answered with an invalid event: %v", err)
		}
		if err := gomatrixserverlib.VerifyEventSignatures(ctx, signed, f.d.KeyRing, UserIDForSender); err != nil {
			return nil, mxerr.Unknown("The invitee's server did not sign the invite: %v", err)
		}
		return signed, nil
	}, nil
}

// inviteV2Request is the body of PUT /v2/invite (server-server spec
// "Inviting to a room").
type inviteV2Request struct {
	Event           json.RawMessage        `json:"event"`
	RoomVersion     string                 `json:"room_version"`
	InviteRoomState []clientevent.Stripped `json:"invite_room_state"`
}

// ResolveAlias asks the alias's server which room it names and which
// servers are in it.
func (f *Service) ResolveAlias(ctx context.Context, alias string) (string, []string, error) {
	resp, err := f.d.Client.LookupRoomAlias(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(ServerOf(alias)), alias)
	if err != nil {
		return "", nil, f.remoteError(ctx, ServerOf(alias), err)
	}
	servers := make([]string, 0, len(resp.Servers))
	for _, s := range resp.Servers {
		servers = append(servers, string(s))
	}
	return resp.RoomID, servers, nil
}

// remoteError turns another server's Matrix error into ours (so that a
// client sees M_FORBIDDEN when the remote server refused), and anything
// else into a 502 M_UNKNOWN that names the server and nothing else: the
// dial error (address, port, refused or timed out, the resolver) would
// let a client map the networks this server reaches, so it is logged.
func (f *Service) remoteError(ctx context.Context, server string, err error) error {
	var he gomatrix.HTTPError
	if errors.As(err, &he) {
		var body struct {
			Code    string `json:"errcode"`
			Message string `json:"error"`
		}
		if json.Unmarshal(he.Contents, &body) == nil && body.Code != "" {
			status := he.Code
			if status < 400 || status > 499 {
				status = http.StatusBadGateway
			}
			return &mxerr.Error{Status: status, Code: body.Code, Message: body.Message}
		}
	}
	f.d.Log.DebugContext(ctx, "remote server failed", "server", server, "err", err)
	return &mxerr.Error{Status: http.StatusBadGateway, Code: "M_UNKNOWN", Message: fmt.Sprintf("Could not reach %s", server)}
}

// firstMatrixError prefers a remote server's refusal (a 4xx Matrix
// error) over connection failures when every server failed, and a
// refusal over a server's "ask another server" (the restricted-join
// M_UNABLE codes, or 404 from a server not in the room), which says
// nothing of whether the user may join; of those, the M_UNABLE codes.
func firstMatrixError(errs []error, format string, args ...any) error {
	rank := func(me *mxerr.Error) int {
		switch {
		case me.Code == rooms.CodeUnableToAuthorise || me.Code == rooms.CodeUnableToGrant:
			return 1
		case me.Status == http.StatusNotFound:
			return 2
		}
		return 0
	}
	for want := range 3 {
		for _, err := range errs {
			if me, ok := mxerr.As(err); ok && me.Status < 500 && rank(me) == want {
				return me
			}
		}
	}
	if len(errs) > 0 {
		if me, ok := mxerr.As(errs[0]); ok {
			return me
		}
	}
	return &mxerr.Error{Status: http.StatusBadGateway, Code: "M_UNKNOWN", Message: fmt.Sprintf(format, args...)}
}

// ServerOf is the server part of a user ID, alias or pre-v12 room ID.
func ServerOf(id string) string {
	for i := 0; i < len(id); i++ {
		if id[i] == ':' {
			return id[i+1:]
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// supportedVersion is the implementation of a room version another
// server's answer names, if this server supports it.
func supportedVersion(v gomatrixserverlib.RoomVersion) (gomatrixserverlib.IRoomVersion, error) {
	impl, ok := rooms.Version(v)
	if !ok {
		return nil, mxerr.Unknown("The room's version %q is not supported", v)
	}
	return impl, nil
}
