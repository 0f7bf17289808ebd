package clientapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/aliases"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

func (a *API) registerRooms(rt *httpapi.Router) {
	auth := func(method, path string, h httpapi.Handler) {
		legacy(rt, httpapi.Route{Method: method, Path: path, Auth: httpapi.AuthRequired, Handler: h})
	}
	// Guests may join (rooms that allow them) and leave (spec "Guest
	// Access"); Synapse lets them join by alias too.
	guest := func(method, path string, h httpapi.Handler) {
		legacy(rt, httpapi.Route{Method: method, Path: path, Auth: httpapi.AuthRequired, AllowGuest: true, Handler: h})
	}
	// A suspended account may leave but not join, knock or invite (spec
	// "Account suspension"), nor create a room, which sends events as
	// sending messages would.
	notSuspended := func(method, path string, guests bool, h httpapi.Handler) {
		legacy(rt, httpapi.Route{Method: method, Path: path, Auth: httpapi.AuthRequired, AllowGuest: guests, RefuseSuspended: true, Handler: h})
	}
	notSuspended(http.MethodPost, "/createRoom", false, a.createRoom)
	notSuspended(http.MethodPost, "/join/{roomIdOrAlias}", true, a.joinByIDOrAlias)
	notSuspended(http.MethodPost, "/rooms/{roomId}/join", true, a.joinByID)
	notSuspended(http.MethodPost, "/knock/{roomIdOrAlias}", false, a.knock)
	guest(http.MethodPost, "/rooms/{roomId}/leave", a.leave)
	auth(http.MethodPost, "/rooms/{roomId}/forget", a.forget)
	notSuspended(http.MethodPost, "/rooms/{roomId}/invite", false, a.memberAction(spec.Invite))
	auth(http.MethodPost, "/rooms/{roomId}/kick", a.memberAction(spec.Leave))
	auth(http.MethodPost, "/rooms/{roomId}/ban", a.memberAction(spec.Ban))
	auth(http.MethodPost, "/rooms/{roomId}/unban", a.unban)
	auth(http.MethodGet, "/joined_rooms", a.joinedRooms)
}

type createRoomRequest struct {
	Visibility                string                     `json:"visibility"`
	RoomAliasName             string                     `json:"room_alias_name"`
	Name                      *string                    `json:"name"`
	Topic                     *string                    `json:"topic"`
	Invite                    []string                   `json:"invite"`
	RoomVersion               string                     `json:"room_version"`
	CreationContent           map[string]json.RawMessage `json:"creation_content"`
	InitialState              []rooms.StateEvent         `json:"initial_state"`
	Preset                    string                     `json:"preset"`
	IsDirect                  bool                       `json:"is_direct"`
	PowerLevelContentOverride map[string]json.RawMessage `json:"power_level_content_override"`
}

func (a *API) createRoom(r *http.Request, c *httpapi.Caller) (any, error) {
	var req createRoomRequest
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	switch req.Visibility {
	case "", "private", "public":
	default:
		return nil, mxerr.BadJSON("visibility must be public or private")
	}
	preset := req.Preset
	switch preset {
	case "":
		preset = rooms.PresetPrivateChat
		if req.Visibility == "public" {
			preset = rooms.PresetPublicChat
		}
	case rooms.PresetPrivateChat, rooms.PresetPublicChat, rooms.PresetTrustedPrivateChat:
	default:
		return nil, mxerr.BadJSON("Unknown preset %q", req.Preset)
	}
	for _, u := range req.Invite {
		if _, err := spec.NewUserID(u, true); err != nil {
			return nil, mxerr.InvalidParam("Invalid user ID %q in invite", u)
		}
	}
	for _, s := range req.InitialState {
		if s.Type == "" {
			return nil, mxerr.BadJSON("initial_state events need a type")
		}
	}
	if c.ShadowBanned && len(req.Invite) > 0 {
		// Synapse creates nothing for a shadow-banned user who invites
		// anyone, and answers a made-up room ID.
		return map[string]string{"room_id": "!" + shadowBannedID() + ":" + a.cfg.ServerName}, nil
	}
	alias, err := a.aliases.ReserveForNewRoom(r.Context(), req.RoomAliasName)
	if err != nil {
		return nil, err
	}
	if alias != "" {
		// As PUT /directory/room: a room_alias_name in another service's
		// exclusive namespace is M_EXCLUSIVE (Synapse creates both
		// through create_association, which checks it).
		if err := a.appservices.CheckAliasFree(alias, a.appservices.ByID(c.AppService)); err != nil {
			return nil, err
		}
	}
	localInvites, remoteInvites := a.membership.SplitInvites(req.Invite)
	// A local invitee who blocks the creator's invites is left out; the
	// room is made all the same and the answer is 403 M_INVITE_BLOCKED,
	// as spec v1.18 allows ("Invite permission").
	var blocked error
	kept := localInvites[:0]
	for _, u := range localInvites {
		err := a.membership.CheckInvite(r.Context(), c.UserID, u)
		if e, ok := mxerr.As(err); ok && e.Code == "M_INVITE_BLOCKED" {
			blocked = err
			continue
		} else if err != nil {
			return nil, err
		}
		kept = append(kept, u)
	}
	localInvites = kept
	roomID, err := a.rooms.CreateRoom(r.Context(), rooms.CreateRequest{
		Creator: c.UserID, Version: req.RoomVersion, CreationContent: req.CreationContent,
		PowerLevelOverride: req.PowerLevelContentOverride, Preset: preset, InitialState: req.InitialState,
		Name: req.Name, Topic: req.Topic, CanonicalAlias: alias, Invite: localInvites, Invitees: req.Invite, IsDirect: req.IsDirect,
		CreatorContent: a.membership.MemberProfile(r.Context(), c.Localpart),
		InviteContent: func(userID string) map[string]any {
			if lp, local := a.accounts.LocalpartOf(userID); local {
				return a.membership.MemberProfile(r.Context(), lp)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	if alias != "" {
		if err := a.aliases.AddForNewRoom(r.Context(), alias, roomID, c.UserID); err != nil {
			return nil, err
		}
	}
	if req.Visibility == "public" {
		if err := a.dir.SetPublished(r.Context(), roomID, true); err != nil {
			return nil, err
		}
	}
	for _, u := range remoteInvites {
		if err := a.membership.Invite(r.Context(), membership.InviteRequest{Sender: c.UserID, RoomID: roomID, Target: u, IsDirect: req.IsDirect}); err != nil {
			// As Synapse: the room stays; the creator can invite again.
			return nil, err
		}
	}
	if blocked != nil {
		return nil, blocked
	}
	return map[string]string{"room_id": roomID}, nil
}

// viaServers are the servers a client names for a join or knock
// (server_name, and via from newer clients).
func viaServers(r *http.Request) ([]string, error) {
	q := r.URL.Query()
	via := append(append([]string{}, q["via"]...), q["server_name"]...)
	for _, s := range via {
		if config.ValidateServerName(s) != nil {
			return nil, mxerr.InvalidParam("Invalid server name in via")
		}
	}
	return via, nil
}

// resolveRoom turns a room ID or alias into a room ID.
func (a *API) resolveRoom(ctx context.Context, idOrAlias string) (string, error) {
	roomID, _, err := a.resolveRoomVia(ctx, idOrAlias)
	return roomID, err
}

// resolveRoomVia is resolveRoom that also returns the servers an alias
// of another server is known to be on.
func (a *API) resolveRoomVia(ctx context.Context, idOrAlias string) (string, []string, error) {
	switch {
	case strings.HasPrefix(idOrAlias, "!"):
		return idOrAlias, nil, nil
	case strings.HasPrefix(idOrAlias, "#"):
		// A malformed alias is the client's mistake (400), not a
		// server that could not be reached.
		server, err := aliases.Check(idOrAlias)
		if err != nil {
			return "", nil, err
		}
		if server != a.cfg.ServerName && a.federation != nil {
			return a.federation.ResolveAlias(ctx, idOrAlias)
		}
		roomID, _, err := a.aliases.Resolve(ctx, idOrAlias)
		return roomID, nil, err
	}
	return "", nil, mxerr.InvalidParam("%q is neither a room ID nor an alias", idOrAlias)
}

// memberBody is a membership request's body. user_id (invite, kick,
// ban, unban) and reason are read here; every other field but
// third_party_signed goes into the member event's content, reason
// included (membership.Content).
type memberBody struct {
	UserID  string
	Reason  string
	Content membership.Content
}

func readMemberBody(r *http.Request, required bool) (memberBody, error) {
	read := httpapi.ReadOptionalJSON
	if required {
		read = httpapi.ReadJSON
	}
	var raw membership.Content
	if err := read(r, &raw); err != nil {
		return memberBody{}, err
	}
	var b memberBody
	if v, ok := raw["reason"]; ok && json.Unmarshal(v, &b.Reason) != nil {
		return b, mxerr.BadJSON("reason must be a string")
	}
	if v, ok := raw["user_id"]; ok && json.Unmarshal(v, &b.UserID) != nil {
		return b, mxerr.BadJSON("user_id must be a string")
	}
	// A per-room profile is text, as the profile's own fields are.
	for _, k := range []string{"displayname", "avatar_url"} {
		var str *string
		if v, ok := raw[k]; ok && json.Unmarshal(v, &str) != nil {
			return b, mxerr.BadJSON("%s must be a string", k)
		}
	}
	delete(raw, "user_id")
	delete(raw, "third_party_signed")
	b.Content = raw
	return b, nil
}

func (a *API) join(r *http.Request, c *httpapi.Caller, roomID string, via []string) (any, error) {
	extra, err := viaServers(r)
	if err != nil {
		return nil, err
	}
	body, err := readMemberBody(r, false)
	if err != nil {
		return nil, err
	}
	if c.IsGuest {
		if err := a.guestMayJoin(r.Context(), roomID); err != nil {
			return nil, err
		}
	}
	if err := a.membership.Join(r.Context(), c.UserID, roomID, append(via, extra...), body.Content); err != nil {
		return nil, err
	}
	return map[string]string{"room_id": roomID}, nil
}

func (a *API) joinByIDOrAlias(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, via, err := a.resolveRoomVia(r.Context(), r.PathValue("roomIdOrAlias"))
	if err != nil {
		return nil, err
	}
	return a.join(r, c, roomID, via)
}

func (a *API) joinByID(r *http.Request, c *httpapi.Caller) (any, error) {
	return a.join(r, c, r.PathValue("roomId"), nil)
}

func (a *API) knock(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, via, err := a.resolveRoomVia(r.Context(), r.PathValue("roomIdOrAlias"))
	if err != nil {
		return nil, err
	}
	extra, err := viaServers(r)
	if err != nil {
		return nil, err
	}
	body, err := readMemberBody(r, false)
	if err != nil {
		return nil, err
	}
	if err := a.membership.Knock(r.Context(), c.UserID, roomID, append(via, extra...), body.Reason); err != nil {
		return nil, err
	}
	return map[string]string{"room_id": roomID}, nil
}

func (a *API) leave(r *http.Request, c *httpapi.Caller) (any, error) {
	body, err := readMemberBody(r, false)
	if err != nil {
		return nil, err
	}
	_, err = a.membership.Leave(r.Context(), c.UserID, r.PathValue("roomId"), body.Reason)
	return empty, err
}

// forget hides a room the user has left from their sync.
func (a *API) forget(r *http.Request, c *httpapi.Caller) (any, error) {
	return empty, a.membership.Forget(r.Context(), c.UserID, r.PathValue("roomId"))
}

// memberAction serves invite, kick and ban: a membership change of
// another user.
func (a *API) memberAction(action string) httpapi.Handler {
	return func(r *http.Request, c *httpapi.Caller) (any, error) {
		body, err := readMemberBody(r, true)
		if err != nil {
			return nil, err
		}
		if _, err := spec.NewUserID(body.UserID, true); err != nil {
			return nil, mxerr.BadJSON("user_id must be a valid user ID")
		}
		roomID := r.PathValue("roomId")
		switch action {
		case spec.Invite:
			if c.ShadowBanned {
				// Synapse drops a shadow-banned user's invites unseen.
				return empty, nil
			}
			return empty, a.membership.Invite(r.Context(), membership.InviteRequest{Sender: c.UserID, RoomID: roomID, Target: body.UserID, Body: body.Content})
		case spec.Ban:
			return empty, a.membership.Ban(r.Context(), c.UserID, roomID, body.UserID, body.Content)
		default:
			return empty, a.membership.Kick(r.Context(), c.UserID, roomID, body.UserID, body.Content)
		}
	}
}

func (a *API) unban(r *http.Request, c *httpapi.Caller) (any, error) {
	body, err := readMemberBody(r, true)
	if err != nil {
		return nil, err
	}
	return empty, a.membership.Unban(r.Context(), c.UserID, r.PathValue("roomId"), body.UserID, body.Reason)
}

func (a *API) joinedRooms(r *http.Request, c *httpapi.Caller) (any, error) {
	ids, err := a.membership.JoinedRooms(r.Context(), c.UserID)
	if err != nil {
		return nil, err
	}
	return map[string][]string{"joined_rooms": ids}, nil
}
